import cv2
import numpy as np

from faceheal.faces.align import (align_face, change_weight, paste_back, similarity_transform, template)


def test_similarity_recovers_rotation_scale_translation():
    src = template(256)
    angle, scale = np.deg2rad(30), 1.7
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + [40, -12]
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], [40, -12], atol=1e-7)


def test_rotated_face_aligns_to_the_same_crop(portrait):
    from faceheal.faces.detect import MtcnnDetector

    det = MtcnnDetector()
    rgb = portrait.astype(np.float32) / 255
    face = det.detect(portrait)[0]
    h, w = portrait.shape[:2]
    r = cv2.getRotationMatrix2D((w / 2, h / 2), 35, 1.0)
    rotated = cv2.warpAffine(portrait, r, (w, h), borderMode=cv2.BORDER_REFLECT)
    faces = det.detect(rotated)
    assert len(faces) == 1
    a = align_face(rgb, None, face.landmarks, 128).crop
    b = align_face(rotated.astype(np.float32) / 255, None, faces[0].landmarks, 128).crop
    # same face, upright in both crops: close in the centre (landmarks are integer pixels)
    centre = slice(32, 96)
    assert np.abs(a[centre, centre] - b[centre, centre]).mean() < 0.08


def test_paste_back_changes_only_pixels_near_the_mask(portrait, face_mask):
    from faceheal.faces.detect import MtcnnDetector

    rgb = portrait.astype(np.float32) / 255
    face = MtcnnDetector().detect(portrait)[0]
    aligned = align_face(rgb, face_mask, face.landmarks, 256)
    assert aligned.hole.any()
    restored = np.zeros_like(aligned.crop)  # an obviously different "restoration"
    canvas, weight = rgb.copy(), np.zeros(face_mask.shape, np.float32)
    radius = 4
    paste_back(canvas, weight, restored, aligned.matrix, change_weight(face_mask, radius))
    changed = np.any(canvas != rgb, axis=2)
    allowed = cv2.dilate(face_mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 3,) * 2)) > 0
    assert changed.any()
    assert not (changed & ~allowed).any(), "a pixel outside the dilated mask changed"
    # the damaged pixels well inside the crop are fully replaced
    assert np.allclose(canvas[face_mask & (weight > 0.999)], 0, atol=2e-3)


def test_change_weight_is_one_on_the_hole_and_zero_beyond_the_radius():
    hole = np.zeros((50, 50), bool)
    hole[20:30, 20:30] = True
    w = change_weight(hole, 5)
    assert (w[hole] == 1).all()
    assert w[0, 0] == 0 and w[25, 36] == 0
    assert 0 < w[25, 32] < 1


def test_border_cut_face_aligns_and_pastes_inside_the_image(portrait, face_mask):
    from faceheal.faces.detect import MtcnnDetector

    face = MtcnnDetector().detect(portrait)[0]
    x0, y0, x1, y1 = (int(v) for v in face.box)
    cut = x0 + 3 * (x1 - x0) // 10  # the image border cuts through the face
    img = np.ascontiguousarray(portrait[:, cut:])
    hole = face_mask[:, cut:]
    faces = MtcnnDetector().detect(img)
    assert faces, "a face cut by the border should still be found"
    rgb = img.astype(np.float32) / 255
    a = align_face(rgb, hole, faces[0].landmarks, 256)
    canvas, weight = rgb.copy(), np.zeros(hole.shape, np.float32)
    paste_back(canvas, weight, np.ones_like(a.crop), a.matrix, change_weight(hole, 3))
    assert canvas.shape == rgb.shape
    assert np.any(canvas != rgb)
