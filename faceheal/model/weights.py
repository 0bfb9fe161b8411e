"""Where the shipped weights live, and the one way every network's weights are saved and loaded.

Weights ship inside the package (`faceheal/weights/` in a wheel, the top-level `weights/` folder of a
checkout, mapped there by pyproject.toml); `FACEHEAL_WEIGHTS=/some/folder` points everything
elsewhere. A weights file is `torch.save`d {"config", "state_dict", "meta"} with its SHA-256 in
`<file>.sha256` beside it, and is only ever loaded with `weights_only=True` after that checksum
matches: a corrupt, truncated or replaced file is an error, never a silently different model.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from faceheal.errors import WeightsError

WEIGHTS_ENV = "FACEHEAL_WEIGHTS"
GENERATOR = "faceheal-generator.pt"
DAMAGE_NET = "faceheal-damage.pt"
TEXTURE_NET = "faceheal-texture.pt"
DETAIL_NET = "faceheal-detail.pt"  # optional: the detail pass over big faces' repairs (model/tiles.py)
LPIPS = "lpips_alexnet.pt"


def weights_dir() -> Path:
    """$FACEHEAL_WEIGHTS, else the weights installed with the package, else a checkout's weights/."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent.parent
    installed = package / "weights"  # a wheel: faceheal/weights/
    if installed.is_dir():
        return installed
    return package.parent / "weights"  # a checkout (editable install): the project's weights/ folder


def shipped(name: str) -> Path:
    """The path of one shipped weights file (which may not exist: loading says so)."""
    return weights_dir() / name


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (weights here; inputs and masks in provenance records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verify(path: str | os.PathLike) -> str:
    """The file's SHA-256, checked against `<file>.sha256`; raises WeightsError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights not found: {path}")
    recorded = checksum_file(path)
    if not recorded.is_file():
        raise WeightsError(f"{path}: no {recorded.name} beside it to verify the weights")
    expected = recorded.read_text().split()[0]
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsError(f"{path}: SHA-256 {actual[:12]}... does not match {recorded.name} ({expected[:12]}...): "
                           f"a corrupt or replaced file")
    return actual


def load_weights(path: str | os.PathLike) -> dict:
    """The payload of a verified weights file, read with `weights_only=True`."""
    import torch

    verify(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling problem is a weights problem
        raise WeightsError(f"{path}: cannot load weights ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict):
        raise WeightsError(f"{path}: not a faceheal weights file")
    return payload


def float_state(payload: dict) -> dict:
    """The state dict in float32 (weights ship in fp16: half the size, the same results within rounding)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}


def load_network(path: str | os.PathLike, build, what: str):
    """(network in eval mode, meta) from a verified weights file: `build(config)` makes the module, the
    state dict is loaded in float32; any mismatch is a WeightsError naming `what` the file should hold."""
    payload = load_weights(path)
    try:
        net = build(payload["config"])
        net.load_state_dict(float_state(payload))
    except Exception as e:  # any shape or key problem is a weights problem
        raise WeightsError(f"{path}: not {what} weights ({type(e).__name__}: {e})") from None
    return net.eval(), payload.get("meta", {})


def save_weights(model, config: dict, path: str | os.PathLike, meta: dict | None = None, half: bool = True) -> str:
    """Write a torch module's {"config", "state_dict", "meta"} (fp16 by default) through a temp file,
    then its SHA-256."""
    import torch

    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu().clone() for k, v in model.state_dict().items()}
    # metadata as plain JSON values: a numpy scalar in it pickles as a numpy global, which
    # torch.load(weights_only=True) then refuses, and the file would not load
    meta = json.loads(json.dumps(meta or {}, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save({"config": config, "state_dict": state, "meta": meta}, tmp)
    tmp.replace(path)
    digest = sha256_of(path)
    checksum_file(path).write_text(f"{digest}  {path.name}\n")
    return digest
