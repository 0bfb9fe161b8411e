"""The generator on ONNX Runtime (the CPU default when installed) matches PyTorch, caches its export,
and falls back to PyTorch rather than failing photos."""
from __future__ import annotations

import numpy as np
import pytest

from faceheal import onnx_runtime
from faceheal.inpainters import GeneratorInpainter

pytestmark = pytest.mark.skipif(not onnx_runtime.available(), reason="onnxruntime not installed")


def _batch(n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    crops = rng.random((n, size, size, 3)).astype(np.float32)
    holes = np.zeros((n, size, size), bool)
    for i in range(n):
        y, x = rng.integers(20, size // 2, 2)
        holes[i, y:y + 90, x:x + 70] = True
    return crops, holes


def test_onnx_matches_pytorch_and_reuses_its_export(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fast = GeneratorInpainter(device="cpu", runtime="onnx", batch_size=3)
    slow = GeneratorInpainter(device="cpu", runtime="torch", batch_size=3)
    assert fast.describe()["runtime"] == "onnxruntime" and slow.describe()["runtime"] == "torch"
    crops, holes = _batch(4, fast.crop_size)  # a batch of 3, then one of 1
    a, b = fast.inpaint(crops, holes), slow.inpaint(crops, holes)
    assert np.abs(a.images - b.images).max() < 1e-4
    assert (a.layouts == b.layouts).mean() > 0.999
    exported = sorted(p.name for p in (tmp_path / "faceheal").glob("*.onnx"))
    assert len(exported) == 2 and exported[0].endswith("-b1.onnx") and exported[1].endswith("-b3.onnx")
    stamp = [(p.stat().st_mtime_ns) for p in sorted((tmp_path / "faceheal").glob("*.onnx"))]
    GeneratorInpainter(device="cpu", runtime="onnx", batch_size=3).inpaint(crops, holes)
    assert stamp == [(p.stat().st_mtime_ns) for p in sorted((tmp_path / "faceheal").glob("*.onnx"))]


def test_a_broken_runtime_falls_back_to_pytorch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    gen = GeneratorInpainter(device="cpu", runtime="onnx", batch_size=2)

    def broken(*args):
        raise RuntimeError("simulated failure")

    gen.onnx = broken
    crops, holes = _batch(2, gen.crop_size)
    out = gen.inpaint(crops, holes)
    assert out.images.shape == crops.shape and gen.onnx is None
    assert "using PyTorch" in capsys.readouterr().err
