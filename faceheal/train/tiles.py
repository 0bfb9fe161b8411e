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
stay for the benchmark.
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


def load_photos(folders, split: str) -> list[np.ndarray]:
    from faceheal.train.damage import _load_backgrounds

    return [p for f in folders for p in _load_backgrounds(Path(f), split, max_side=1600, min_side=128)]


def tile_batch(photos: list[np.ndarray], count: int, size: int, rng: np.random.Generator,
               ratio: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` random tiles (B, 3, S, S) in [-1, 1], their holes (B, 1, S, S) and classical fills."""
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
        priors.append(classical_fill(tile, hole, TILE_PRIOR_RADIUS))

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
        self.val = tile_batch(val_photos, cfg.val_count, cfg.size, np.random.default_rng(1234), (0.05, 0.4))
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
                                                                    rng, self.cfg.mask_ratio))
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
        telea = image * (1 - hole) + prior * hole
        metrics = {"val_psnr": round(float(psnr(composed, image).mean()), 3),
                   "val_ssim": round(float(ssim(composed, image).mean()), 4),
                   "val_psnr_telea": round(float(psnr(telea, image).mean()), 3),
                   # Laplacian energy of the repair over its surroundings', median over tiles (the truth: val_sharpness_truth)
                   "val_sharpness": round(float(hole_sharpness(composed, hole).nanmedian()), 3),
                   "val_sharpness_truth": round(float(hole_sharpness(image, hole).nanmedian()), 3)}
        if self.perceptual is not None:
            metrics["val_lpips"] = round(float(self.perceptual(composed, image).mean()), 4)
        return metrics

    def checkpoint(self) -> dict:
        metrics = self.validate()
        save_last(self.state(), self.out)
        meta = {"step": self.step, "hours": round(self.elapsed / 3600, 3), **metrics}
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
