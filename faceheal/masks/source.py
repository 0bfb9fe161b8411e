"""Where each photo's damage mask comes from, and the faces found with it: one mask file for all, a
folder of masks, or the damage detector with its per-face decision.

`faceheal restore` and `faceheal mask` both take their masks from here, so the mask `faceheal mask`
writes is the one restore repairs (same detector, same decision, same growth).
"""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from faceheal.faces.detect import Face, FaceDetector
from faceheal.faces.find import find_faces
from faceheal.masks.decision import packed_mask, regions_of
from faceheal.masks.supplied import find_mask, read_mask
from faceheal.model.weights import sha256_of

# px added around a detected mask (the detectors already cover a scratch's soft edge by 1 px). Measured
# (benchmarks/results/auto_mask_margin.md): of the visibly changed pixels next to found damage, a grown
# mask misses 4.5 / 1.6 / 5.2 % (scratches / dust / missing areas) at 0 px, 3.6 / 1.0 / 4.2 % at 1 px,
# and each further px buys under 1 point: what is left is fragments the detector missed, not a margin.
AUTO_MASK_GROW = 1
SURE_KEY = "_sure"  # the provenance entry that carries the detector's sure pixels to the decision


class MaskSource:
    """Where the damage mask of each photo comes from: one file for all, a folder, or the detector.

    With the detector, faces are found first so that eyes and mouths can be protected from being
    taken for dust (catchlights, dark lip lines).
    """

    def __init__(self, mask_file: Path | None = None, masks_dir: Path | None = None,
                 auto: Callable[[np.ndarray, list], np.ndarray | tuple] | None = None, grow: int | None = None,
                 decide: Callable[..., tuple[np.ndarray, dict]] | None = None):
        # auto: (rgb, landmarks) -> mask, or (mask, the pixels the detector is sure of, bit-packed)
        self.mask_file, self.masks_dir, self.auto = mask_file, masks_dir, auto
        self._grow = grow
        # detected masks only: (mask, face regions, sure pixels or None) -> (mask of the damaged regions, info)
        self.decide = decide

    @property
    def is_auto(self) -> bool:
        return self.mask_file is None and self.masks_dir is None

    @property
    def grow(self) -> int:
        """Pixels the damage mask is grown by: what the user asked for (`--grow`); by default none for a
        mask the user drew (exactly those pixels change) and `AUTO_MASK_GROW` for a detected one."""
        if self._grow is not None:
            return self._grow
        return AUTO_MASK_GROW if self.is_auto else 0

    def mask_for(self, source, display_rgb: np.ndarray, landmarks: list[np.ndarray] = ()) -> tuple[np.ndarray, dict]:
        """(mask, provenance): the mask and where it came from, with the SHA-256 of its file or pixels."""
        shape = display_rgb.shape[:2]
        if self.mask_file is not None or self.masks_dir is not None:
            path = self.mask_file if self.mask_file is not None else find_mask(self.masks_dir, source.relative)
            info = {"source": "file", "path": str(path), "sha256": sha256_of(path)}
            mask = read_mask(path, shape)
        else:
            found = self.auto(display_rgb, list(landmarks))
            mask, sure = found if isinstance(found, tuple) else (found, None)
            info = {"source": "auto", "sha256": mask_sha256(mask)}
            if sure is not None:  # for the decision only: `decided` takes it out before anything reports
                info[SURE_KEY] = sure
        if self.grow > 0 and mask.any():
            mask = grow_mask(mask, self.grow)
            info["grow"] = self.grow
        return mask, info

    def decided(self, mask: np.ndarray | None, regions: list[tuple[int, int, int, int]], info: dict) -> np.ndarray | None:
        """A detected mask after the per-face decision (faceheal/masks/decision.py): the flags of faces
        judged undamaged dropped, so a clean photo comes back untouched. Supplied masks pass as they are."""
        sure = info.pop(SURE_KEY, None)
        if self.decide is None or not self.is_auto or mask is None:
            return mask
        mask, info["decision"] = self.decide(mask, regions, sure)
        info["sha256"] = mask_sha256(mask)
        return mask

    def find(self, detector: FaceDetector, source, display: np.ndarray, crop_size: int = 256,
             timed: Callable = lambda stage: contextlib.nullcontext(),
             face_boxes=None) -> tuple[list[Face], np.ndarray, dict]:
        """(faces, mask, provenance) of a whole photo: a supplied mask is read first (a bad one fails
        before detection); a detected one is made once the faces are known (faceheal/faces/find.py
        looks again through heavy damage), then the per-face decision drops the flags of undamaged
        faces (no face: the photo is judged as one region). `face_boxes`: the user's --face-boxes
        (faceheal/faces/hints.py `FaceBoxes`), this photo's applied; what they did that the user should
        hear of is in the provenance's "face_boxes"."""
        info: dict = {}
        if self.is_auto:
            def hole_for(landmarks):
                nonlocal info
                with timed("auto_mask"):
                    hole, info = self.mask_for(source, display, landmarks)
                return hole
            hole = None
        else:
            hole_for = None
            hole, info = self.mask_for(source, display)
        boxes = face_boxes.for_source(source) if face_boxes is not None else ()
        notes: list[str] = []
        possible: list[Face] = []
        faces, hole = find_faces(detector, display, hole, hole_for, timed, boxes, notes, possible)
        if notes:
            info["face_boxes"] = notes
        if possible:  # what may be a face under the damage, not repaired as one: the user should look
            info["possible_faces"] = [{"box": [round(float(v), 1) for v in f.box], "score": round(float(f.score), 3)}
                                      for f in possible]
        hole = self.decided(hole, regions_of(faces, display.shape[:2], crop_size), info)
        return faces, hole, info


def lines_to_check(face_boxes: list[str], possible_faces: list[dict]) -> list[str]:
    """What restore and `faceheal mask` tell the user to look at in a photo: what the face boxes did,
    and each face that may be hidden under the damage (the provenance's "face_boxes" and
    "possible_faces")."""
    return list(face_boxes) + [
        f"warning: a face may be hidden under the damage at ({','.join(f'{v:.0f}' for v in f['box'])}) (found only "
        f"through the filled damage, confidence {f['score']:.2f}); it was not repaired as a face: if it is one, give "
        "its box in --face-boxes" for f in possible_faces]


def mask_sha256(mask: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()


def grow_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """The mask dilated by a disc of `radius` pixels."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), disc) > 0


def detected_masks(sensitivity: float = 0.5, detector: str = "auto", wide: bool = False, grow: int | None = None,
                   decision: bool = True, precision: str = "auto") -> MaskSource:
    """The damage detector as a MaskSource (eyes and mouths protected), with its per-face decision
    when the detector has one (`decision=False`: every flag kept, for calibrating the decision).
    precision: the learned detector's arithmetic (auto, fp32 or bf16)."""
    return MaskSource(auto=auto_damage_mask(sensitivity, detector, wide, precision), grow=grow,
                      decide=auto_damage_decision(sensitivity, detector) if decision else None)


def auto_damage_decision(sensitivity: float = 0.5, detector: str = "auto"):
    """The per-face decision of the detector that `auto_damage_mask` uses, as a MaskSource callback, or
    None when that detector has none (the classical one, or weights calibrated before it existed)."""
    from faceheal.masks.damage import damage_decision
    from faceheal.masks.decision import decide

    decision = damage_decision(detector)
    if decision is None:
        return None

    def run(mask: np.ndarray, regions: list, sure=None) -> tuple[np.ndarray, dict]:
        mask, faces, rest = decide(mask, regions, decision, sensitivity, sure)
        return mask, {"face_damage_probability": [round(p, 4) for p in faces],
                      "rest_damage_probability": None if rest is None else round(rest, 4),
                      "threshold": round(decision.cut(sensitivity), 4)}
    return run


def auto_damage_mask(sensitivity: float = 0.5, detector: str = "auto", wide: bool = False, precision: str = "auto"):
    """The damage detector as a MaskSource callback: damage mask with eyes and mouths protected."""
    from faceheal.masks.damage import DamageSettings, coarse_scale, detect_damage, protected_discs

    settings = DamageSettings(sensitivity=sensitivity, detector=detector, precision=precision)

    def run(rgb: np.ndarray, landmarks: list) -> tuple[np.ndarray, np.ndarray]:
        sure = packed_mask(rgb.shape[:2])
        mask = detect_damage(rgb, settings, protected_discs(landmarks), coarse=coarse_scale(landmarks) if wide else None,
                             sure=sure)
        return mask, sure
    return run


def write_masks(sources, out_dir, sensitivity: float = 0.5, with_overlay: bool = False, faces_only: bool = False,
                detector: str = "auto", wide: bool = False, precision: str = "auto", face_boxes=None,
                warn=lambda line: None):
    """`faceheal mask`: for each source, write `<out>/<relative>.png` (white = damaged), the mask
    `faceheal restore` would repair with the same options (`face_boxes`: its --face-boxes), and the
    review overlay when asked. Yields
    (source, error or None); the batch goes on after a failure. `warn` gets the lines to check (`lines_to_check`)."""
    from faceheal.errors import FacehealError
    from faceheal.faces.detect import MtcnnDetector
    from faceheal.images import read_image, to_rgb8, write_png
    from faceheal.masks.damage import overlay
    from faceheal.sources import output_path

    face_detector = MtcnnDetector()
    masks = detected_masks(sensitivity, detector, wide, precision=precision)
    for src in sources:
        try:
            display = read_image(src.path).display()
            faces, mask, info = masks.find(face_detector, src, display, face_boxes=face_boxes)
            for line in lines_to_check(info.get("face_boxes", []), info.get("possible_faces", [])):  # as restore says them
                warn(f"{src.path}: {line}")
            if faces_only:
                inside = np.zeros(mask.shape, bool)
                for x0, y0, x1, y1 in regions_of(faces, mask.shape):
                    inside[y0:y1, x0:x1] = True
                mask &= inside
            target = output_path(Path(out_dir), src).with_suffix(".png")
            write_png(target, mask.astype(np.uint8) * 255)
            if with_overlay:
                write_png(target.with_name(target.stem + ".overlay.png"), overlay(to_rgb8(display), mask))
            yield src, None
        except FacehealError as e:
            yield src, str(e)
