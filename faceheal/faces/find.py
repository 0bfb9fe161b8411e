"""Finding the faces of a damaged photo: damage hides faces and fakes them.

Paint over both eyes hides a face from MTCNN; the edges of paint strokes can look like a small face.
So where real damage lies beside every face found (or no face was found, or a found one may be made
of paint, or has paint over 5 % of its box) the detector looks a second time, on a copy with the
damage filled, and the two looks are merged; a painted face takes the second look's landmarks.
What a lenient detector still sees there under the damage, beside every face kept, is reported as a
possible face (`possible_faces`), so a face repaired as background does not pass silently.
Restore and `faceheal mask` both find faces here.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import cv2
import numpy as np

from faceheal.faces.detect import Face, FaceDetector, box_inside, box_iou
from faceheal.faces.hints import FaceBox, apply_face_boxes, centre_in
from faceheal.images import to_rgb8


DETECT_MAX_SIDE = 1600  # faces in a scan are large: detect on a copy no larger than this


def detection_image(display: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """An 8-bit RGB copy for the detector, downscaled (area) first so a huge scan is never converted
    whole; returns it and its scale relative to the photo."""

    h, w = display.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        display = cv2.resize(display, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return to_rgb8(display), scale


# confidence a face needs in the look through filled damage (MTCNN's own is 0.85): on 134 val photos
# with NVIDIA masks over 40-60 % of the face box, 0.85 / 0.7 / 0.55 missed 18 / 11 / 11 faces, with
# 2 / 2 / 2 false ones
SECOND_LOOK_THRESHOLD = 0.7
SECOND_LOOK_DAMAGE = 0.001  # damage over this share of the photo beside every face found: look again through it
# a face found with damage over this share of its box takes its landmarks from the look through the
# filled damage: MTCNN's landmarks through paint are off (see `merge_looks`)
LANDMARKS_THROUGH_DAMAGE = 0.05
SECOND_LOOK_FILL = cv2.INPAINT_NS  # the fill the second look sees through
# A possible face: a detection of MTCNN at low thresholds (faces/hints.py SEARCH_THRESHOLDS) in the
# second look's filled copy, beside every face kept, with this confidence and at least this share of
# its box damaged. On 40 'val' photos under NVIDIA damage over 30-60 % of the face (120 photos), the
# faces no look found were 12: confidence 0.3 / 0.5 / 0.6 with damage >= 0.1 named 9 / 8 / 7 of them
# with 7 / 2 / 2 false ones; without the damage condition 47 / 20 / 20 false ones.
POSSIBLE_FACE_SCORE, POSSIBLE_FACE_DAMAGE = 0.5, 0.1
# A "face" inside a bigger, surer face's box is part of that face (an eye and a stroke of paint, or a
# nostril and the mouth, read as a small face); repaired as a face of its own, it got a small face
# model's fill over the real face's eye (a gray smear where an eye was). On 231 damaged val photos (60
# CelebA-HQ and 60 All-Age-Faces val photos, strokes, brush marks and NVIDIA masks over the main face)
# 4 such detections, 71-100 % inside, 0.06-0.44 of the width, every one less sure than the face around
# it; none on the 120 clean photos.
NESTED_INSIDE, NESTED_WIDTH = 0.6, 0.6


def find_faces(detector: FaceDetector, display: np.ndarray, hole: np.ndarray | None = None,
               hole_for: Callable[[list[np.ndarray]], np.ndarray] | None = None,
               timed: Callable = lambda stage: contextlib.nullcontext(),
               boxes: Sequence[FaceBox] = (), notes: list[str] | None = None,
               possible: list[Face] | None = None) -> tuple[list[Face], np.ndarray | None]:
    """The faces of a photo (photo pixels) and its damage mask, as restore and `faceheal mask` find them.

    `hole`: a mask given by the user; or `hole_for(landmarks)`: the automatic mask, which depends on the
    faces (eyes and mouths are protected) and is made after detection, and again if the second look
    changed the faces.

    Damage hides faces and fakes them: paint over both eyes hides a face from MTCNN, and the edges of
    paint strokes can look like a small face. So where real damage lies beside the faces found (or no
    face was found, or one may be made of paint) the detector looks a second time, on a copy with the
    damage filled, and the two looks are merged (`merge_looks`).

    `boxes`: the user's corrections for this photo (`--face-boxes`, faceheal/faces/hints.py), applied
    last: faces added where no look found one, detections named `not-face` dropped (`notes` gets what
    they did that the user should hear of: `apply_face_boxes`). `possible` gets the faces that may be
    hidden under the damage and were not taken (`possible_faces`), if the second look ran.
    """
    candidates: list[Face] = []
    faces, hole = _looks(detector, display, hole, hole_for, timed, candidates if possible is not None else None)
    if boxes:
        corrected = apply_face_boxes(faces, list(boxes), display, hole, notes)
        if hole_for is not None and not _same(corrected, faces):  # the given faces' eyes and mouths protected too
            hole = hole_for([f.landmarks for f in corrected])
        faces = corrected
    if possible is not None and candidates:
        possible += possible_faces(candidates, faces, hole, boxes)
    return faces, hole


def possible_faces(candidates: list[Face], faces: list[Face], hole: np.ndarray, boxes: Sequence[FaceBox] = ()) -> list[Face]:
    """The lenient look's detections that may be faces hidden by the damage: confident enough, damaged
    enough, overlapping no face kept, and not in a box the user called `not-face`."""
    out = []
    for c in candidates:
        if c.score is None or c.score < POSSIBLE_FACE_SCORE or box_damage(c, hole) < POSSIBLE_FACE_DAMAGE:
            continue
        if any(box_iou(c.box, f.box) >= 0.3 for f in faces + out):
            continue
        if any(b.what == "not-face" and centre_in(c.box, b.box) for b in boxes):
            continue
        out.append(c)
    return out


def _same(a: list[Face], b: list[Face]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _looks(detector, display, hole, hole_for, timed, candidates: list[Face] | None = None) -> tuple[list[Face], np.ndarray | None]:
    """The detector's look at the photo, and where needed its look through the filled damage (and,
    with `candidates`, a lenient detector's there too: the possible faces before filtering)."""
    small, scale = detection_image(display, DETECT_MAX_SIDE)
    with timed("detect"):
        faces = without_nested([f.scaled(1 / scale) for f in detector.detect(small, scale)])
    if hole_for is not None:
        hole = hole_for([f.landmarks for f in faces])
    if hole is None or not hole.any():
        return faces, hole
    small_hole = damage_at_scale(hole, small.shape[:2])
    suspicious = any(made_of_damage(f, hole) or box_damage(f, hole) >= LANDMARKS_THROUGH_DAMAGE for f in faces)
    if faces and not suspicious and damage_beside(faces, small_hole, scale) < SECOND_LOOK_DAMAGE:
        return faces, hole  # every face found looks real and clean enough, and no real damage lies where no face was found
    with timed("detect"):
        lenient: list[Face] | None = [] if candidates is not None else None
        second = [f.scaled(1 / scale) for f in detect_through_damage(detector, small, small_hole, scale, lenient)]
        if lenient:
            candidates += [f.scaled(1 / scale) for f in lenient]
    merged = without_nested(merge_looks(faces, second, hole))
    if hole_for is not None and not _same(merged, faces):  # redo the mask with these faces' eyes and mouths protected
        hole = hole_for([f.landmarks for f in merged])
    return merged, hole


def without_nested(faces: list[Face]) -> list[Face]:
    """The faces less those inside a bigger face (see NESTED_INSIDE): a detection mostly inside the box
    of a face over 1 / NESTED_WIDTH times as wide and at least as sure is a part of that face."""

    def width(f: Face) -> float:
        return f.box[2] - f.box[0]

    return [f for f in faces
            if not any(g is not f and width(f) <= NESTED_WIDTH * width(g) and box_inside(f.box, g.box) >= NESTED_INSIDE
                       and (g.score or 0.0) >= (f.score or 0.0) for g in faces)]


def damage_beside(faces: list[Face], small_hole: np.ndarray, scale: float) -> float:
    """The share of the (detection-copy) photo that is damaged outside every found face's crop: where a
    face hidden by the damage could be."""
    from faceheal.faces.align import crop_region, similarity_transform, template

    rest = small_hole.copy()
    for f in faces:
        x0, y0, x1, y1 = crop_region(similarity_transform(f.landmarks * scale, template(256)), 256, rest.shape)
        rest[y0:y1, x0:x1] = False
    return float(rest.mean())


def landmarks_on_damage(face: Face, hole: np.ndarray) -> int:
    """How many of a face's five landmarks lie on damaged pixels."""
    h, w = hole.shape
    return sum(bool(hole[min(h - 1, max(0, int(y))), min(w - 1, max(0, int(x)))]) for x, y in face.landmarks)


def made_of_damage(face: Face, hole: np.ndarray) -> bool:
    """A detection that may be made of the damage itself: two or more landmarks on damaged pixels and
    a fifth or more of its box damaged. On 335 painted held-out photos every false face MTCNN found
    was so (25-53 % of the box); a real face crossed by a thin scratch is not (a Solvay face: 17 %)."""
    return landmarks_on_damage(face, hole) >= 2 and box_damage(face, hole) >= 0.2


def box_damage(face: Face, hole: np.ndarray) -> float:
    """The damaged share of a face's box."""
    h, w = hole.shape
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    box = hole[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    return float(box.mean()) if box.size else 0.0


def merge_looks(first: list[Face], second: list[Face], hole: np.ndarray) -> list[Face]:
    """One list of faces from the look at the photo (`first`) and the look through its filled damage.

    A face of the first look is kept unless it may be made of the damage (`made_of_damage`): such a
    "face" is kept only when the second look confirms it. A kept face with damage over
    LANDMARKS_THROUGH_DAMAGE of its box takes the second look's landmarks when that look found it too
    (MTCNN's landmarks through paint are off, and the repair's PSNR falls with that error: on val photos
    under NVIDIA damage over 30-60 % of the face, correlation 0.63 between the landmark error and the
    loss against the clean photo's landmarks). Faces only the second look found are added (the faces the
    damage hid).
    """
    kept = []
    for f in first:
        match = max(second, key=lambda g: box_iou(f.box, g.box), default=None)
        confirmed = match is not None and box_iou(f.box, match.box) >= 0.3
        if not made_of_damage(f, hole):
            kept.append(match if confirmed and box_damage(f, hole) >= LANDMARKS_THROUGH_DAMAGE else f)
        elif confirmed:
            kept.append(match)
    kept += [g for g in second if all(box_iou(g.box, k.box) < 0.3 for k in kept)]
    kept.sort(key=lambda f: (f.box[1], f.box[0]))
    return kept


def damage_at_scale(hole: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The damage mask at the detection copy's size: a detection pixel is damaged when any photo pixel
    under it is."""

    h, w = shape
    if hole.shape == (h, w):
        return hole
    hole8 = hole.astype(np.uint8)
    hole8 *= 255  # in place: one full-size copy of the mask, not two
    return cv2.resize(hole8, (w, h), interpolation=cv2.INTER_AREA) > 0


def detect_through_damage(detector: FaceDetector, small: np.ndarray, hole: np.ndarray, scale: float,
                          lenient: list[Face] | None = None) -> list[Face]:
    """The detector again, on a copy of `small` whose known damage (`hole`, `small`'s size) is filled
    (OpenCV Navier-Stokes: through its fill the landmarks of val faces under NVIDIA damage over 50-60 %
    landed a mean 0.114 of the eye distance from the clean photo's, against 0.138 through Telea's, and
    restore gained 0.18 dB there) first: with the damage smoothed over, the face's layout shows again. Faces are in
    `small`'s pixels, like `detector.detect`. `lenient` (if given) gets MTCNN's detections at low
    thresholds on the same copy (see POSSIBLE_FACE_SCORE).
    """

    if not hole.any():
        return []
    filled = cv2.inpaint(np.ascontiguousarray(small), hole.astype(np.uint8) * 255, 5, SECOND_LOOK_FILL)
    if lenient is not None:
        from faceheal.faces.hints import lenient_detector

        # every size, as measured (MTCNN's pyramid starts from the smallest face asked for: with the
        # detector's 20 px instead, Solvay's hidden man scored 0.63 instead of 0.96, and on a 1600 px
        # copy it was no faster)
        lenient += lenient_detector().detect(filled, scale)
    return detector.detect(filled, scale, threshold=SECOND_LOOK_THRESHOLD)
