"""Inpainting backends behind one interface: the pipeline hands them batches of aligned crops.

`generator` is the paper's two-stage model with the weights this project trained (the default);
`telea` is OpenCV's classical fast-marching inpainting, offered as an honest fallback and baseline,
never presented as the paper's model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from faceheal.errors import UsageError
from faceheal.model.classical import classical_fill
from faceheal.model.weights import DETAIL_NET, GENERATOR, TEXTURE_NET, shipped

DEFAULT_WEIGHTS = shipped(GENERATOR)
DEFAULT_TEXTURE_WEIGHTS = shipped(TEXTURE_NET)
DEFAULT_DETAIL_WEIGHTS = shipped(DETAIL_NET)


@dataclass
class InpaintResult:
    images: np.ndarray  # (B, S, S, 3) float32 in [0, 1], known pixels as given
    layouts: np.ndarray | None = None  # (B, S, S) uint8 class ids, when the backend predicts them


class Inpainter(Protocol):
    """What restore, eval and `restore_image` may ask of any backend, without `getattr`."""

    name: str  # "generator", "telea", ...
    crop_size: int  # side of the aligned crops it takes
    device: str  # where it runs: "cpu", "cuda:0"...
    precision: str | None  # the generator's arithmetic; None for classical backends
    batch_size: int  # crops per call that suit it
    learned_fill: bool  # `fill_region` is a trained network (the texture inpainter), not OpenCV
    detail_pass: bool  # `add_detail` is there (the detail net's weights are shipped)

    def inpaint(self, crops: np.ndarray, holes: np.ndarray, priors: np.ndarray | None = None) -> InpaintResult:
        """crops (B, S, S, 3) float32 in [0, 1]; holes (B, S, S) bool, True = repaint; priors: the
        per-crop classical fills from `prior_for` when the backend wants them (else computed here)."""
        ...

    def prior_for(self, crop: np.ndarray, hole: np.ndarray) -> np.ndarray | None:
        """Per-crop CPU work the backend needs, done by restore's loader threads ahead of the model."""
        ...

    def fill_region(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Damage away from faces: image (H, W, 3) float32 in [0, 1] at the photo's resolution, hole
        (H, W) bool -> a copy with the hole repaired."""
        ...

    def add_detail(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """A big face's repair resampled up from its crop (`image`'s `hole` pixels, the photo's
        resolution) -> a copy with the detail the crop could not hold given back (only with `detail_pass`)."""
        ...

    def describe(self) -> dict: ...


class TeleaInpainter:
    """OpenCV Telea (fast marching), per channel in float32 so 16-bit sources keep their precision."""

    name = "telea"
    device = "cpu"
    precision = None
    learned_fill = False
    detail_pass = False

    def __init__(self, crop_size: int = 256, radius: int = 5, method: int = cv2.INPAINT_TELEA, batch_size: int = 8):
        self.crop_size = crop_size
        self.radius = radius
        self.method = method
        self.batch_size = batch_size

    def prior_for(self, crop: np.ndarray, hole: np.ndarray) -> None:
        return None

    def fill_region(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return classical_fill(image, hole, self.radius, self.method)

    def inpaint(self, crops: np.ndarray, holes: np.ndarray, priors: np.ndarray | None = None) -> InpaintResult:
        out = crops.copy()
        for i, (crop, hole) in enumerate(zip(crops, holes)):
            if hole.any():
                out[i] = classical_fill(crop, hole, self.radius, self.method)
        return InpaintResult(out)

    def describe(self) -> dict:
        return {"model": "opencv-telea", "classical": True}


class GeneratorInpainter:
    """The two-stage semantic-guided generator (stage 1 layout, stage 2 texture)."""

    name = "generator"

    def __init__(self, weights: Path = DEFAULT_WEIGHTS, device: str = "auto", batch_size: int | None = None,
                 precision: str = "auto", texture_weights: Path | None = DEFAULT_TEXTURE_WEIGHTS,
                 detail_weights: Path | None = DEFAULT_DETAIL_WEIGHTS):
        import torch

        from faceheal.model.generator import load_generator
        from faceheal.model.device import pick_device

        self.torch = torch
        self.weights = Path(weights)
        self._sha256 = None
        self.model, self.meta = load_generator(self.weights)
        self.device = pick_device(device)
        self.model.to(self.device)
        self.precision = resolve_precision(precision, self.device)
        if self.device.type == "cuda":  # TF32: 1.5x the fp32 rate, within 0.07 of a level of fp32 (bench_generator)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.precision == "tf32"
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.crop_size = self.model.config.size
        self.batch_size = batch_size or (64 if self.device.type == "cuda" else 8)
        # damage away from faces: the texture inpainter where its weights are shipped, else OpenCV Telea
        self.texture = self.texture_meta = None
        self.learned_fill = False
        if texture_weights is not None and Path(texture_weights).is_file():
            from faceheal.model.tiles import load_tile_net

            self.texture, self.texture_meta = load_tile_net(Path(texture_weights))
            self.texture.to(self.device)
            # (channels_last ran its windows 1.2x faster here, but whole photos no faster, 2.79 against
            # 2.81 s/MP, and raised the 100 MP scan's peak from 1,010 to 1,064 MB: not used)
            self.texture_weights = Path(texture_weights)
            self.learned_fill = True
        # big faces' repairs: the detail pass (the same network trained from soft copies), where shipped
        self.detail = None
        self.detail_pass = False
        if self.learned_fill and detail_weights is not None and Path(detail_weights).is_file():
            from faceheal.model.tiles import load_tile_net

            self.detail, self.detail_meta = load_tile_net(Path(detail_weights))
            self.detail.to(self.device)
            self.detail_weights = Path(detail_weights)
            self.detail_pass = True

    def fill_region(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        if self.texture is None:
            return classical_fill(image, hole)
        from faceheal.model.tiles import inpaint_windows

        with self._autocast():
            # on a CPU a batch of windows is no faster than its windows one by one, and each costs its
            # attention map: one at a time (100 MP scan, benchmarks/bench_huge_scan.py: 70.3 s and peak RSS
            # 1,616 MB one at a time, 71.6 s and 1,660 MB two, about 1,700 MB four)
            batch = self.batch_size if self.device.type == "cuda" else 1
            return inpaint_windows(self.texture, image, hole, batch_size=batch, device=self.device)

    def add_detail(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        from faceheal.model.tiles import inpaint_windows

        with self._autocast():
            batch = self.batch_size if self.device.type == "cuda" else 1  # (as fill_region)
            return inpaint_windows(self.detail, image, hole, batch_size=batch, device=self.device, start="image")

    def prior_for(self, crop: np.ndarray, hole: np.ndarray) -> np.ndarray | None:
        """The classical fill stage 2 starts from (OpenCV Telea, CPU), for one crop."""
        from faceheal.model.generator import classical_prior

        if self.model.config.prior == "push-pull" or not hole.any():
            return None
        return classical_prior(crop[None], hole[None], self.model.config.prior)[0]

    def inpaint(self, crops: np.ndarray, holes: np.ndarray, priors: np.ndarray | None = None) -> InpaintResult:
        from faceheal.model.generator import prior_tensor

        torch = self.torch
        cuda = self.device.type == "cuda"

        def to_device(array: np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(array))
            # page-locked host memory: the copy to the GPU runs asynchronously (torch caches these buffers)
            return t.pin_memory().to(self.device, non_blocking=True) if cuda else t

        images, layouts = [], []
        with torch.inference_mode():
            for s in range(0, len(crops), self.batch_size):
                x = to_device(crops[s:s + self.batch_size]).permute(0, 3, 1, 2) * 2 - 1
                m = to_device(holes[s:s + self.batch_size])[:, None].float()
                if priors is not None:  # computed ahead by the loader threads
                    p = to_device(priors[s:s + self.batch_size]).permute(0, 3, 1, 2) * 2 - 1
                else:
                    p = prior_tensor(self.model, x, m)
                with self._autocast():
                    out = self.model(x, m, p)
                y = ((out["composed"].float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
                lay = torch.nn.functional.interpolate(out["layout"], size=x.shape[-2:], mode="bilinear",
                                                      align_corners=False).argmax(1).to(torch.uint8).cpu().numpy()
                images.append(y)
                layouts.append(lay)
        result = np.concatenate(images)
        # known pixels exactly as given (the composition already does this up to float rounding)
        result = np.where(holes[..., None], result, crops).astype(np.float32)
        return InpaintResult(result, np.concatenate(layouts))

    def _autocast(self):
        import contextlib

        if self.precision == "bf16":
            return self.torch.autocast(self.device.type, dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def describe(self) -> dict:
        from faceheal.model.weights import sha256_of

        if self._sha256 is None:  # once: every sidecar carries it
            self._sha256 = sha256_of(self.weights)
            self._texture_sha256 = sha256_of(self.texture_weights) if self.texture is not None else None
            self._detail_sha256 = sha256_of(self.detail_weights) if self.detail is not None else None
        away = ({"model": "faceheal-texture", "weights": str(self.texture_weights), "weights_sha256": self._texture_sha256}
                if self.texture is not None else {"model": "opencv-telea"})
        detail = ({"big_faces_detail": {"model": "faceheal-detail", "weights": str(self.detail_weights),
                                        "weights_sha256": self._detail_sha256}} if self.detail is not None else {})
        return {"model": "faceheal-two-stage", "weights": str(self.weights),
                "weights_sha256": self._sha256, "device": str(self.device),
                "precision": self.precision, **self.meta, "away_from_faces": away, **detail}


PRECISIONS = ("auto", "fp32", "tf32", "bf16")


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 convolutions in hardware (AVX512-BF16 or AMX); elsewhere bf16 is
    emulated and slower than fp32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device) -> str:
    """The arithmetic the generator runs in. `auto`: TF32 on CUDA; on a CPU, bf16 autocast where the
    CPU has native bf16 (1.5-1.9x the fp32 rate on this project's machine at the same quality, see
    benchmarks/results/precision_cpu.md), else fp32. `fp32` gives the same bits on every machine."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown --precision {precision!r} (choose {', '.join(PRECISIONS)})")
    if precision == "auto":
        if device.type == "cuda":
            return "tf32"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "tf32" and device.type != "cuda":
        raise UsageError("--precision tf32 is a CUDA mode (use fp32 or bf16 on the CPU)")
    return precision


def make_inpainter(name: str, weights: Path | None = None, device: str = "auto", batch_size: int | None = None,
                   precision: str = "auto") -> Inpainter:
    if name == "telea":
        return TeleaInpainter()
    if name == "generator":
        return GeneratorInpainter(weights or DEFAULT_WEIGHTS, device, batch_size, precision)
    raise UsageError(f"unknown --model {name!r} (choose generator or telea)")
