"""Shared fixtures: example photos shipped in examples/, tiny images made in code, ../shared/data."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED_DATA = ROOT.parent / "shared" / "data"


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = array
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[..., ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), arr)
    return path


def read_rgb(path: Path) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return arr[..., ::-1] if arr.ndim == 3 and arr.shape[2] == 3 else arr


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    """A real old portrait (Bringing-Old-Photos test image, MIT) as RGB uint8, one face."""
    return read_rgb(EXAMPLES / "photos" / "bopbtl_a.png")


@pytest.fixture
def face_mask(portrait) -> np.ndarray:
    """A damage mask across the portrait's face: a thick diagonal stroke and a blob (bool)."""
    h, w = portrait.shape[:2]
    m = np.zeros((h, w), np.uint8)
    cv2.line(m, (int(w * 0.3), int(h * 0.3)), (int(w * 0.7), int(h * 0.5)), 255, 9)
    cv2.circle(m, (int(w * 0.45), int(h * 0.42)), 14, 255, -1)
    return m > 0


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (it holds the project's real face data)")
    return SHARED_DATA
