"""The texture inpainter for damage away from faces: stage 2's network without the face layout.

Backgrounds, clothes, hair and walls have no face layout to follow, so the network is the texture
stage (faceheal/model/texture.py: masked image + mask + classical fill in, multi-scale residual on the
fill out, mask-aware attention) with no layout channels, run at the scan's own resolution on windows
around the damage. It is trained by `faceheal train-texture` on random unaligned tiles of the
training photos, starting from the shipped face generator's texture stage (its layout inputs
dropped): a head start on "continue the texture around a hole".

`inpaint_windows` covers any hole of any size: the damage's bounding boxes are cut into cores of
`core` px, each read with `context` px around it, so memory follows the window, not the scan.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from faceheal.model.classical import TILE_PRIOR_RADIUS, classical_fill
from faceheal.model.texture import TextureNet
from faceheal.model.windows import windows
from faceheal.model.weights import load_network, save_weights

# The same network trained from a soft copy of the truth instead of OpenCV's fill (`faceheal train-texture
# --prior soft`, weights/faceheal-detail.pt) is the detail pass over a big face's repair: the face model
# repairs at 256 px, and resampled up to the photo the repair lacks every frequency above the crop's.


@dataclass
class TileConfig:
    widths: tuple[int, ...] = (16, 32, 64, 128)
    bottleneck_blocks: int = 3
    attention_heads: int = 4

    @staticmethod
    def tiny() -> "TileConfig":
        return TileConfig(widths=(8, 8, 16), bottleneck_blocks=1, attention_heads=2)

    @staticmethod
    def from_dict(d: dict) -> "TileConfig":
        known = set(TileConfig.__dataclass_fields__)
        return TileConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})


class TileInpainterNet(nn.Module):
    """(image, hole, classical fill) in [-1, 1] -> RGB predictions coarse to fine and the composite."""

    def __init__(self, config: TileConfig = TileConfig()):
        super().__init__()
        self.config = config
        self.texture = TextureNet(0, config.widths, config.bottleneck_blocks, config.attention_heads)

    @property
    def multiple(self) -> int:
        """Window sides must be multiples of this (the encoder's total stride)."""
        return 2 ** (len(self.config.widths) - 1)

    def forward(self, image: torch.Tensor, hole: torch.Tensor, prior: torch.Tensor) -> dict[str, torch.Tensor]:
        masked = image * (1 - hole)
        prior = masked + prior * hole
        empty = image[:, :0]  # no layout channels
        outputs = self.texture(masked, hole, empty, prior)
        return {"outputs": outputs, "composed": masked + outputs[-1] * hole}


def from_face_texture(face_texture: nn.Module, widths: tuple[int, ...], bottleneck_blocks: int,
                      attention_heads: int, num_classes: int) -> TileInpainterNet:
    """A tile inpainter initialised from a face generator's texture stage: every weight copied, the
    stem's layout input channels dropped."""
    net = TileInpainterNet(TileConfig(tuple(widths), bottleneck_blocks, attention_heads))
    state = face_texture.state_dict()
    own = net.texture.state_dict()
    for k, v in state.items():
        if k in own and own[k].shape != v.shape and v.ndim == 4 and v.shape[1] == own[k].shape[1] + num_classes:
            v = torch.cat([v[:, :4], v[:, 4 + num_classes:]], 1)  # (rgb, hole | layout | prior): layout out
        own[k] = v.detach().clone().float()
    net.texture.load_state_dict(own)
    return net


def save_tile_net(net: TileInpainterNet, path: Path, meta: dict | None = None) -> str:
    return save_weights(net, asdict(net.config), path, meta)


def load_tile_net(path: Path) -> tuple[TileInpainterNet, dict]:
    """Load verified weights; raises `WeightsError` with the reason."""
    return load_network(path, lambda config: TileInpainterNet(TileConfig.from_dict(config)), "texture inpainter")


@torch.inference_mode()
def inpaint_windows(net: TileInpainterNet, image: np.ndarray, hole: np.ndarray, core: int = 192, context: int = 32,
                    batch_size: int = 8, device: str | torch.device = "cpu", start: str = "classical") -> np.ndarray:
    """Fill `hole` of a float RGB image (H, W, 3) in [0, 1] with the network, window by window at the
    image's own resolution; returns a copy with only hole pixels changed. `start`: the fill the network
    starts from, OpenCV's (`classical`, the texture inpainter) or the image's own hole pixels (`image`,
    the detail pass: they hold a big face's resampled repair). (320 px cores ran 1.25x the
    rate at the same PSNR on val photos, but raised the 100 MP scan's peak by 120 MB.) Windows of one shape go
    together, a batch at a time; a window sees the repairs of the batches before it as known pixels
    (damage not repaired yet is hidden from it), so a long scratch continues one repair."""
    out = image.astype(np.float32, copy=True)
    h, w = hole.shape
    m = net.multiple
    net = net.to(device)
    todo = hole.copy()  # damage not repaired yet
    # each window padded only up to the network's stride, and batched with windows of the same padded
    # shape (a small window padded to a big one's size cost as much as the big one)
    groups: dict[tuple[int, int], list] = {}
    for x0, y0, x1, y1 in windows(hole, core, context):
        wx0, wy0, wx1, wy1 = max(0, x0 - context), max(0, y0 - context), min(w, x1 + context), min(h, y1 + context)
        shape = (-(-(wy1 - wy0) // m) * m, -(-(wx1 - wx0) // m) * m)
        groups.setdefault(shape, []).append((x0, y0, x1, y1, wx0, wy0, wx1, wy1))
    for (ph, pw), group in groups.items():
        for s in range(0, len(group), batch_size):
            where = group[s:s + batch_size]
            tiles, holes, priors = [], [], []
            for x0, y0, x1, y1, wx0, wy0, wx1, wy1 in where:
                tile = out[wy0:wy1, wx0:wx1]
                # every damaged pixel of the window not repaired yet is hidden: the core's, which this window
                # repairs, and the context's (only the core is written back below)
                fill_mask = todo[wy0:wy1, wx0:wx1].copy()
                prior = tile if start == "image" else classical_fill(tile, fill_mask, TILE_PRIOR_RADIUS)
                # padded by mirroring, the mask too: a mirrored damaged pixel is damage, never known
                # context (white paint mirrored in as "known" bled into repairs at photo edges)
                pad = ((0, ph - tile.shape[0]), (0, pw - tile.shape[1]))
                mode = "reflect" if min(tile.shape[:2]) > 1 else "edge"
                tiles.append(np.pad(tile, pad + ((0, 0),), mode=mode))
                priors.append(np.pad(prior, pad + ((0, 0),), mode=mode))
                holes.append(np.pad(fill_mask, pad, mode=mode))
            x = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).to(device) * 2 - 1
            p = torch.from_numpy(np.stack(priors)).permute(0, 3, 1, 2).to(device) * 2 - 1
            k = torch.from_numpy(np.stack(holes)[:, None].astype(np.float32)).to(device)
            result = ((net(x, k, p)["composed"].float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
            for r, (x0, y0, x1, y1, wx0, wy0, wx1, wy1) in zip(result, where):
                core_hole = hole[y0:y1, x0:x1]
                region = out[y0:y1, x0:x1]
                region[core_hole] = r[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0][core_hole]
                todo[y0:y1, x0:x1] = False
    return out
