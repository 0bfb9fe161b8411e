"""The learned damage detector: a small fully convolutional network that maps a photo to a per-pixel
probability of damage (scratch, crack, dust, missing or painted area).

Why this shape: archival scans are large (2000-10000 px), the damage is thin (1-4 px at the scan's
resolution) and the machine may have two CPU cores. So the network spends almost nothing at full
resolution (one 3x3 layer in, two 1x1 layers out) and does its thinking at 1/2 to 1/8 resolution,
where dilated layers see about 100 px of context: enough to tell a long crack from an eyelash, a
dust speck from a catchlight, a torn-off corner from a white shirt. Its first input channels are the
classical cues (white and black top-hats, chroma) computed in torch, so training and inference see
exactly the same thing on any device. About 2,600 multiply-adds per pixel.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceheal.model.weights import DAMAGE_NET, load_network, save_weights, shipped

DEFAULT_DAMAGE_WEIGHTS = shipped(DAMAGE_NET)


@dataclass(frozen=True)
class DamageNetConfig:
    widths: tuple[int, int, int, int] = (8, 16, 32, 32)  # full, 1/2, 1/4, 1/8 resolution
    tophat: int = 7  # structures thinner than about this many pixels stand out in the cue channels
    colour: bool = False  # two opponent-colour cues as well (stains, foxing and tints are colour, not luma)


def _running_max(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Max over windows of k along `dim` (output k-1 shorter): windows of 1, 2, 4... by elementwise
    maxima of shifted views, then two overlapping ones. About log2(k) + 1 passes over memory, far
    cheaper on the CPU than max_pool2d, which also computes indices."""
    n = x.shape[dim] - k + 1
    span = 1
    while span * 2 <= k:
        x = torch.maximum(x.narrow(dim, 0, x.shape[dim] - span), x.narrow(dim, span, x.shape[dim] - span))
        span *= 2
    return torch.maximum(x.narrow(dim, 0, n), x.narrow(dim, k - span, n))


def cue_channels(rgb: torch.Tensor, k: int, colour: bool = False) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 4, H, W): luma, white top-hat, black top-hat, chroma; with `colour`
    (B, 6, H, W): also red-green and yellow-blue opponent channels, zero on a gray print."""
    from faceheal.images import LUMA

    gray = (rgb * torch.tensor(LUMA, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    pad = k // 2

    def dilate(x):  # a square max filter: separable, each 1-D pass by doubling windows
        x = _running_max(F.pad(x, (pad, pad, 0, 0), mode="replicate"), k, -1)
        return _running_max(F.pad(x, (0, 0, pad, pad), mode="replicate"), k, -2)

    def erode(x):
        return -dilate(-x)

    white = gray - dilate(erode(gray))  # opening removes bright thin things
    black = erode(dilate(gray)) - gray  # closing removes dark thin things
    chroma = rgb.amax(1, keepdim=True) - rgb.amin(1, keepdim=True)
    cues = [gray, white * 4, black * 4, chroma]
    if colour:
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        cues += [(r - g) * 2, (r + g - 2 * b)]
    return torch.cat(cues, 1)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DamageNet(nn.Module):
    def __init__(self, config: DamageNetConfig = DamageNetConfig()):
        super().__init__()
        self.config = config
        c0, c1, c2, c3 = config.widths
        self.enc0 = _conv(6 if config.colour else 4, c0)
        self.enc1 = _conv(c0, c1, stride=2)
        self.enc2 = _conv(c1, c2, stride=2)
        self.enc3 = _conv(c2, c3, stride=2)
        self.mid = nn.Sequential(_conv(c3, c3, dilation=2), _conv(c3, c3, dilation=4))
        self.dec2 = _conv(c3 + c2, c1)
        self.dec1 = _conv(c1 + c1, c0)
        self.head = nn.Sequential(nn.Conv2d(c0 + c0, c0, 1), nn.ReLU(inplace=True), nn.Conv2d(c0, 1, 1))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 1, H, W) damage logits. Any H, W (padded to a multiple of 8)."""
        h, w = rgb.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            rgb = F.pad(rgb, (0, pw, 0, ph), mode="replicate")
        x0 = self.enc0(cue_channels(rgb, self.config.tophat, self.config.colour))
        x1 = self.enc1(x0)
        x2 = self.enc2(x1)
        x3 = self.enc3(x2)
        x3 = x3 + self.mid(x3)
        up = lambda x, ref: F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        d2 = self.dec2(torch.cat([up(x3, x2), x2], 1))
        d1 = self.dec1(torch.cat([up(d2, x1), x1], 1))
        # head(cat(up(d1), x0)) with its first 1x1 conv split in two: a 1x1 conv commutes with
        # bilinear upsampling, so d1's share is computed at half resolution (same result, less work)
        first, c0 = self.head[0], x0.shape[1]
        y = up(F.conv2d(d1, first.weight[:, :c0]), x0) + F.conv2d(x0, first.weight[:, c0:], first.bias)
        out = self.head[2](self.head[1](y))
        return out[..., :h, :w]


def fold_batch_norm(model: DamageNet) -> DamageNet:
    """Inference copy with every BatchNorm folded into the convolution before it (same outputs, one
    pass over memory fewer per layer)."""
    import copy

    model = copy.deepcopy(model).eval()
    for block in model.modules():
        if isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], nn.BatchNorm2d):
            conv, bn = block[0], block[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, bias=True)
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                fused.bias.copy_(bn.bias - bn.running_mean * scale)
            block[0], block[1] = fused, nn.Identity()
    return model


def save_damage_net(model: DamageNet, path: Path, meta: dict | None = None) -> str:
    """fp16 weights + config + meta, and a .sha256 file beside them (faceheal/model/weights.py)."""
    return save_weights(model, asdict(model.config), path, meta)


def load_damage_net(path: Path = DEFAULT_DAMAGE_WEIGHTS) -> tuple[DamageNet, dict]:
    """Load verified weights; raises WeightsError with the reason."""
    return load_network(path, lambda cfg: DamageNet(DamageNetConfig(widths=tuple(cfg["widths"]), tophat=int(cfg["tophat"]),
                                                                    colour=bool(cfg.get("colour", False)))),
                        "damage detector")


def detector_precision(precision: str = "auto") -> str:
    """The detector's arithmetic. `auto` is fp32: the per-face decision was calibrated on fp32 masks,
    and bf16 (asked for with `bf16`; twice the rate on a CPU with native bf16: 0.52 against 0.80 s
    for a 2000x2000 photo on this project's 2 cores) moves F1 by at most 0.003 on val faces but flips
    2-4 % of the flagged pixels at the flags' edges, enough to tip one more of 88 clean test photos
    over the decision's threshold."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"damage detector precision {precision!r}: choose auto, fp32 or bf16")
    return "fp32" if precision == "auto" else precision


class LearnedDamageDetector:
    """Damage masks for whole photos, tiled so memory stays bounded on huge scans."""

    def __init__(self, weights: Path = DEFAULT_DAMAGE_WEIGHTS, device: str = "cpu", tile: int = 1024, overlap: int = 48,
                 precision: str = "auto"):
        """precision: see `detector_precision`; `fp32` gives the same bits on every machine."""
        self.weights = Path(weights)
        model, self.meta = load_damage_net(self.weights)
        self.model = fold_batch_norm(model)
        self.device = torch.device(device)
        self.model.to(self.device)
        if self.device.type == "cpu":  # oneDNN's fast path for few-channel convolutions: 2x here
            self.model = self.model.to(memory_format=torch.channels_last)
        self.tile, self.overlap = tile, overlap
        self.precision = detector_precision(precision)

    def threshold(self, sensitivity: float) -> float:
        """Probability threshold: the held-out best at sensitivity 0.5, lower (more found) towards 1."""
        base = float(self.meta.get("threshold", 0.5))
        return float(np.interp(sensitivity, [0.0, 0.5, 1.0], [min(0.95, base + 0.3), base, max(0.05, base - 0.3)]))

    @torch.inference_mode()
    def mask(self, pixels: np.ndarray, threshold: float, tile: int | None = None,
             sure: np.ndarray | None = None) -> np.ndarray:
        """(H, W) bool: probability of damage above `threshold`. `pixels`: float RGB in [0, 1] or
        pixels as stored (uint8/uint16, gray or colour), converted tile by tile. `sure`, when given (a
        bit-packed mask, `decision.packed_mask`), gets the pixels whose logit is above `SURE_LOGIT`
        set: the per-face decision's evidence, at one bit a pixel."""
        from faceheal.masks.decision import SURE_LOGIT
        from faceheal.images import as_float_rgb

        h, w = pixels.shape[:2]
        out = np.zeros((h, w), bool)
        step = min(tile or self.tile, self.tile) - 2 * self.overlap
        for y0 in range(0, h, step):
            band = np.zeros((min(h, y0 + step) - y0, w), bool) if sure is not None else None
            for x0 in range(0, w, step):
                ya, xa = max(0, y0 - self.overlap), max(0, x0 - self.overlap)
                yb, xb = min(h, y0 + step + self.overlap), min(w, x0 + step + self.overlap)
                tile = as_float_rgb(pixels[ya:yb, xa:xb])
                x = torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1)[None].to(self.device)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    logits = self.model(x)[0, 0].float().cpu().numpy()
                ye, xe = min(h, y0 + step), min(w, x0 + step)
                # logit > log(t / (1 - t)) is probability > t, without the sigmoid over every pixel
                cut = float(np.log(threshold / (1 - threshold)))
                core = logits[y0 - ya:ye - ya, x0 - xa:xe - xa]
                out[y0:ye, x0:xe] = core > cut
                if band is not None:
                    band[:, x0:xe] = core > SURE_LOGIT
            if band is not None:
                sure[y0:y0 + len(band)] |= np.packbits(band, axis=1)
        return out
