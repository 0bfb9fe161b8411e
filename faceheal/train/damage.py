"""`faceheal train-damage`: train the learned damage detector on damage rendered onto clean faces.

Each sample is a random window of a clean training crop (a `faceheal prepare` folder, the same
held-out split as the generator), rescaled, turned gray, sepia or faded part of the time, damaged with
one to three kinds from `faceheal.masks.render` (scratches and cracks, faint hairlines, dust, stains,
missing areas, tears) or pure-white painted strokes, then given film grain, blur and JPEG part of the
time, so the detector meets what scanners produce. A third of the samples stay undamaged: false
alarms cost as much as misses. `--init` fine-tunes given weights instead of starting from scratch.
Loss: binary cross-entropy plus soft Dice (thin damage is a small fraction of the pixels).
The held-out score is F1 within 1 px per kind, the same measure as benchmarks/eval_damage.py; the
decision threshold that maximises it is stored with the weights.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceheal.images import LUMA
from faceheal.masks.learned import DamageNet, DamageNetConfig, load_damage_net, save_damage_net
from faceheal.masks.families import FAMILIES, render_family
from faceheal.masks.render import DAMAGE_KINDS, render_damage
from faceheal.masks.synthetic import synthetic_mask
from faceheal.train.data import PreparedFaces
from faceheal.train.looping import save_last, train_loop, update_ema
from faceheal.train.negatives import NEGATIVE_KINDS, hard_negative, jpeg_round_trip

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


def web_jpeg(rgb: np.ndarray, rng: np.random.Generator, quality: tuple[int, int] = (35, 90)) -> np.ndarray:
    """A small photo as the web keeps it: JPEG with 4:2:0 chroma at a middling quality."""
    return jpeg_round_trip(rgb, int(rng.integers(*quality)))


# Small faces: the detector's windows hold faces 0.55-1.4x the 256 px crop's size (eyes 35-88 px
# apart). Group photos and web-size JPEGs hold faces a third of that, and on those (photos/whole:
# eyes 16-34 px) the shipped detector flagged hair, dark clothes and lanyards over 1.5-3 % of the
# photo. A small-face sample is a window of clean pictures shrunk to 0.2-0.55 of their size (eyes
# 13-35 px on the crops), one to four side by side, damaged at the window's own pixel size.
SMALL_SCALE = (0.2, 0.55)


def small_faces_window(pick: Callable[[], np.ndarray], rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A (size, size, 3) uint8 window of clean pictures from `pick()` shrunk by SMALL_SCALE: one
    picture, or two or four side by side as on a contact sheet or in a group."""
    cells = int(rng.choice([1, 2, 4], p=[0.4, 0.3, 0.3]))
    cut_y = int(rng.integers(size // 3, 2 * size // 3 + 1)) if cells == 4 else size
    cut_x = int(rng.integers(size // 3, 2 * size // 3 + 1)) if cells > 1 else size
    out = np.zeros((size, size, 3), np.uint8)
    for y0, y1 in ((0, cut_y), (cut_y, size)):
        for x0, x1 in ((0, cut_x), (cut_x, size)):
            h, w = y1 - y0, x1 - x0
            if h <= 0 or w <= 0:
                continue
            im = pick()
            s = max(rng.uniform(*SMALL_SCALE), h / im.shape[0], w / im.shape[1])  # at least the cell
            small = cv2.resize(im, (max(w, round(im.shape[1] * s)), max(h, round(im.shape[0] * s))),
                               interpolation=cv2.INTER_AREA)
            y, x = int(rng.integers(0, small.shape[0] - h + 1)), int(rng.integers(0, small.shape[1] - w + 1))
            out[y0:y1, x0:x1] = small[y:y + h, x:x + w]
    return out


def _scanner(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grain, blur and JPEG after the damage, as a scan of a damaged print has them."""
    if rng.random() < 0.5:
        rgb = rgb + rng.normal(0, rng.uniform(0.005, 0.03), rgb.shape[:2])[..., None].astype(np.float32)
    if rng.random() < 0.25:
        rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.4, 0.9))
    rgb = np.clip(rgb, 0, 1)
    if rng.random() < 0.4:
        rgb = jpeg_round_trip(rgb, int(rng.integers(60, 96)))
    return rgb


def damage_sample(face: np.ndarray, rng: np.random.Generator, size: int = 128,
                  kinds: tuple[str, ...] | None = None, clean_share: float = 1 / 3,
                  negative_share: float = 0.4, families: tuple[str, ...] = (),
                  pool: tuple[str, ...] = (), negatives: tuple[str, ...] = (),
                  rescale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One training pair from a clean uint8 RGB crop: (damaged float RGB (size, size, 3), truth bool).
    `clean_share` of the samples get no damage (when `kinds` is not given); `negative_share` get a
    hard negative (faceheal/train/negatives.py) first. `families`: damage families of the independent
    renderer (faceheal/masks/families.py) to train on as well, half of the damage when given. `pool`:
    only these of TRAIN_KINDS (default: all). `negatives`: the hard negatives drawn (default: all kinds).
    `rescale=False`: the picture is taken at its own scale (a `small_faces_window`)."""
    scale = rng.uniform(max(0.55, size / min(face.shape[:2])), 1.4) if rescale else 1.0
    img = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y = int(rng.integers(0, img.shape[0] - size + 1))
    x = int(rng.integers(0, img.shape[1] - size + 1))
    rgb = _style(img[y:y + size, x:x + size].astype(np.float32) / 255, rng)
    if rng.random() < 0.5:
        rgb = rgb[:, ::-1]
    rgb = np.ascontiguousarray(rgb, np.float32)
    if rng.random() < negative_share:  # picture content that looks like damage, never labelled
        rgb = hard_negative(rgb, rng, str(rng.choice(negatives)) if negatives else None)
    truth = np.zeros((size, size), bool)
    if kinds is None:
        # scratches, missing, dust, stains, tears, hairlines, painted
        shares = dict(zip(TRAIN_KINDS, (0.22, 0.14, 0.14, 0.14, 0.1, 0.1, 0.16)))
        choices = [k for k in TRAIN_KINDS if not pool or k in pool]
        p = np.array([shares[k] for k in choices]) / sum(shares[k] for k in choices)
        if families:
            choices, p = choices + list(families), np.concatenate([p / 2, np.full(len(families), 0.5 / len(families))])
        kinds = () if rng.random() < clean_share else tuple(
            rng.choice(choices, size=int(rng.integers(1, min(3, len(choices)) + 1)), replace=False, p=p))
    for kind in kinds:
        if kind == "painted":
            rgb, m = render_painted(rgb, rng)
        elif kind in FAMILIES:
            rgb, m = render_family(rgb, kind, rng)
        else:
            rgb, m = render_damage(rgb, kind, rng)
        truth |= m
    if rng.random() < 0.6:
        rgb = _scanner(rgb, rng)
    return np.ascontiguousarray(rgb, np.float32), truth


def _load_backgrounds(folder: Path, split: str = "train", max_side: int = 1024, min_side: int = 160) -> list[np.ndarray]:
    """The photos under `folder` in `split` (by the file-name hash of `faceheal prepare`, so the
    held-out faces stay held out) as uint8 RGB, long side at most `max_side`."""
    from faceheal.images import read_image, to_rgb8
    from faceheal.train.prepare import split_of

    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and split_of(p.name) == split):
        try:
            rgb = to_rgb8(read_image(path).display())
        except Exception:  # noqa: BLE001 - not an image: skip it
            continue
        s = min(1.0, max_side / max(rgb.shape[:2]))
        if s < 1:
            rgb = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        if min(rgb.shape[:2]) >= min_side:
            out.append(np.ascontiguousarray(rgb))
    return out


def widen_damage_net(old: DamageNet, config: DamageNetConfig) -> DamageNet:
    """A wider network (more channels, colour cues added) that computes exactly what `old` computes:
    old weights in the first channels, the new channels' own weights random, and every weight that
    reads a new channel zero. Training then grows into the new capacity from the old detector's
    skill instead of from nothing (a from-scratch run of the wider net scored 0.39 on the val score
    after 33 min, where fine-tunes of the shipped one score 0.47-0.50 after 6)."""
    o, n = old.config, config
    if n.tophat != o.tophat or (o.colour and not n.colour) or any(b < a for a, b in zip(o.widths, n.widths)):
        raise ValueError(f"cannot widen {o} into {n}")
    new = DamageNet(n)
    (a0, a1, a2, a3), (b0, b1, b2, b3) = o.widths, n.widths
    cues = (6 if o.colour else 4, 6 if n.colour else 4)
    layers = {  # conv: (concatenated inputs as (old, new) channel counts, outputs (old, new))
        "enc0.0": ([cues], (a0, b0)), "enc1.0": ([(a0, b0)], (a1, b1)), "enc2.0": ([(a1, b1)], (a2, b2)),
        "enc3.0": ([(a2, b2)], (a3, b3)), "mid.0.0": ([(a3, b3)], (a3, b3)), "mid.1.0": ([(a3, b3)], (a3, b3)),
        "dec2.0": ([(a3, b3), (a2, b2)], (a1, b1)), "dec1.0": ([(a1, b1), (a1, b1)], (a0, b0)),
        "head.0": ([(a0, b0), (a0, b0)], (a0, b0)), "head.2": ([(a0, b0)], (1, 1)),
    }
    olds, news = dict(old.named_modules()), dict(new.named_modules())
    with torch.no_grad():
        for name, (inputs, (out_old, _)) in layers.items():
            src, dst = olds[name], news[name]
            keep, offset = [], 0
            for was, now in inputs:
                keep += range(offset, offset + was)
                offset += now
            dst.weight[:out_old] = 0
            dst.weight[:out_old, keep] = src.weight
            if src.bias is not None:
                dst.bias[:out_old] = src.bias
            bn = name[:-1] + "1"
            if bn in olds and isinstance(olds[bn], torch.nn.BatchNorm2d):
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(news[bn], key)[:out_old] = getattr(olds[bn], key)
    return new


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
    clean_share: float = 1 / 3  # samples left undamaged: on a clean photo every false alarm is a repaint
    negative_share: float = 0.4  # samples given a hard negative (glasses, catchlights, signatures...)
    negatives: tuple[str, ...] = ()  # draw only these hard negatives (validation still scores all)
    pos_weight: float = 1.0  # BCE weight of damaged pixels
    families: tuple[str, ...] = ()  # families of faceheal/masks/families.py trained on too (default: all held out)
    val_photos: int = 120  # clean whole 'val' photos from `backgrounds`, for the photo-level false-alarm rate
    small_share: float = 0.0  # samples of small faces (`small_faces_window`), most of them then web JPEGs
    init: str | None = None  # start from these weights (a damage.pt): fine-tune on a widened renderer
    widths: tuple[int, int, int, int] | None = None  # the network's channels (None: init's own, else the default)
    colour: bool | None = None  # opponent-colour cues too (None: as init, else off)
    kinds: tuple[str, ...] = ()  # train on only these of the renderer's kinds (validation still scores all)
    keep_checkpoints: bool = False  # every validated state as OUT/checkpoints/stepNNNNNN.pt, to select by the decision
    # validated and saved: an exponential moving average of the weights (0: the weights themselves).
    # Without it, checkpoints 950 steps apart at a low learning rate kept 0.92 and 0.81 of damaged
    # regions through the decision: the flags on clean photos that set its threshold wander
    ema: float = 0.0


class DamageTrainer:
    def __init__(self, cfg: DamageTrainConfig, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        if any(k not in NEGATIVE_KINDS for k in cfg.negatives):
            raise ValueError(f"unknown hard negative in {', '.join(cfg.negatives)} (choose from {', '.join(NEGATIVE_KINDS)})")
        if any(k not in TRAIN_KINDS for k in cfg.kinds):
            raise ValueError(f"unknown damage kind in {', '.join(cfg.kinds)} (choose from {', '.join(TRAIN_KINDS)})")
        unknown = [f for f in cfg.families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown damage family {unknown[0]!r} (choose from {', '.join(FAMILIES)})")
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        train = PreparedFaces(Path(cfg.data), "train")
        self.images, self.train_idx = train.images, train.indices
        self.backgrounds = [im for folder in cfg.backgrounds for im in _load_backgrounds(Path(folder))]
        vrng = np.random.default_rng(99)  # clean held-out photos as they come (frames, backgrounds, borders)
        val_photos = [im for folder in cfg.backgrounds for im in _load_backgrounds(Path(folder), "val", max_side=512)]
        self.val_photos = [val_photos[i].astype(np.float32) / 255
                           for i in sorted(vrng.permutation(len(val_photos))[:cfg.val_photos])]
        test_idx = PreparedFaces(Path(cfg.data), "val").indices  # selection: never the reported test split
        self.model = self._initial_model()  # from scratch, or from given weights (widened if asked)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=1e-4)
        self.ema = copy.deepcopy(self.model).eval() if cfg.ema > 0 else None
        self.step, self.elapsed, self.best = 0, 0.0, -1.0
        # fixed held-out set: whole 256 crops, each kind alone, plus clean crops for false alarms
        rng = np.random.default_rng(1234)
        self.val = []
        for kind in TRAIN_KINDS:
            for i in test_idx[:cfg.val_count]:
                face = np.asarray(self.images[i])
                self.val.append((kind, *damage_sample(face, rng, size=face.shape[0], kinds=(kind,))))
        self.val_clean = [np.asarray(self.images[i], np.float32) / 255 for i in test_idx[-cfg.val_count:]]
        self.val_negatives = [(kind, hard_negative(np.asarray(self.images[i], np.float32) / 255, rng, kind))
                              for kind in NEGATIVE_KINDS for i in test_idx[-cfg.val_count // 2:]]
        if cfg.small_share > 0:  # clean small faces as the web keeps them, from the held-out faces
            faces = iter(np.asarray(self.images[i]) for i in np.resize(test_idx, 4 * cfg.val_count))
            self.val_small = [web_jpeg(small_faces_window(lambda: next(faces), rng, 192).astype(np.float32) / 255, rng)
                              for _ in range(cfg.val_count // 2)]
        else:
            self.val_small = []

    def _initial_model(self) -> DamageNet:
        """From scratch; or the given weights, widened (`widen_damage_net`) where the config asks for more."""
        cfg = self.cfg
        if not cfg.init:
            return DamageNet(DamageNetConfig(widths=tuple(cfg.widths or DamageNetConfig.widths), colour=bool(cfg.colour)))
        model = load_damage_net(Path(cfg.init))[0].float()
        target = DamageNetConfig(widths=tuple(cfg.widths or model.config.widths), tophat=model.config.tophat,
                                 colour=model.config.colour if cfg.colour is None else cfg.colour)
        return (model if target == model.config else widen_damage_net(model, target)).train()

    def state(self) -> dict:
        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                 "elapsed": self.elapsed, "best": self.best, "config": asdict(self.cfg)}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.ema is not None:
            self.ema.load_state_dict(state.get("ema", state["model"]))
        self.step, self.elapsed, self.best = int(state["step"]), float(state["elapsed"]), float(state["best"])
        return True

    def _clean(self, rng: np.random.Generator) -> np.ndarray:
        if self.backgrounds and rng.random() < self.cfg.background_share:
            return self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        return np.asarray(self.images[self.train_idx[int(rng.integers(len(self.train_idx)))]])

    def _sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        small = rng.random() < self.cfg.small_share
        clean = small_faces_window(lambda: self._clean(rng), rng, self.cfg.size) if small else self._clean(rng)
        rgb, truth = damage_sample(clean, rng, self.cfg.size, clean_share=self.cfg.clean_share,
                                   negative_share=self.cfg.negative_share, families=self.cfg.families,
                                   pool=self.cfg.kinds, negatives=self.cfg.negatives, rescale=not small)
        if small and rng.random() < 0.7:
            rgb = web_jpeg(rgb, rng)
        return rgb, truth

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.cfg.seed, step])
        pairs = [self._sample(rng) for _ in range(self.cfg.batch_size)]
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
        bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(self.cfg.pos_weight))
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        loss = bce + dice
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            update_ema(self.ema, self.model, self.step, self.cfg.ema)
        self.step += 1
        return float(loss.detach())

    @torch.inference_mode()
    def validate(self) -> dict:
        """Per-kind F1 at the best threshold, the fraction of clean and hard-negative pixels flagged, and
        the share of clean whole photos with any false alarm (a clean photo must come back untouched).
        Of the weights' moving average when the run keeps one."""
        model = self.shipped().eval()

        def prob(rgb):
            return torch.sigmoid(model(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]))[0, 0].numpy()

        probs = [prob(rgb) for _, rgb, _ in self.val]
        clean = [prob(rgb) for rgb in self.val_clean]
        negatives = [(kind, prob(rgb)) for kind, rgb in self.val_negatives]
        photos = [prob(rgb) for rgb in self.val_photos]
        small = [prob(rgb) for rgb in self.val_small]
        best = None
        for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            per_kind = {k: [] for k in TRAIN_KINDS}
            for (kind, _, truth), p in zip(self.val, probs):
                per_kind[kind].append(f1_within(p > t, truth)[2])
            f1 = {k: round(float(np.mean(v)), 4) for k, v in per_kind.items()}
            flagged = float(np.mean([(c > t).mean() for c in clean])) * 100
            negative = {k: round(100 * float(np.mean([(p > t).mean() for kk, p in negatives if kk == k])), 3)
                        for k in NEGATIVE_KINDS}
            photos_flagged = float(np.mean([(p > t).any() for p in photos])) if photos else 0.0
            small_flagged = float(np.mean([(p > t).mean() for p in small])) * 100 if small else 0.0
            score = float(np.mean(list(f1.values()))) - 0.05 * flagged - 0.02 * float(np.mean(list(negative.values()))) \
                - 0.3 * photos_flagged - 0.05 * small_flagged
            if best is None or score > best["score"]:
                best = {"score": round(score, 4), "threshold": t, "f1": f1, "clean_flagged_percent": round(flagged, 3),
                        "negatives_flagged_percent": negative, "clean_photos_flagged": round(photos_flagged, 3)}
                if small:
                    best["small_faces_flagged_percent"] = round(small_flagged, 3)
        return best

    # -- the loop (faceheal/train/looping.py) --------------------------------------------------
    def next_step(self) -> dict:
        return {"loss": self.train_step()}

    def log_fields(self) -> dict:
        return {}

    def run(self, progress: Callable[[int, dict], None] | None = None) -> dict:
        return train_loop(self, self.out, self.cfg.steps, self.cfg.minutes, self.cfg.checkpoint_minutes, progress)

    def shipped(self) -> DamageNet:
        """The network a checkpoint holds: the moving average of the weights, or the weights."""
        return self.ema if self.ema is not None else self.model

    def checkpoint(self) -> dict:
        metrics = self.validate()
        meta = {"step": self.step, "hours": round(self.elapsed / 3600, 3), "families": list(self.cfg.families), **metrics}
        if self.cfg.keep_checkpoints:  # tools/select_damage_checkpoint.py picks among them through restore's decision
            (self.out / "checkpoints").mkdir(exist_ok=True)
            save_damage_net(self.shipped().eval(), self.out / "checkpoints" / f"step{self.step:06d}.pt", meta)
        if metrics["score"] > self.best:  # the detector to ship is the best held-out one, not the last
            self.best = metrics["score"]
            save_damage_net(self.shipped().eval(), self.out / "damage.pt", meta)
        save_last(self.state(), self.out)
        return metrics
