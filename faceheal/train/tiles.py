"""`faceheal train-texture`: train the texture inpainter for damage away from faces.

Samples are random tiles of the training photos at their own resolution (or scaled down by up to
half, for scans of other resolutions): backgrounds, walls, clothes, hair, skin, print grain, with the
seeded synthetic masks (strokes, scratches, blobs, irregular brushes; 2-50 % of the tile). The loss
is the generator's: hole-weighted L1 at every output scale + 0.5 (1 - SSIM), and optionally LPIPS of
the composed tile (`--perceptual-weight`): L1 teaches the average of what could be under a hole, a
soft fill, where a photo's repair should carry edges and texture like the pixels around it. LPIPS at
0.5 moved the repair's sharpness only from 0.19 to 0.20 of the truth's 0.88 (run 5), so
`--adv-weight` adds the paper's adversarial term too: the face trainer's spectrally normalised
PatchGAN on (RGB, hole) with the hinge loss, warmed up alone for `--adv-start` steps before it steers
the network. Checkpoint and curve on tiles of the 'val' photos (never trained on); the 'test' photos
stay for the benchmark. `--prior soft` trains the same network as the detail pass over big faces'
repairs (weights/faceheal-detail.pt, optional: see the texture model card), starting from a soft copy
of the truth as restore starts it (`detail_start`) instead of OpenCV's fill.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from faceheal.metrics import hole_sharpness, psnr, ssim
from faceheal.model.classical import classical_fill
from faceheal.model.device import pick_device
from faceheal.model.tiles import TILE_PRIOR_RADIUS, TileConfig, TileInpainterNet, from_face_texture, load_tile_net, save_tile_net
from faceheal.masks.synthetic import synthetic_mask
from faceheal.train.looping import save_last, train_loop, update_ema
from faceheal.train.adversary import Adversary, adversary
from faceheal.train.losses import multiscale_l1, perceptual_net

MASK_KINDS = ("strokes", "scratches", "blobs", "irregular")


@dataclass
class TileTrainConfig:
    backgrounds: tuple[str, ...]
    out: str
    size: int = 128
    batch_size: int = 16
    lr: float = 2e-4
    steps: int | None = None
    minutes: float | None = None
    checkpoint_minutes: float = 5.0
    seed: int = 0
    mask_ratio: tuple[float, float] = (0.02, 0.5)
    init: str | None = None  # a face generator (its texture stage) or tile weights to start from
    tiny: bool = False
    threads: int | None = None
    val_count: int = 64
    ema: float = 0.999
    perceptual_weight: float = 0.0  # LPIPS (AlexNet, shipped weights) of the composed tile
    keep_checkpoints: bool = False  # every validated EMA state as OUT/checkpoints/stepNNNNNN.pt, to select through restore
    adv_weight: float = 0.0  # hinge PatchGAN term of the composed tile
    adv_start: int = 0  # the network's adversarial term starts here; the discriminator trains from step 0 (warm-up)
    d_lr: float | None = None  # discriminator learning rate (default: lr)
    prior: str = "classical"  # the fill the network starts from (PRIORS): "soft" trains the detail pass


def load_photos(folders, split: str) -> list[np.ndarray]:
    from faceheal.train.damage import _load_backgrounds

    return [p for f in folders for p in _load_backgrounds(Path(f), split, max_side=1600, min_side=128)]


# --prior soft (the detail pass, faceheal/model/tiles.py DETAIL_NET): the face model's repair of a big face
# is made at 256 px and resampled up, softer by the face's scale (photo px per crop px): 2-3 on CelebA-HQ
# at 512 px, 5-10 on phone selfies; and it is not the truth (its colour and brightness a little off)
SOFT_SCALE = (1.5, 6.0)
SOFT_COLOUR_ERROR, SOFT_LEVEL_ERROR = 0.02, 0.01


def soft_prior(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the face model's repair of a big face looks like at the photo's resolution: the tile at
    1 / s of its size (area) and linearly back up (as `paste_back` resamples the crop), with a small
    colour and brightness error."""
    size = tile.shape[0]
    s = float(np.exp(rng.uniform(*np.log(SOFT_SCALE))))
    small = cv2.resize(tile, (max(4, round(size / s)),) * 2, interpolation=cv2.INTER_AREA)
    soft = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    soft = soft * (1 + rng.normal(0, SOFT_COLOUR_ERROR, 3)).astype(np.float32) + np.float32(rng.normal(0, SOFT_LEVEL_ERROR))
    return np.clip(soft, 0, 1).astype(np.float32)


def detail_start(fill: np.ndarray, soft: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The fill the detail pass starts from, made as restore makes it: OpenCV's near the damage's edge,
    the face model's (resampled) repair deeper in, by `face_model_weight` (faceheal/pipeline.py)."""
    from faceheal.pipeline import face_model_weight

    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    w = face_model_weight(depth)[..., None].astype(np.float32)
    return (1 - w) * fill + w * soft


PRIORS = ("classical", "soft")


def tile_batch(photos: list[np.ndarray], count: int, size: int, rng: np.random.Generator,
               ratio: tuple[float, float], prior: str = "classical") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` random tiles (B, 3, S, S) in [-1, 1], their holes (B, 1, S, S) and the fills the network
    starts from: OpenCV's (`classical`, damage away from faces) or a soft copy of the truth (`soft`,
    the detail pass over a big face's resampled repair)."""
    images, holes, priors = [], [], []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        scale = 1.0 if rng.random() < 0.5 else rng.uniform(0.5, 1.0)
        h, w = photo.shape[:2]
        side = min(h, w, max(size, int(round(size / scale))))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        tile = photo[y:y + side, x:x + side]
        if side != size:
            tile = cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
        tile = tile.astype(np.float32) / 255
        hole = synthetic_mask(size, MASK_KINDS[rng.integers(len(MASK_KINDS))], ratio, int(rng.integers(1 << 31)))
        images.append(tile)
        holes.append(hole)
        fill = classical_fill(tile, hole, TILE_PRIOR_RADIUS)
        priors.append(fill if prior == "classical" else detail_start(fill, soft_prior(tile, rng), hole))

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(np.stack(a))).permute(0, 3, 1, 2) * 2 - 1
    return t(images), torch.from_numpy(np.stack(holes)[:, None].astype(np.float32)), t(priors)


class TileTrainer:
    def __init__(self, cfg: TileTrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device = pick_device("auto")
        if cfg.prior not in PRIORS:
            raise ValueError(f"unknown prior {cfg.prior!r} (choose {', '.join(PRIORS)})")
        self.photos = load_photos(cfg.backgrounds, "train")
        val_photos = load_photos(cfg.backgrounds, "val")
        if not self.photos or not val_photos:
            raise ValueError("no training or validation photos under --backgrounds")
        self.net = self._initial_net()
        self.net.to(self.device).train()
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        self.step, self.elapsed = 0, 0.0
        self.best = -1e9
        self.val = tile_batch(val_photos, cfg.val_count, cfg.size, np.random.default_rng(1234), (0.05, 0.4), cfg.prior)
        self.perceptual = perceptual_net(cfg.perceptual_weight, self.device)  # the loss term, and the val curve's LPIPS
        self.adversary = adversary(cfg.adv_weight, cfg.d_lr or cfg.lr, self.device)

    def _initial_net(self) -> TileInpainterNet:
        cfg = self.cfg
        if cfg.init:
            from faceheal.model.weights import load_weights

            kind = load_weights(cfg.init)["config"]
            if "num_classes" in kind:  # a face generator: its texture stage, layout inputs dropped
                from faceheal.model.generator import load_generator

                gen, _ = load_generator(Path(cfg.init))
                c = gen.config
                return from_face_texture(gen.texture, c.texture_widths, c.bottleneck_blocks, c.attention_heads, c.num_classes)
            return load_tile_net(Path(cfg.init))[0]
        return TileInpainterNet(TileConfig.tiny() if cfg.tiny else TileConfig())

    def state(self) -> dict:
        return {"net": self.net.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                **Adversary.state(self.adversary),
                "step": self.step, "elapsed": self.elapsed, "best": self.best, "config": asdict(self.cfg)}

    def resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        if self.adversary is not None:
            self.adversary.load(state)
        self.step, self.elapsed, self.best = int(state["step"]), float(state["elapsed"]), float(state["best"])
        return True

    def next_step(self) -> dict:
        rng = np.random.default_rng([self.cfg.seed, self.step])
        image, hole, prior = (t.to(self.device) for t in tile_batch(self.photos, self.cfg.batch_size, self.cfg.size,
                                                                    rng, self.cfg.mask_ratio, self.cfg.prior))
        out = self.net(image, hole, prior)
        losses = {"l1": multiscale_l1(out["outputs"], image, hole), "ssim": 1 - ssim(out["composed"], image).mean()}
        loss = losses["l1"] + 0.5 * losses["ssim"]
        if self.cfg.perceptual_weight > 0:
            losses["lpips"] = self.perceptual(out["composed"], image).mean()
            loss = loss + self.cfg.perceptual_weight * losses["lpips"]
        if self.adversary is not None and self.step >= self.cfg.adv_start:
            losses["adv_g"] = self.adversary.generator_loss(out["composed"], hole)
            loss = loss + self.cfg.adv_weight * losses["adv_g"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        if self.adversary is not None:  # from step 0: warmed up before it steers the network
            losses["adv_d"] = self.adversary.step(image, out["composed"], hole)
        update_ema(self.ema, self.net, self.step, self.cfg.ema)
        self.step += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.inference_mode()
    def validate(self) -> dict:
        image, hole, prior = (t.to(self.device) for t in self.val)
        composed = self.ema(image, hole, prior)["composed"]
        start = image * (1 - hole) + prior * hole  # the fill it starts from: OpenCV's, or the soft copy
        metrics = {"val_psnr": round(float(psnr(composed, image).mean()), 3),
                   "val_ssim": round(float(ssim(composed, image).mean()), 4),
                   f"val_psnr_{'telea' if self.cfg.prior == 'classical' else 'soft'}": round(float(psnr(start, image).mean()), 3),
                   "val_sharpness_start": round(float(hole_sharpness(start, hole).nanmedian()), 3),
                   # Laplacian energy of the repair over its surroundings', median over tiles (the truth: val_sharpness_truth)
                   "val_sharpness": round(float(hole_sharpness(composed, hole).nanmedian()), 3),
                   "val_sharpness_truth": round(float(hole_sharpness(image, hole).nanmedian()), 3)}
        if self.perceptual is not None:
            metrics["val_lpips"] = round(float(self.perceptual(composed, image).mean()), 4)
        return metrics

    def checkpoint(self) -> dict:
        metrics = self.validate()
        save_last(self.state(), self.out)
        meta = {"step": self.step, "hours": round(self.elapsed / 3600, 3), "prior": self.cfg.prior, **metrics}
        if metrics["val_psnr"] > self.best:  # the best held-out weights are the ones to ship
            self.best = metrics["val_psnr"]
            save_tile_net(self.ema, self.out / "texture.pt", meta)
        if self.cfg.keep_checkpoints:  # a perceptual run trades PSNR for detail: chosen through restore, not here
            (self.out / "checkpoints").mkdir(exist_ok=True)
            save_tile_net(self.ema, self.out / "checkpoints" / f"step{self.step:06d}.pt", meta)
        return metrics

    def log_fields(self) -> dict:
        start, t0 = self._session
        return {"images_per_s": round((self.step - start) * self.cfg.batch_size / max(time.time() - t0, 1e-9), 1)}

    def run(self, progress: Callable[[int, dict], None] | None = None) -> dict:
        self._session = (self.step, time.time())
        return train_loop(self, self.out, self.cfg.steps, self.cfg.minutes, self.cfg.checkpoint_minutes, progress)
