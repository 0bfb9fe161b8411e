"""Which device the networks run on: one rule for restore, eval and training."""
from __future__ import annotations

import torch

from faceheal.errors import UsageError


def pick_device(name: str) -> torch.device:
    """`auto` (CUDA when torch sees it, else the CPU), `cpu`, `cuda` or `cuda:N`; anything that cannot
    run here is a usage error, named, before any photo is touched."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: torch sees no CUDA device on this machine (use --device cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
