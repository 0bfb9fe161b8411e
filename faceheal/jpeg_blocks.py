"""JPEG repairs that touch only the repaired blocks.

Decoding a JPEG and encoding it again changes every 8x8 block a little (generation loss), so "only
damaged pixels change" would be false for every JPEG in an archive. Instead, as `jpegtran` does for its
lossless transforms, the repaired photo is encoded with the file's own quantisation tables and chroma
subsampling, and only the blocks that hold a changed pixel take their coefficients from that encode;
every other block keeps its coefficients from the original file, bit for bit (jpeglib reads and writes
coefficients through libjpeg). The original's markers (APPn: JFIF, EXIF, ICC, XMP, Photoshop/IPTC;
COM) are kept as they were, and a progressive file stays progressive.
"""
from __future__ import annotations

import io
import os
import tempfile

import numpy as np

_APP_OR_COM = set(range(0xE0, 0xF0)) | {0xFE}


def segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The marker segments before the first scan, as (marker, bytes), and the rest from SOS on."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out, i = [], 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("corrupt JPEG marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return out, data[i:]
        length = int.from_bytes(data[i + 2:i + 4], "big")
        out.append((marker, data[i:i + 2 + length]))
        i += 2 + length
    raise ValueError("JPEG without a scan")


def with_markers_of(original: bytes, encoded: bytes) -> bytes:
    """`encoded` with the application and comment segments of `original`, exactly and in order,
    instead of its own (Pillow writes only JFIF, EXIF, ICC and XMP, and drops COM and APP13)."""
    head, _ = segments(original)
    new_head, rest = segments(encoded)
    kept = [seg for m, seg in head if m in _APP_OR_COM]
    tables = [seg for m, seg in new_head if m not in _APP_OR_COM]
    return b"\xff\xd8" + b"".join(kept) + b"".join(tables) + rest


def _read_dct(data: bytes):
    import jpeglib

    with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as f:
        f.write(data)
    try:
        jpeg = jpeglib.read_dct(f.name)
        jpeg.load()
        return jpeg
    finally:
        os.unlink(f.name)


def touched_blocks(changed: np.ndarray, block_shape: tuple[int, int], pixels_per_block: tuple[int, int]) -> np.ndarray:
    """(rows, cols) bool: the blocks of one component whose footprint holds a changed pixel."""
    by, bx = pixels_per_block
    rows, cols = block_shape
    h, w = changed.shape
    padded = np.zeros((rows * by, cols * bx), bool)
    padded[:min(h, rows * by), :min(w, cols * bx)] = changed[:rows * by, :cols * bx]
    return padded.reshape(rows, by, cols, bx).any(axis=(1, 3))


def splice(original: bytes, encoded: bytes, changed: np.ndarray) -> bytes | None:
    """The original file with the blocks under `changed` (H, W, stored orientation) taken from
    `encoded` (the repaired photo encoded with the original's tables and subsampling); None when the two
    files' block structures differ (then the caller keeps `encoded`)."""
    old, new = _read_dct(original), _read_dct(encoded)
    if old.num_components != new.num_components or old.num_components not in (1, 3):
        return None
    if not np.array_equal(np.asarray(old.qt), np.asarray(new.qt)):
        return None
    samp = np.asarray(old.samp_factor).reshape(-1, 2)  # (v, h) per component
    if not np.array_equal(samp, np.asarray(new.samp_factor).reshape(-1, 2)):
        return None
    vmax, hmax = samp[:, 0].max(), samp[:, 1].max()
    names = ["Y", "Cb", "Cr"][:old.num_components]
    for name, (v, h) in zip(names, samp):
        a, b = getattr(old, name), getattr(new, name)
        if a.shape != b.shape:
            return None
        touched = touched_blocks(changed, a.shape[:2], (8 * vmax // v, 8 * hmax // h))
        merged = a.copy()
        merged[touched] = b[touched]
        setattr(old, name, merged)
    with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as f:
        path = f.name
    try:
        old.write_dct(path)  # sequential: jpeglib writes coefficients in one scan
        if getattr(old, "progressive_mode", False):
            _make_progressive(path)
        with open(path, "rb") as f:
            spliced = f.read()
    finally:
        os.unlink(path)
    return with_markers_of(original, spliced)


def _make_progressive(path: str) -> bool:
    """Rewrite a sequential JPEG as progressive, losslessly (the same coefficients), with `jpegtran`
    where it is installed (Debian: libjpeg-turbo-progs). Without it the file stays sequential: its
    pixels are the same, only the order of its scans differs."""
    import shutil
    import subprocess

    tool = shutil.which("jpegtran")
    if tool is None:
        return False
    out = path + ".prog"
    try:
        subprocess.run([tool, "-copy", "all", "-progressive", "-outfile", out, path], check=True,
                       capture_output=True, timeout=120)
        os.replace(out, path)
        return True
    except (OSError, subprocess.SubprocessError):
        if os.path.exists(out):
            os.unlink(out)
        return False


def decode(data: bytes) -> np.ndarray:
    """Pixels of a JPEG as Pillow decodes them (what faceheal compared against)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))
