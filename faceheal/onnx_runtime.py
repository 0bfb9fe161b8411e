"""The generator on ONNX Runtime, for CPU inference.

Measured on this project's 2-core CPU (`python benchmarks/bench_generator.py --runtimes torch onnx`):
ONNX Runtime runs the same network about 1.4x faster than eager PyTorch (channels_last), with
outputs equal to within 1e-6. So on the CPU `faceheal restore` uses it when `onnxruntime` is
installed (`--runtime auto`), and falls back to PyTorch otherwise.

The ONNX graphs are exported here, from the shipped PyTorch weights, the first time a given weights
file and batch size are used (a few seconds; the graph has fixed shapes, which the mask-aware
attention's pooling needs), and cached under ~/.cache/faceheal (or $XDG_CACHE_HOME/faceheal) by the
weights' SHA-256: nothing is downloaded, and the weights file stays the single source of truth.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from faceheal.model.generator import TwoStageGenerator


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "faceheal"


class _Exported(torch.nn.Module):
    """The generator's inference outputs as a plain tuple: composed crop and layout logits."""

    def __init__(self, model: TwoStageGenerator):
        super().__init__()
        self.model = model

    def forward(self, image, hole, prior):
        out = self.model(image, hole, prior)
        return out["composed"], out["layout"]


def export(model: TwoStageGenerator, path: Path, batch: int) -> Path:
    """Write the model as ONNX for one batch size and the model's crop size, atomically."""
    s = model.config.size
    args = (torch.zeros(batch, 3, s, s), torch.zeros(batch, 1, s, s), torch.zeros(batch, 3, s, s))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shape checks that are constant for fixed shapes
            torch.onnx.export(_Exported(model.eval()), args, tmp, input_names=["image", "hole", "prior"],
                              output_names=["composed", "layout"], opset_version=17, dynamo=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OnnxGenerator:
    """Runs the exported generator: same inputs and outputs as the PyTorch model's inference path.
    One ONNX Runtime session per batch size met, exported and cached on first use."""

    def __init__(self, model: TwoStageGenerator, weights_sha256: str, threads: int | None = None):
        self.model, self.tag = model, f"generator-{weights_sha256[:16]}-torch{torch.__version__.split('+')[0]}"
        self.threads = threads or torch.get_num_threads()
        self.sessions: dict[int, object] = {}

    def _session(self, batch: int):
        import onnxruntime as ort

        if batch not in self.sessions:
            path = cache_dir() / f"{self.tag}-b{batch}.onnx"
            if not path.is_file():
                path = self._export_in_fresh_thread(path, batch)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.sessions[batch] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return self.sessions[batch]

    def _export_in_fresh_thread(self, path: Path, batch: int) -> Path:
        """Export from a new thread: inference and grad modes are per thread, and the caller's
        inference mode would make PyTorch trace its fused attention kernels, which ONNX cannot express."""
        from concurrent.futures import ThreadPoolExecutor

        def run() -> Path:
            try:
                return export(self.model, path, batch)
            except OSError:  # an unwritable cache: a temporary folder will do for this run
                return export(self.model, Path(tempfile.mkdtemp(prefix="faceheal-onnx-")) / path.name, batch)

        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(run).result()

    def __call__(self, image: np.ndarray, hole: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, S, S), (B, 1, S, S), (B, 3, S, S) float32 in [-1, 1] / {0, 1} -> composed, layout logits."""
        session = self._session(len(image))
        composed, layout = session.run(None, {"image": np.ascontiguousarray(image, np.float32),
                                              "hole": np.ascontiguousarray(hole, np.float32),
                                              "prior": np.ascontiguousarray(prior, np.float32)})
        return composed, layout
