"""Alignment to the canonical crop, and paste-back through the inverse transform.

The crop follows the FFHQ 5-point convention (eyes, nose, mouth corners at fixed positions), fitted by
a least-squares similarity transform, so rotated and tilted faces come out upright. Paste-back is the
archival promise in code: a pixel changes only within `radius` pixels of the damage mask, the change
fades out smoothly towards that limit and towards the crop's edge, and every other pixel is returned
bit for bit by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# FFHQ five-point template on a 512x512 crop: left eye, right eye, nose, left and right mouth corner.
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.19360], [256.63416, 314.01935],
     [201.26117, 371.41043], [313.08905, 371.15118]], np.float64)


HOLE_CONTRIBUTION = 1 / 512  # a crop pixel with more damage in it than this is repainted (half a level of 255)


def template(size: int) -> np.ndarray:
    """The five target landmarks for a `size` x `size` crop."""
    return FFHQ_TEMPLATE_512 * (size / 512.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst; (2, 3)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    # closed form for 2-D: dst ~ [[a, -b], [b, a]] @ src
    denom = (s ** 2).sum()
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / denom
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / denom
    rot = np.array([[a, -b], [b, a]])
    t = dst_mean - rot @ src_mean
    return np.hstack([rot, t[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


@dataclass
class AlignedFace:
    """A face warped to the canonical crop.

    crop: (S, S, 3) float32 RGB in [0, 1]; hole: (S, S) bool, damaged pixels in the crop;
    matrix: (2, 3) image -> crop transform.
    """

    crop: np.ndarray
    hole: np.ndarray
    matrix: np.ndarray
    prior: np.ndarray | None = None  # the backend's per-crop classical fill, made by a loader thread

    @property
    def hole_ratio(self) -> float:
        return float(self.hole.mean())


def align_face(image: np.ndarray, hole: np.ndarray | None, landmarks: np.ndarray, size: int) -> AlignedFace:
    """Warp a face (and its damage mask) to the canonical `size` crop.

    image: (H, W, ...) pixels as stored (uint8/uint16, gray/RGB/RGBA) or float RGB in [0, 1]; only the
    face's footprint is read and converted. hole: (H, W) bool or None.
    """
    return align_with_matrix(image, hole, similarity_transform(landmarks, template(size)), size)


def align_with_matrix(image: np.ndarray, hole: np.ndarray | None, m: np.ndarray, size: int) -> AlignedFace:
    """Warp to the crop through a given image -> crop transform (aligned inputs use a plain rescale).

    The crop's hole is the smallest cover of the damage: a crop pixel is damaged when damaged image
    pixels make up more than `HOLE_CONTRIBUTION` of its value (through the same anti-aliasing blur,
    interpolation and border reflection as the crop itself), so no known crop pixel carries more than
    half a level of the damage, and no crop pixel is repainted that the damage does not reach. Where
    the transform is 1:1 (an aligned input at the crop size) the hole is exactly the damage.
    """
    from faceheal.images import to_float_rgb

    crop = warp_to_crop(image, m, size, cv2.INTER_LINEAR)
    crop = to_float_rgb(crop) if crop.dtype != np.float32 else crop
    if hole is None or not hole.any():
        crop_hole = np.zeros((size, size), bool)
    else:
        crop_hole = warp_to_crop(hole, m, size, cv2.INTER_LINEAR) > HOLE_CONTRIBUTION  # bool: made float per footprint
    return AlignedFace(crop=np.clip(crop, 0, 1).astype(np.float32), hole=crop_hole, matrix=np.asarray(m, np.float64))


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int, interpolation: int,
                 border_value: float | None = None) -> np.ndarray:
    """Warp the crop's footprint of `image` into a `size` crop, low-pass filtered when shrinking.

    Only the footprint is touched (a face in a 100-megapixel scan costs a face). Shrinking by more than
    1.5x is preceded by a Gaussian blur so the crop does not alias. Out-of-image pixels are reflected,
    or set to `border_value` when given (labels, masks).
    """
    x0, y0, x1, y1 = crop_region(matrix, size, image.shape[:2], margin=8)
    if x1 <= x0 or y1 <= y0:  # footprint entirely outside: warp the whole (reflected) image
        x0, y0, x1, y1 = 0, 0, image.shape[1], image.shape[0]
    m = shift_matrix(matrix, x0, y0)
    roi = image[y0:y1, x0:x1]
    if roi.dtype == bool:  # a mask: float for the blur and interpolation, the footprint only
        roi = roi.astype(np.float32)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if interpolation != cv2.INTER_NEAREST and scale < 1 / 1.5:
        sigma = 0.45 / scale
        roi = cv2.GaussianBlur(roi, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    if border_value is None:
        return cv2.warpAffine(roi, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_REFLECT_101)
    return cv2.warpAffine(roi, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border_value)


def change_weight(hole: np.ndarray, radius: int) -> np.ndarray:
    """Blend weight in image space: 1 on damaged pixels, smooth fall-off to exactly 0 at `radius` px.

    (H, W) bool -> (H, W) float32. Zero everywhere farther than `radius` from the damage: those pixels
    must not change.
    """
    if not hole.any():
        return np.zeros(hole.shape, np.float32)
    if radius <= 0:
        return hole.astype(np.float32)
    dist = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 5)
    t = np.clip(1.0 - dist / float(radius + 1), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep: no visible ring


def crop_region(matrix: np.ndarray, size: int, shape: tuple[int, int], margin: int = 2) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) in the image of the crop's footprint, clipped to the image."""
    inv = invert_affine(matrix)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    h, w = shape
    x0, y0 = np.floor(pts.min(0)).astype(int) - margin
    x1, y1 = np.ceil(pts.max(0)).astype(int) + margin
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def shift_matrix(matrix: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The image -> crop transform for a sub-image whose top-left corner is (x0, y0)."""
    m = np.asarray(matrix, np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return m


def paste_back(canvas: np.ndarray, weight: np.ndarray, restored_crop: np.ndarray, matrix: np.ndarray,
               image_weight: np.ndarray, edge_feather: int = 8) -> None:
    """Blend a restored crop into `canvas` in place, through the inverse of `matrix`.

    canvas: (H, W, 3) float32 RGB being restored; weight: (H, W) float32, the blend weight used so far
    (updated in place: max over faces); image_weight: (H, W) from `change_weight`. Inside the crop the
    weight also fades to 0 over `edge_feather` px towards the crop border, so no box edge shows.
    Work is limited to the crop's footprint: a small face in a huge scan costs a small face.
    """
    size = restored_crop.shape[0]
    x0, y0, x1, y1 = crop_region(matrix, size, canvas.shape[:2])
    if x1 <= x0 or y1 <= y0:
        return
    local = image_weight[y0:y1, x0:x1]
    if not local.any():
        return
    inv = invert_affine(matrix)
    inv[:, 2] -= (x0, y0)  # into the region's coordinates
    roi = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(restored_crop.astype(np.float32), inv, roi, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    if edge_feather > 0:
        inside = np.zeros((size, size), np.uint8)
        inside[1:-1, 1:-1] = 1
        edge = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
        edge = np.clip(edge / float(edge_feather), 0, 1).astype(np.float32)
    else:  # the crop is the whole picture (an aligned input): nothing to fade into
        edge = np.ones((size, size), np.float32)
    coverage = cv2.warpAffine(edge, inv, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = local * coverage
    region = canvas[y0:y1, x0:x1]
    a = alpha[..., None]
    region[:] = region * (1 - a) + warped * a
    np.maximum(weight[y0:y1, x0:x1], alpha, out=weight[y0:y1, x0:x1])
