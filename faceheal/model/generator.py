"""The two-stage generator: configuration, wiring, composition, and safe load/save of weights.

forward: stage 1 predicts the layout from the masked crop at `layout_size`; its probabilities,
upsampled, join the masked crop, the mask and a push-pull fill as stage 2's input; the output is
composed as y = x * (1 - m) + G(x) * m so known pixels pass through untouched.
Weights files hold {"config": dict, "state_dict": ...} and are loaded with `weights_only=True`; a
`<file>.sha256` beside them is checked before loading.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceheal.model.weights import load_network, save_weights
from faceheal.model.blocks import push_pull_fill
from faceheal.model.layout import LayoutNet
from faceheal.model.semantics import NUM_CLASSES
from faceheal.model.texture import TextureNet


@dataclass(frozen=True)
class GeneratorConfig:
    size: int = 256  # crop side the model is trained and shipped for
    layout_size: int = 128  # stage 1 always sees the crop at this size, whatever the crop size
    num_classes: int = NUM_CLASSES
    layout_widths: tuple[int, ...] = (16, 32, 64, 96)
    vit_dim: int = 128
    vit_depth: int = 4
    vit_heads: int = 4
    patch: int = 8
    texture_widths: tuple[int, ...] = (16, 32, 64, 128)
    bottleneck_blocks: int = 3
    attention_heads: int = 4
    prior: str = "telea"  # classical fill fed to stage 2 and used as its residual base: telea | push-pull

    @staticmethod
    def default() -> "GeneratorConfig":
        return GeneratorConfig()

    @staticmethod
    def tiny() -> "GeneratorConfig":
        """A few thousand parameters: for tests."""
        return GeneratorConfig(size=64, layout_size=32, layout_widths=(8, 8, 16), vit_dim=16, vit_depth=1, vit_heads=2,
                               patch=8, texture_widths=(8, 8, 16), bottleneck_blocks=1, attention_heads=2,
                               prior="push-pull")

    @staticmethod
    def from_dict(d: dict) -> "GeneratorConfig":
        known = {f for f in GeneratorConfig.__dataclass_fields__}
        return GeneratorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})


class TwoStageGenerator(nn.Module):
    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.config = config
        ls = config.layout_size
        self.layout = LayoutNet(config.num_classes, config.layout_widths, config.vit_dim, config.vit_depth,
                                config.vit_heads, config.patch, tokens_side=max(1, ls // config.patch))
        self.texture = TextureNet(config.num_classes, config.texture_widths, config.bottleneck_blocks,
                                  config.attention_heads)

    def predict_layout(self, masked: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Stage 1 at `layout_size` (a fixed scale, so progressive training and inference agree)
        -> logits (B, K, layout_size, layout_size)."""
        ls = self.config.layout_size
        if masked.shape[-1] != ls:
            masked = F.interpolate(masked, size=(ls, ls), mode="area")
            hole = (F.interpolate(hole, size=(ls, ls), mode="area") > 0).float()
        return self.layout(masked * (1 - hole), hole)

    def forward(self, image: torch.Tensor, hole: torch.Tensor, prior: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        # image (B, 3, H, W) in [-1, 1] (hole pixels are ignored); hole (B, 1, H, W) in {0, 1};
        # prior (B, 3, H, W) in [-1, 1]: the classical fill (OpenCV Telea, computed by the caller with
        # `classical_prior`), required when config.prior == "telea"; push-pull is computed here.
        masked = image * (1 - hole)
        layout_logits = self.predict_layout(masked, hole)
        probs = F.interpolate(layout_logits.softmax(1), size=image.shape[-2:], mode="bilinear", align_corners=False)
        if prior is None:
            if self.config.prior != "push-pull":
                raise ValueError(f"this model was trained on a {self.config.prior} prior: pass `prior`")
            prior = push_pull_fill(masked, 1 - hole)
        prior = image * (1 - hole) + prior * hole
        outputs = self.texture(masked, hole, probs, prior)
        composed = image * (1 - hole) + outputs[-1] * hole
        return {"layout": layout_logits, "outputs": outputs, "prior": prior, "composed": composed}


def classical_prior(images: np.ndarray, holes: np.ndarray, kind: str = "telea") -> np.ndarray:
    """The classical fill stage 2 starts from: (B, H, W, 3) float in [0, 1], (B, H, W) bool ->
    (B, H, W, 3). OpenCV Telea (fast marching), computed on the CPU for each crop."""
    from faceheal.model.classical import classical_fill

    if kind != "telea":
        raise ValueError(f"unknown prior {kind!r}")
    out = images.astype(np.float32, copy=True)
    todo = [i for i in range(len(images)) if holes[i].any()]

    def fill(i: int) -> None:
        out[i] = classical_fill(images[i], holes[i], radius=3)

    import torch.utils.data

    in_worker = torch.utils.data.get_worker_info() is not None  # DataLoader workers already run in parallel
    if len(todo) > 1 and not in_worker:  # OpenCV releases the GIL: crops fill in parallel
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1)) as pool:
            list(pool.map(fill, todo))
    else:
        for i in todo:
            fill(i)
    return out


def prior_tensor(model: "TwoStageGenerator", image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor | None:
    """The prior the model expects for a batch of [-1, 1] tensors (None: the model computes its own)."""
    if model.config.prior == "push-pull":
        return None
    x = ((image.detach().float().cpu() + 1) / 2).permute(0, 2, 3, 1).numpy()
    m = hole.detach().cpu()[:, 0].numpy() > 0.5
    p = classical_prior(x, m, model.config.prior)
    return torch.from_numpy(p).permute(0, 3, 1, 2).to(image.device, image.dtype) * 2 - 1


def save_generator(model: TwoStageGenerator, path: Path, meta: dict | None = None, half: bool = True) -> str:
    """Write weights (fp16 by default) and their SHA-256 (faceheal/model/weights.py)."""
    return save_weights(model, asdict(model.config), path, meta, half)


def load_generator(path: Path) -> tuple[TwoStageGenerator, dict]:
    """Load verified weights; raises `WeightsError` with the reason."""
    return load_network(path, lambda config: TwoStageGenerator(GeneratorConfig.from_dict(config)), "generator")
