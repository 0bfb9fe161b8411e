"""`faceheal train`: a resumable, seeded training loop for the two-stage generator.

Phases: `layout` trains stage 1 alone as a face parser on the labelled crops (with random masks);
`full` trains both stages on every training crop (ground-truth or pseudo labels for stage 1; L1 at
every scale, SSIM, and optionally the hinge adversarial term for stage 2). Checkpoints (`last.pt`,
every few minutes and at the end) hold model, EMA, optimisers and step, so `--resume` continues
exactly; `log.jsonl` records losses and a held-out PSNR/SSIM curve; `generator.pt` is the EMA
weights exported for `faceheal restore`.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from faceheal.model.device import pick_device
from faceheal.model.generator import GeneratorConfig, TwoStageGenerator, load_generator, save_generator
from faceheal.train.data import PreparedFaces, fixed_validation
from faceheal.metrics import hole_sharpness, psnr, ssim
from faceheal.train.adversary import Adversary, adversary
from faceheal.train.looping import save_last, train_loop, update_ema
from faceheal.train.losses import layout_cross_entropy, multiscale_l1, perceptual_net


@dataclass
class TrainConfig:
    data: str
    out: str
    phase: str = "full"  # layout | full
    size: int = 128  # training resolution (progressive: 64 -> 128 -> 256)
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 0  # linear learning-rate warm-up (fresh optimiser on --init weights, larger batches)
    decay_from: int | None = None  # linear learning-rate decay from this step to 5 % at `steps` (the run's end)
    steps: int | None = None
    minutes: float | None = None
    checkpoint_minutes: float = 5.0
    seed: int = 0
    device: str = "auto"
    mask_ratio: tuple[float, float] = (0.0, 0.7)
    ssim_weight: float = 0.5
    layout_weight: float = 0.2
    perceptual_weight: float = 0.0  # LPIPS (AlexNet, shipped weights) of the composed output
    adv_weight: float = 0.0
    adv_start: int = 0  # the generator's adversarial term starts here; the discriminator trains from step 0 (warm-up)
    d_lr: float | None = None  # discriminator learning rate (default: lr)
    ema: float = 0.999
    init: str | None = None  # start from these generator weights (e.g. a finished layout phase)
    model: str = "default"  # default | tiny
    val_count: int = 32
    threads: int | None = None
    workers: int = 0  # DataLoader worker processes building batches (masks, Telea) in parallel


def lr_factor(step: int, cfg: TrainConfig, final: float = 0.05) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then 1, then a linear decay to `final` at
    cfg.steps. Ending a run on a small learning rate settles the weights the EMA averages."""
    factor = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.decay_from is not None and cfg.steps is not None and step >= cfg.decay_from:
        done = (step - cfg.decay_from) / max(1, cfg.steps - cfg.decay_from)
        factor *= 1.0 - (1.0 - final) * min(1.0, done)
    return factor


class Trainer:
    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.log = log
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda":
            # fp32 weights and activations with TF32 matrix units. bf16 autocast was measured to ruin
            # this model's training (H200, 66 s from the shipped weights, batch 64: held-out PSNR fell
            # 26.73 -> 26.27 dB with bf16 and rose to 27.24 dB with TF32; runs/gpu/log_*_probe.jsonl)
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.data = PreparedFaces(Path(cfg.data), "train", labelled_only=cfg.phase == "layout")
        self.val_data = PreparedFaces(Path(cfg.data), "val", labelled_only=cfg.phase == "layout")
        gcfg = GeneratorConfig.tiny() if cfg.model == "tiny" else GeneratorConfig.default()
        if cfg.init:
            self.model, _ = load_generator(Path(cfg.init))
        else:
            self.model = TwoStageGenerator(gcfg)
        self.model.to(self.device).train()
        if self.device.type == "cpu":  # oneDNN convolutions in NHWC: a training step 1.2x faster on 2 cores
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        params = self.model.layout.parameters() if cfg.phase == "layout" else self.model.parameters()
        self.opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
        # the perceptual loss term, and the validation curve's LPIPS
        self.perceptual = perceptual_net(cfg.perceptual_weight, self.device) if cfg.phase == "full" else None
        self.adversary = adversary(cfg.adv_weight if cfg.phase == "full" else 0.0, cfg.d_lr or cfg.lr, self.device)
        self.class_weights = torch.from_numpy(self.data.class_weights()).to(self.device)
        self.step = 0
        self.elapsed = 0.0
        self.prior_kind = None if cfg.phase == "layout" or self.model.config.prior == "push-pull" else self.model.config.prior
        self.val = fixed_validation(self.val_data, cfg.val_count, cfg.size, prior=self.prior_kind)
        self.val_prior = self.val.prior.to(self.device) if self.val.prior is not None else None

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                **Adversary.state(self.adversary),
                "step": self.step, "elapsed": self.elapsed, "config": asdict(self.cfg),
                "generator_config": asdict(self.model.config)}

    def save_checkpoint(self) -> None:
        save_last(self.state(), self.out)
        save_generator(self.ema, self.out / "generator.pt",
                       meta={"step": self.step, "phase": self.cfg.phase, "size": self.cfg.size,
                             "hours": round(self.elapsed / 3600, 3), "device": str(self.device)})

    def resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        if state["config"].get("phase") == self.cfg.phase:
            self.opt.load_state_dict(state["opt"])
            if self.adversary is not None:
                self.adversary.load(state)
            self.step = int(state["step"])
            self.elapsed = float(state["elapsed"])
        return True

    # -- one step ----------------------------------------------------------------------------
    def batch_kwargs(self) -> dict:
        c = self.cfg
        return dict(batch_size=c.batch_size, size=c.size, seed=c.seed, mask_ratio=c.mask_ratio, prior=self.prior_kind)

    def train_step(self, b=None) -> dict:
        cfg = self.cfg
        if b is None:
            b = self.data.batch(self.step, **self.batch_kwargs())
        image, hole = b.image.to(self.device, non_blocking=True), b.hole.to(self.device, non_blocking=True)
        labels, lw = b.labels.to(self.device), b.label_weight.to(self.device)
        prior = b.prior.to(self.device, non_blocking=True) if b.prior is not None else None
        losses = {}
        if cfg.phase == "layout":
            # parser on the labelled faces: random masks half of the time, an empty mask otherwise
            keep = (torch.rand(hole.shape[0], 1, 1, 1, device=self.device) < 0.5).float()
            hole = hole * keep
            logits = self.model.predict_layout(image * (1 - hole), hole)
            loss = losses["layout"] = layout_cross_entropy(logits, labels, lw, self.class_weights)
        else:
            out = self.model(image, hole, prior)
            losses["l1"] = multiscale_l1(out["outputs"], image, hole)
            losses["ssim"] = 1 - ssim(out["composed"], image).mean()
            loss = losses["l1"] + cfg.ssim_weight * losses["ssim"]
            if cfg.perceptual_weight > 0:
                losses["lpips"] = self.perceptual(out["composed"], image).mean()
                loss = loss + cfg.perceptual_weight * losses["lpips"]
            if lw.sum() > 0:
                losses["layout"] = layout_cross_entropy(out["layout"], labels, lw, self.class_weights)
                loss = loss + cfg.layout_weight * losses["layout"]
            if self.adversary is not None and self.step >= cfg.adv_start:
                losses["adv_g"] = self.adversary.generator_loss(out["composed"], hole)
                loss = loss + cfg.adv_weight * losses["adv_g"]
        for group in self.opt.param_groups:  # from the command line, not from a resumed optimiser's state
            group["lr"] = cfg.lr * lr_factor(self.step, cfg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        if self.adversary is not None:  # from step 0: the discriminator is warmed up before it steers the generator
            losses["adv_d"] = self.adversary.step(image, out["composed"], hole)
        update_ema(self.ema, self.model, self.step, self.cfg.ema)
        self.step += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.inference_mode()
    def validate(self) -> dict:
        image, hole = self.val.image.to(self.device), self.val.hole.to(self.device)
        if self.cfg.phase == "layout":
            logits = self.ema.predict_layout(image, torch.zeros_like(hole))
            labels = torch.nn.functional.interpolate(self.val.labels[:, None].float(), size=logits.shape[-2:],
                                                     mode="nearest")[:, 0].to(self.device)
            valid = labels != 255
            acc = ((logits.argmax(1) == labels) & valid).sum() / valid.sum().clamp_min(1)
            return {"val_pixel_accuracy": round(float(acc), 4)}
        out = self.ema(image, hole, self.val_prior)
        prior, composed = out["prior"], out["composed"]
        metrics = {"val_psnr": round(float(psnr(composed, image).mean()), 3),
                   "val_ssim": round(float(ssim(composed, image).mean()), 4),
                   f"val_psnr_{self.model.config.prior}": round(float(psnr(prior, image).mean()), 3),
                   # sharpness of the repairs against the same ratio on the real faces (1: as detailed)
                   "val_sharpness": round(float((hole_sharpness(composed, hole) / hole_sharpness(image, hole)).nanmedian()), 3)}
        if self.perceptual is not None:
            metrics["val_lpips"] = round(float(self.perceptual(composed, image).mean()), 4)
        return metrics

    def _loader(self):
        """Batches from worker processes (a CUDA run would otherwise wait on the CPU), or None."""
        if self.cfg.workers <= 0:
            return None
        from torch.utils.data import DataLoader

        from faceheal.train.data import StepBatches

        stop = self.cfg.steps if self.cfg.steps is not None else self.step + 10_000_000
        ds = StepBatches(self.data, self.step, stop, **self.batch_kwargs())
        return iter(DataLoader(ds, batch_size=None, shuffle=False, num_workers=self.cfg.workers, prefetch_factor=4,
                               pin_memory=self.device.type == "cuda", persistent_workers=False))

    # -- the loop (faceheal/train/looping.py) --------------------------------------------------
    def next_step(self) -> dict:
        return self.train_step(next(self._batches) if self._batches is not None else None)

    def checkpoint(self) -> dict:
        metrics = self.validate()
        self.save_checkpoint()
        return metrics

    def log_fields(self) -> dict:
        start, t0 = self._session
        rate = (self.step - start) * self.cfg.batch_size / max(time.time() - t0, 1e-9)
        return {"images_per_s": round(rate, 1), "lr": self.opt.param_groups[0]["lr"]}

    def run(self, progress: Callable[[int, dict], None] | None = None) -> dict:
        self._batches = self._loader()
        self._session = (self.step, time.time())
        return train_loop(self, self.out, self.cfg.steps, self.cfg.minutes, self.cfg.checkpoint_minutes, progress)


@torch.inference_mode()
def pseudo_label(data_root: Path, weights: Path, batch_size: int = 32, device: str = "auto",
                 progress: Callable[[int], None] | None = None) -> dict:
    """Label every crop without ground truth with stage 1's prediction on the unmasked crop.

    Writes labels_pseudo.npy (ground truth kept where it exists) and marks the items 'pseudo' in
    index.json; training then uses them with half the weight of ground truth.
    """
    data_root = Path(data_root)
    model, _ = load_generator(weights)
    dev = pick_device(device)
    model.to(dev)
    index = json.loads((data_root / "index.json").read_text())
    items = index["items"]
    images = np.load(data_root / "images.npy", mmap_mode="r")
    labels = np.load(data_root / "labels.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(data_root / "labels_pseudo.npy.part", "w+", np.uint8, labels.shape)
    todo = [i for i, e in enumerate(items) if e["labels"] != "ground-truth"]
    out[:] = labels
    size = images.shape[1]
    for s in range(0, len(todo), batch_size):
        idx = todo[s:s + batch_size]
        x = torch.from_numpy(np.stack([images[i] for i in idx])).permute(0, 3, 1, 2).float().to(dev) / 127.5 - 1
        logits = model.predict_layout(x, torch.zeros_like(x[:, :1]))
        up = torch.nn.functional.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
        out[idx] = up.argmax(1).to(torch.uint8).cpu().numpy()
        for i in idx:
            items[i]["labels"] = "pseudo"
        if progress:
            progress(len(idx))
    out.flush()
    del out
    (data_root / "labels_pseudo.npy.part").replace(data_root / "labels_pseudo.npy")
    (data_root / "index.json").write_text(json.dumps(index, indent=0))
    return {"pseudo_labelled": len(todo)}
