"""`faceheal train-damage`: train the learned damage detector on damage rendered onto clean faces.

Each sample is a random window of a clean training crop (a `faceheal prepare` folder, the same
held-out split as the generator), rescaled, turned gray, sepia or faded part of the time, damaged with
one to three kinds from `faceheal.masks.render` (scratches and cracks, dust, missing areas) or
pure-white painted strokes, then given film grain, blur and JPEG part of the time, so the detector
meets what scanners produce. A sixth of the samples stay undamaged: false alarms cost as much as
misses. Loss: binary cross-entropy plus soft Dice (thin damage is a small fraction of the pixels).
The held-out score is F1 within 1 px per kind, the same measure as benchmarks/eval_damage.py; the
decision threshold that maximises it is stored with the weights.
"""
from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceheal.images import LUMA
from faceheal.masks.learned import DamageNet, DamageNetConfig, save_damage_net
from faceheal.masks.render import DAMAGE_KINDS, render_damage
from faceheal.masks.synthetic import synthetic_mask
from faceheal.train.data import PreparedFaces

TRAIN_KINDS = DAMAGE_KINDS + ("painted",)


def _style(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour, gray, sepia or faded, as old prints come."""
    r = rng.random()
    gray = rgb @ LUMA
    if r < 0.3:
        return np.repeat(gray[..., None], 3, axis=2)
    if r < 0.5:
        tint = np.array([1.0, 0.85, 0.65], np.float32) * rng.uniform(0.9, 1.0)
        return np.clip(gray[..., None] * tint + rng.uniform(0, 0.08), 0, 1)
    if r < 0.6:  # faded: low contrast, lifted blacks
        lo, hi = rng.uniform(0.1, 0.3), rng.uniform(0.75, 0.95)
        return lo + rgb * (hi - lo)
    return rgb


def render_painted(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pure-white brush strokes (as in ../shared/data/photos/painted_damage)."""
    m = synthetic_mask(rgb.shape[:2], "strokes", (0.02, 0.12), rng)
    out = rgb.copy()
    out[m] = 1.0
    return out, m


_WORDS = ("MOULIN ROUGE", "MATINEE", "1927", "HOTEL", "No. 42", "STUDIO", "Cafe", "PARIS", "photo", "XII", "A B C")


def _picture_lines(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thin bright or dark things that belong to the picture (signs, lettering, window bars): drawn
    before the damage and never labelled, so the detector learns that thin is not enough."""
    h, w = rgb.shape[:2]
    out = rgb.copy()
    for _ in range(int(rng.integers(1, 4))):
        colour = rng.uniform(0.85, 1.0, 3) if rng.random() < 0.6 else rng.uniform(0, 1, 3)
        ink = np.zeros((h, w), np.uint8)  # drawn as 8-bit coverage, then blended in the colour
        if rng.random() < 0.7:
            text = _WORDS[int(rng.integers(len(_WORDS)))]
            cv2.putText(ink, text, (int(rng.integers(-20, w // 2)), int(rng.integers(10, h))),
                        int(rng.choice([0, 1, 2, 3, 4, 6])), float(rng.uniform(0.3, 1.2)), 255,
                        int(rng.integers(1, 3)), cv2.LINE_AA)
        else:  # a small grid: window bars, a fence, a lattice
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            step, n = int(rng.integers(4, 12)), int(rng.integers(3, 8))
            for i in range(n):
                cv2.line(ink, (x0 + i * step, y0), (x0 + i * step, y0 + n * step), 255, 1, cv2.LINE_AA)
                cv2.line(ink, (x0, y0 + i * step), (x0 + n * step, y0 + i * step), 255, 1, cv2.LINE_AA)
        a = (ink.astype(np.float32) / 255)[..., None]
        out = out * (1 - a) + colour.astype(np.float32) * a
    return out.astype(np.float32)


def _scanner(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grain, blur and JPEG after the damage, as a scan of a damaged print has them."""
    if rng.random() < 0.5:
        rgb = rgb + rng.normal(0, rng.uniform(0.005, 0.03), rgb.shape[:2])[..., None].astype(np.float32)
    if rng.random() < 0.25:
        rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.4, 0.9))
    rgb = np.clip(rgb, 0, 1)
    if rng.random() < 0.4:
        enc = cv2.imencode(".jpg", (rgb * 255 + 0.5).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])[1]
        rgb = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    return rgb


def damage_sample(face: np.ndarray, rng: np.random.Generator, size: int = 128,
                  kinds: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One training pair from a clean uint8 RGB crop: (damaged float RGB (size, size, 3), truth bool)."""
    scale = rng.uniform(max(0.55, size / min(face.shape[:2])), 1.4)
    img = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y = int(rng.integers(0, img.shape[0] - size + 1))
    x = int(rng.integers(0, img.shape[1] - size + 1))
    rgb = _style(img[y:y + size, x:x + size].astype(np.float32) / 255, rng)
    if rng.random() < 0.5:
        rgb = rgb[:, ::-1]
    rgb = np.ascontiguousarray(rgb, np.float32)
    if rng.random() < 0.2:
        rgb = _picture_lines(rgb, rng)
    truth = np.zeros((size, size), bool)
    if kinds is None:
        kinds = () if rng.random() < 1 / 6 else tuple(
            rng.choice(TRAIN_KINDS, size=int(rng.integers(1, 4)), replace=False, p=[0.4, 0.2, 0.25, 0.15]))
    for kind in kinds:
        if kind == "painted":
            rgb, m = render_painted(rgb, rng)
        else:
            rgb, m = render_damage(rgb, kind, rng)
        truth |= m
    if rng.random() < 0.6:
        rgb = _scanner(rgb, rng)
    return np.ascontiguousarray(rgb, np.float32), truth


def _load_backgrounds(folder: Path, max_side: int = 1024) -> list[np.ndarray]:
    """Every readable photo under `folder` as uint8 RGB, long side at most `max_side`."""
    from faceheal.images import read_image, to_rgb8

    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            rgb = to_rgb8(read_image(path).display())
        except Exception:  # noqa: BLE001 - not an image: skip it
            continue
        s = min(1.0, max_side / max(rgb.shape[:2]))
        if s < 1:
            rgb = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        if min(rgb.shape[:2]) >= 256:
            out.append(np.ascontiguousarray(rgb))
    return out


def f1_within(found: np.ndarray, truth: np.ndarray, tol: int = 1) -> tuple[float, float, float]:
    """Precision, recall, F1 where a pixel within `tol` px of the other mask counts as matched."""
    k = np.ones((2 * tol + 1,) * 2, np.uint8)
    near_t = cv2.dilate(truth.astype(np.uint8), k) > 0
    near_f = cv2.dilate(found.astype(np.uint8), k) > 0
    p = (found & near_t).sum() / max(found.sum(), 1)
    r = (truth & near_f).sum() / max(truth.sum(), 1)
    return float(p), float(r), float(2 * p * r / max(p + r, 1e-9))


@dataclass
class DamageTrainConfig:
    data: str
    out: str
    size: int = 128
    batch_size: int = 24
    lr: float = 2e-3
    steps: int | None = None
    minutes: float | None = None
    checkpoint_minutes: float = 3.0
    seed: int = 0
    threads: int | None = None
    val_count: int = 48  # held-out faces per kind (at 256, whole crops)
    backgrounds: tuple[str, ...] = ()  # folders of clean whole photos: scenes, clothes, text, not just faces
    background_share: float = 0.35


class DamageTrainer:
    def __init__(self, cfg: DamageTrainConfig, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        train = PreparedFaces(Path(cfg.data), "train")
        self.images, self.train_idx = train.images, train.indices
        self.backgrounds = [im for folder in cfg.backgrounds for im in _load_backgrounds(Path(folder))]
        test_idx = PreparedFaces(Path(cfg.data), "val").indices  # selection: never the reported test split
        self.model = DamageNet(DamageNetConfig())
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=1e-4)
        self.step, self.elapsed, self.best = 0, 0.0, -1.0
        # fixed held-out set: whole 256 crops, each kind alone, plus clean crops for false alarms
        rng = np.random.default_rng(1234)
        self.val = []
        for kind in TRAIN_KINDS:
            for i in test_idx[:cfg.val_count]:
                face = np.asarray(self.images[i])
                self.val.append((kind, *damage_sample(face, rng, size=face.shape[0], kinds=(kind,))))
        self.val_clean = [np.asarray(self.images[i], np.float32) / 255 for i in test_idx[-cfg.val_count:]]

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                "elapsed": self.elapsed, "best": self.best, "config": asdict(self.cfg)}

    def resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.step, self.elapsed, self.best = int(state["step"]), float(state["elapsed"]), float(state["best"])
        return True

    def _clean(self, rng: np.random.Generator) -> np.ndarray:
        if self.backgrounds and rng.random() < self.cfg.background_share:
            return self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        return np.asarray(self.images[self.train_idx[int(rng.integers(len(self.train_idx)))]])

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.cfg.seed, step])
        pairs = [damage_sample(self._clean(rng), rng, self.cfg.size) for _ in range(self.cfg.batch_size)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2)
        y = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None].float()
        return x, y

    def train_step(self) -> float:
        x, y = self.batch(self.step)
        lr = self.cfg.lr * min(1.0, (self.step + 1) / 200)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.model.train()
        logits = self.model(x)
        bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(2.0))
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        loss = bce + dice
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    @torch.inference_mode()
    def validate(self) -> dict:
        """Per-kind F1 at the best shared threshold, and the fraction of clean pixels flagged."""
        self.model.eval()
        probs = [torch.sigmoid(self.model(torch.from_numpy(rgb).permute(2, 0, 1)[None]))[0, 0].numpy()
                 for _, rgb, _ in self.val]
        clean = [torch.sigmoid(self.model(torch.from_numpy(rgb).permute(2, 0, 1)[None]))[0, 0].numpy()
                 for rgb in self.val_clean]
        best = None
        for t in (0.3, 0.4, 0.5, 0.6, 0.7):
            per_kind = {k: [] for k in TRAIN_KINDS}
            for (kind, _, truth), p in zip(self.val, probs):
                per_kind[kind].append(f1_within(p > t, truth)[2])
            f1 = {k: round(float(np.mean(v)), 4) for k, v in per_kind.items()}
            flagged = float(np.mean([(c > t).mean() for c in clean])) * 100
            score = float(np.mean(list(f1.values()))) - 0.05 * flagged
            if best is None or score > best["score"]:
                best = {"score": round(score, 4), "threshold": t, "f1": f1, "clean_flagged_percent": round(flagged, 3)}
        return best

    def run(self, progress: Callable[[int, float], None] | None = None) -> dict:
        cfg = self.cfg
        t0 = last = time.time()
        start = self.step
        log_file = open(self.out / "log.jsonl", "a")
        stop = {"now": False}
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda s, f: stop.__setitem__("now", True))
        running, metrics = None, {}
        try:
            while not stop["now"]:
                if cfg.steps is not None and self.step >= cfg.steps:
                    break
                if cfg.minutes is not None and time.time() - t0 >= cfg.minutes * 60:
                    break
                ts = time.time()
                loss = self.train_step()
                self.elapsed += time.time() - ts
                running = loss if running is None else 0.98 * running + 0.02 * loss
                if progress:
                    progress(self.step, running)
                if self.step % 50 == 0:
                    log_file.write(json.dumps({"step": self.step, "time": round(self.elapsed, 1), "loss": round(running, 5)}) + "\n")
                    log_file.flush()
                if time.time() - last >= cfg.checkpoint_minutes * 60:
                    metrics = self._checkpoint(log_file)
                    last = time.time()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if self.step > start:
                metrics = self._checkpoint(log_file)
            log_file.close()
        return {"step": self.step, "hours": round(self.elapsed / 3600, 3), **metrics}

    def _checkpoint(self, log_file) -> dict:
        metrics = self.validate()
        log_file.write(json.dumps({"step": self.step, "time": round(self.elapsed, 1), **metrics}) + "\n")
        log_file.flush()
        if metrics["score"] > self.best:  # the detector to ship is the best held-out one, not the last
            self.best = metrics["score"]
            save_damage_net(self.model.eval(), self.out / "damage.pt",
                            meta={"step": self.step, "hours": round(self.elapsed / 3600, 3), **metrics})
        tmp = self.out / "last.pt.part"
        torch.save(self.state(), tmp)
        tmp.replace(self.out / "last.pt")
        return metrics
