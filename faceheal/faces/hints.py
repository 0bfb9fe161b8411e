"""Faces the user points at: `--face-boxes FILE`, for the faces the detector gets wrong.

Damage that covers both eyes can hide a face from every look the detector takes (faceheal/faces/find.py);
the texture inpainter then fills it as if it were background. And now and then the detector finds a
"face" in a pattern or a statue. A box file lets the archivist fix both for the photos that need it:

    photo,x0,y0,x1,y1,what
    solvay_1927.jpg,172,160,222,220,face
    group/1931.tif,400,120,460,190,not-face

`photo` is the path as given on the command line (the report's `path`), the path under the input
folder, or the bare file name; a first line starting with `photo` is a header; the box
is in the photo's pixels as displayed (EXIF rotation applied), as the report's `box`; `what` is `face`
(the default: repair it with the face model, even if no detector finds it) or `not-face` (every
detection whose centre lies in the box is dropped, and its damage repaired as the rest of the photo).

A given box has no landmarks, and the face model needs them to align the face. Under the damage that
hid the face they cannot be found well, so two guesses are averaged: MTCNN at low thresholds inside the
box on a copy with the damage filled (only there, so the usual false faces cannot arise), and the
average face's landmarks placed in the box (where MTCNN finds nothing, that alone). Chosen on the 48
val photos whose face `faceheal restore` missed under NVIDIA damage over 40-60 % of the face, with a
box drawn up to 20 % too big and 8 % off centre (benchmarks/face_boxes.py): mean landmark error 0.30 /
0.25 / 0.23 of the eye distance for the search / the average face / their mean, and the model's
repair 21.1 / 21.7 / 21.9 dB in the face box (23.2 with the clean photo's landmarks); filling the damage
with Navier-Stokes rather than Telea for the search, the mean 0.21.
"""
from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from faceheal.errors import FacehealError, UsageError
from faceheal.faces.detect import Face, box_iou

KINDS = ("face", "not-face")
# where MTCNN puts the five landmarks in its box (fraction of the box's width, height), averaged over
# the main faces of 300 training photos (../shared/data/faces/aaf) and made mirror-symmetric
BOX_LANDMARKS = np.array([[0.2723, 0.3922], [0.7277, 0.3922], [0.5, 0.6053], [0.31, 0.7654], [0.69, 0.7654]])
SEARCH_MARGIN = 0.5  # the region searched: the box and half its larger side around it
SEARCH_SIDE = 160  # the box is resized to about this many pixels for the search
SEARCH_THRESHOLDS = [0.2, 0.3, 0.3]  # MTCNN's three stages (its own: 0.6, 0.7, 0.7)
MATCH_IOU = 0.3  # a detection overlapping a `face` box this much is the face the box means


@dataclass(frozen=True)
class FaceBox:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the displayed photo's pixels
    what: str = "face"  # face | not-face
    line: int = 0  # in the file, for messages
    where: str = ""  # "--face-boxes FILE line N", for messages


class FaceBoxes:
    """The box file, by photo: `for_source` gives a photo's boxes (by path under the input folder,
    else by file name)."""

    def __init__(self, path: Path, by_photo: dict[str, list[FaceBox]]):
        self.path = Path(path)
        self.by_photo = by_photo

    @classmethod
    def read(cls, path: Path) -> "FaceBoxes":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise UsageError(f"--face-boxes {path}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--face-boxes {path}: not a text (CSV) file") from None
        by_photo: dict[str, list[FaceBox]] = {}
        for n, row in enumerate(csv.reader(text.splitlines()), 1):
            row = [c.strip() for c in row]
            if not row or not row[0] or row[0].startswith("#") or (n == 1 and row[0].lower() == "photo"):
                continue
            where = f"--face-boxes {path} line {n}"
            if len(row) not in (5, 6):
                raise UsageError(f"{where}: expected photo,x0,y0,x1,y1[,face|not-face], got {len(row)} fields")
            try:
                x0, y0, x1, y1 = (float(v) for v in row[1:5])
            except ValueError:
                raise UsageError(f"{where}: the box must be four numbers (x0,y0,x1,y1)") from None
            if not (x1 > x0 and y1 > y0) or not all(np.isfinite([x0, y0, x1, y1])):
                raise UsageError(f"{where}: the box needs x1 > x0 and y1 > y0")
            what = row[5].lower() if len(row) == 6 and row[5] else "face"
            if what not in KINDS:
                raise UsageError(f"{where}: {row[5]!r} is not one of {', '.join(KINDS)}")
            key = PurePosixPath(row[0].replace("\\", "/")).as_posix()
            by_photo.setdefault(key, []).append(FaceBox((x0, y0, x1, y1), what, n, where))
        return cls(path, by_photo)

    def check(self, sources) -> None:
        """Every line names one of the inputs, and a bare file name names only one: a typo or an
        ambiguity is a usage error before anything runs, not a box silently ignored."""
        paths = {k for s in sources for k in _path_keys(s)}
        names: dict[str, int] = {}
        for s in sources:
            names[s.relative.name] = names.get(s.relative.name, 0) + 1
        for key, boxes in self.by_photo.items():
            if key in paths:
                continue
            if names.get(key, 0) > 1:
                raise UsageError(f"--face-boxes {self.path} line {boxes[0].line}: {key!r} names "
                                 f"{names[key]} inputs; give its path under the input folder")
            if key not in names:
                raise UsageError(f"--face-boxes {self.path} line {boxes[0].line}: no input photo {key!r}")

    def for_source(self, source) -> list[FaceBox]:
        for key in _path_keys(source):
            if key in self.by_photo:
                return self.by_photo[key]
        return self.by_photo.get(source.relative.name, [])


def _path_keys(source) -> list[str]:
    """The names a line may give a photo by, besides its bare file name: its path under the input
    folder, the path as given on the command line (the report's `path`), and that path made absolute."""
    return [source.relative.as_posix(), Path(source.path).as_posix(), Path(source.path).resolve().as_posix()]


def apply_face_boxes(faces: list[Face], boxes: list[FaceBox], display: np.ndarray,
                     hole: np.ndarray | None, notes: list[str] | None = None) -> list[Face]:
    """The detector's faces corrected by the user's boxes: detections whose centre lies in a
    `not-face` box are dropped; a `face` box keeps the detection it names (the user confirmed it), else it becomes a face
    of its own, its landmarks searched for inside it (`face_in_box`).

    `notes` (if given) gets a line per box that did something worth a look: each detection a not-face
    box dropped (so the report says what was removed), a not-face box that dropped nothing (a typo in
    its coordinates?), a face box where no look found a face (placed from the box alone)."""
    if not boxes:
        return faces
    notes = [] if notes is None else notes
    h, w = display.shape[:2]
    kept = list(faces)
    for b in boxes:
        if b.what != "not-face":
            continue
        dropped = [f for f in kept if centre_in(f.box, b.box)]
        kept = [f for f in kept if not any(f is d for d in dropped)]
        where = b.where or "not-face box"
        for f in dropped:
            notes.append(f"{where}: dropped the face detected at {_box_text(f.box)}"
                         + (f" (score {f.score:.2f})" if f.score is not None else ""))
        if not dropped:
            notes.append(f"{where}: not-face box {_box_text(b.box)} holds no detected face's centre: nothing dropped")
    for b in boxes:
        if b.what != "face":
            continue
        x0, y0, x1, y1 = b.box
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise FacehealError(f"{b.where or 'face box'}: ({x0:g},{y0:g},{x1:g},{y1:g}) lies outside the photo ({w}x{h})")
        if any(box_iou(f.box, b.box) >= MATCH_IOU for f in kept):
            continue
        face = face_in_box(display, hole, b.box)
        if face.score is None:
            notes.append(f"{b.where or 'face box'}: no face found inside {_box_text(b.box)}: "
                         "its landmarks are the average face's, placed by the box alone")
        kept.append(face)
    kept.sort(key=lambda f: (f.box[1], f.box[0]))
    return kept


def _box_text(box) -> str:
    return "(" + ",".join(f"{v:.0f}" for v in box) + ")"


def centre_in(box, outer) -> bool:
    """Whether `box`'s centre lies in `outer` (how a not-face box names the detections it drops)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


@functools.lru_cache(maxsize=1)
def lenient_detector():
    """MTCNN at the search's low stage thresholds, every size (its nets are per thread)."""
    from faceheal.faces.detect import MtcnnDetector

    return MtcnnDetector(min_face=0, threshold=SEARCH_THRESHOLDS[2], stage_thresholds=SEARCH_THRESHOLDS)


def face_in_box(display: np.ndarray, hole: np.ndarray | None, box: tuple[float, float, float, float]) -> Face:
    """A face at a box the user gave. Its landmarks: the mean of the best low-threshold MTCNN detection
    overlapping the box (searched for around it, the damage filled) and the average face's placed in
    the box; the average face's alone where nothing is found. The box is the user's; `given` marks it."""
    from faceheal.images import to_rgb8

    h, w = display.shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    m = SEARCH_MARGIN * side
    rx0, ry0, rx1, ry1 = int(max(0, x0 - m)), int(max(0, y0 - m)), int(min(w, np.ceil(x1 + m))), int(min(h, np.ceil(y1 + m)))
    region = np.ascontiguousarray(to_rgb8(display[ry0:ry1, rx0:rx1]))
    if hole is not None and hole[ry0:ry1, rx0:rx1].any():
        # Navier-Stokes, as the detector's second look (faceheal/faces/find.py): on the val faces below,
        # the mean landmark error 0.233 -> 0.207 of the eye distance against Telea's fill
        region = cv2.inpaint(region, hole[ry0:ry1, rx0:rx1].astype(np.uint8) * 255, 5, cv2.INPAINT_NS)
    k = SEARCH_SIDE / side
    small = cv2.resize(region, (max(1, round(region.shape[1] * k)), max(1, round(region.shape[0] * k))),
                       interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    best, best_iou, score = None, MATCH_IOU, None
    for f in lenient_detector().detect(small):
        bx0, by0, bx1, by1 = f.box
        overlap = box_iou((bx0 / k + rx0, by0 / k + ry0, bx1 / k + rx0, by1 / k + ry0), box)
        if overlap > best_iou:
            best_iou, score, best = overlap, f.score, f.landmarks / k + [rx0, ry0]
    average = np.array([x0, y0]) + BOX_LANDMARKS * [x1 - x0, y1 - y0]
    landmarks = average if best is None else (best + average) / 2
    return Face(box=(float(x0), float(y0), float(x1), float(y1)), score=score, landmarks=landmarks, given=True)
