"""Picture content that looks like damage and is not: the hard negatives of the damage detector.

A detector trained only on "clean face + rendered damage" learns that anything thin, bright and
sharp is damage, and then repaints catchlights, rim light on a cheek, eyeglass frames, signatures,
hair highlights, crushed black hair and the edge of a print (measured: a default restore changed 51 of 60 clean photos).
Each function here draws one such thing onto a float RGB window in [0, 1]; it is drawn before the
damage and never labelled, so the detector has to learn what damage looks like beyond "thin".
`NEGATIVE_KINDS` names them, so that benchmarks/eval_damage.py can report the flagged fraction on each.
"""
from __future__ import annotations

import cv2
import numpy as np

_WORDS = ("MOULIN ROUGE", "MATINEE", "1927", "HOTEL", "No. 42", "STUDIO", "Cafe", "PARIS", "photo", "XII", "A B C")


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Float RGB in [0, 1] saved as a JPEG at `quality` (OpenCV's default 4:2:0 chroma) and read back:
    the blocking and ringing an archive's JPEGs carry."""
    enc = cv2.imencode(".jpg", (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])[1]
    return cv2.imdecode(enc, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255


def _blend(rgb: np.ndarray, coverage: np.ndarray, colour) -> np.ndarray:
    a = np.clip(coverage, 0, 1)[..., None].astype(np.float32)
    return (rgb * (1 - a) + np.asarray(colour, np.float32) * a).astype(np.float32)


def lettering(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Signs, printed captions and small grids (window bars, a fence, a lattice)."""
    h, w = rgb.shape[:2]
    ink = np.zeros((h, w), np.uint8)
    if rng.random() < 0.7:
        cv2.putText(ink, _WORDS[int(rng.integers(len(_WORDS)))], (int(rng.integers(-20, w // 2)), int(rng.integers(10, h))),
                    int(rng.choice([0, 1, 2, 3, 4, 6])), float(rng.uniform(0.3, 1.2)), 255, int(rng.integers(1, 3)), cv2.LINE_AA)
    else:
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        step, n = int(rng.integers(4, 12)), int(rng.integers(3, 8))
        for i in range(n):
            cv2.line(ink, (x0 + i * step, y0), (x0 + i * step, y0 + n * step), 255, 1, cv2.LINE_AA)
            cv2.line(ink, (x0, y0 + i * step), (x0 + n * step, y0 + i * step), 255, 1, cv2.LINE_AA)
    colour = rng.uniform(0.85, 1.0, 3) if rng.random() < 0.6 else rng.uniform(0, 1, 3)
    return _blend(rgb, ink / 255.0, colour)


def signature(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Handwriting in ink: a looping, fast-turning pen line (a crack turns slowly and never loops)."""
    h, w = rgb.shape[:2]
    ink = np.zeros((h, w), np.float32)
    p = np.array([rng.uniform(0, w * 0.6), rng.uniform(h * 0.2, h * 0.9)])
    heading, pts = rng.uniform(-0.3, 0.3), []
    size = rng.uniform(4, 14)
    for i in range(int(rng.integers(30, 90))):
        heading += rng.normal(0, 0.9)  # loops and hooks
        p = p + np.array([np.cos(heading) * size * 0.5 + size * 0.25, np.sin(heading) * size * 0.6])
        pts.append(p.copy())
    cv2.polylines(ink, [np.array(pts, np.int32)], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
    colour = rng.choice([np.array([0.05, 0.05, 0.1]), np.array([0.1, 0.15, 0.5]), np.array([0.95, 0.95, 0.9])])
    return _blend(rgb, ink * rng.uniform(0.6, 1.0), colour)


def highlights(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Catchlights and specular shine: soft-edged bright spots and streaks (dust has a hard edge)."""
    h, w = rgb.shape[:2]
    light = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 8))):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.integers(2, 9)), int(rng.integers(1, 5)))
        cv2.ellipse(light, c, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.3, 0.9)), -1, cv2.LINE_AA)
    light = cv2.GaussianBlur(light, (0, 0), rng.uniform(1.5, 3.0))
    return np.clip(rgb + light[..., None] * rng.uniform(0.6, 1.2), 0, 1).astype(np.float32)


def rim_light(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rim light and overexposure: the photo brightened until its highlights clip, along edges too."""
    gain = rng.uniform(1.2, 2.0)
    return np.clip(rgb * gain + rng.uniform(0, 0.1), 0, 1).astype(np.float32)


def glasses(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Eyeglass frames: two thin closed rims joined by a bridge, with a temple arm, dark or metallic."""
    h, w = rgb.shape[:2]
    frame = np.zeros((h, w), np.float32)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.3, 0.7) * w
    rx, ry = rng.uniform(0.08, 0.2) * w, rng.uniform(0.05, 0.12) * h
    gap, t = rng.uniform(0.02, 0.08) * w, int(rng.integers(1, 4))
    for side in (-1, 1):
        centre = (int(cx + side * (rx + gap)), int(cy))
        cv2.ellipse(frame, centre, (int(rx), int(ry)), float(rng.uniform(-8, 8)), 0, 360, 1.0, t, cv2.LINE_AA)
        cv2.line(frame, (int(cx + side * (2 * rx + gap)), int(cy)), (int(cx + side * (2 * rx + gap + 0.3 * w)), int(cy - 0.05 * h)), 1.0, t, cv2.LINE_AA)
    cv2.line(frame, (int(cx - gap), int(cy - ry * 0.3)), (int(cx + gap), int(cy - ry * 0.3)), 1.0, t, cv2.LINE_AA)
    colour = rng.uniform(0.0, 0.25, 3) if rng.random() < 0.6 else rng.uniform(0.7, 0.95, 3)
    return _blend(rgb, frame * rng.uniform(0.7, 1.0), colour)


def strands(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stray hairs and hair highlights: bunches of thin, nearly parallel, soft curves."""
    h, w = rgb.shape[:2]
    layer = np.zeros((h, w), np.float32)
    p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(3, 12))):
        p, a, pts = p0 + rng.normal(0, 6, 2), heading + rng.normal(0, 0.15), []
        for _ in range(12):
            a += rng.normal(0, 0.12)
            p = p + rng.uniform(3, 8) * np.array([np.cos(a), np.sin(a)])
            pts.append(p.copy())
        cv2.polylines(layer, [np.array(pts, np.int32)], False, float(rng.uniform(0.3, 0.8)), 1, cv2.LINE_AA)
    bright = rng.random() < 0.6
    colour = rng.uniform(0.75, 1.0, 3) if bright else rng.uniform(0.0, 0.2, 3)
    return _blend(rgb, cv2.GaussianBlur(layer, (0, 0), 0.5), colour)


def border(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The edge of the print: a flat band along one side, or, as a print scanned crooked or a rotated
    crop padded out shows it, a straight edge at any angle with flat scanner-lid white, black or gray
    beyond it."""
    h, w = rgb.shape[:2]
    out = rgb.copy()
    colour = rng.choice([0.0, 1.0, rng.uniform(0.2, 0.9)]) * np.ones(3, np.float32)
    if rng.random() < 0.5:
        width = int(rng.integers(1, 12))
        side = int(rng.integers(4))
        if side == 0:
            out[:width] = colour
        elif side == 1:
            out[-width:] = colour
        elif side == 2:
            out[:, :width] = colour
        else:
            out[:, -width:] = colour
        return out
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle) - rng.uniform(0.1, 0.5) * max(h, w)
    beyond = np.clip(d + 0.5, 0, 1)[..., None]  # one anti-aliased pixel at the edge
    return (out * (1 - beyond) + colour * beyond).astype(np.float32)


def halftone(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A printed reproduction: luma through a rotated dot screen, or ordered dither, lightly blurred."""
    h, w = rgb.shape[:2]
    period, angle = rng.uniform(2.5, 6), rng.uniform(0, np.pi / 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) * 2 * np.pi / period
    screen = (np.cos(u) * np.cos(v) + 1) / 2  # 0..1 dot pattern
    printed = (rgb > screen[..., None]).astype(np.float32)
    out = cv2.GaussianBlur(printed, (0, 0), rng.uniform(0.5, 1.2))
    return (rgb * 0.3 + out * 0.7).astype(np.float32)


def paper(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paper and emulsion texture: low-frequency mottle plus strong grain, then heavy JPEG."""
    h, w = rgb.shape[:2]
    mottle = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), rng.uniform(3, 10))
    mottle *= rng.uniform(0.01, 0.04) / max(float(mottle.std()), 1e-6)
    grain = rng.normal(0, rng.uniform(0.01, 0.05), (h, w)).astype(np.float32)
    out = np.clip(rgb + (mottle + grain)[..., None], 0, 1)
    return jpeg_round_trip(out, int(rng.integers(15, 50)))


def shadows(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crushed shadows: an underexposed or contrasty print whose dark areas (hair, a dark coat) clip to
    a flat near-black, flattened further by a web JPEG: what the dark kind of missing area looks like.
    On small web JPEGs (photos/whole) the detector repainted such hair and coats."""
    black = rng.uniform(0.08, 0.3)
    lift = rng.uniform(0.0, 0.05)  # the flattened black, a little above zero at times
    out = np.clip((rgb - black) / (1 - black), 0, 1) * (1 - lift) + lift
    if rng.random() < 0.7:
        out = jpeg_round_trip(out, int(rng.integers(20, 60)))
    return np.ascontiguousarray(out, np.float32)


def autochrome(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Early colour processes and faded colour prints (photos/faded: autochromes, 1970s prints): a
    mosaic of coloured grains (an autochrome's dyed starch, a print's dye clouds) 1-3 px across, a
    colour cast, and the contrast fading took. The detector trained with every kind of the renderer
    changed a clean faded print the shipped one leaves alone (session 13)."""
    h, w = rgb.shape[:2]
    cast = np.array([1.0, rng.uniform(0.85, 1.05), rng.uniform(0.65, 0.95)], np.float32)[rng.permutation(3) if rng.random() < 0.3 else [0, 1, 2]]
    mean = rgb.mean(axis=(0, 1), keepdims=True)
    out = (mean + (rgb - mean) * rng.uniform(0.55, 0.9)) * cast + rng.uniform(0.0, 0.08)
    size = rng.uniform(1.0, 3.0)  # grain across, in pixels
    gh, gw = max(1, int(h / size)), max(1, int(w / size))
    grains = rng.normal(0, rng.uniform(0.02, 0.07), (gh, gw, 3)).astype(np.float32)  # each channel its own grains
    if rng.random() < 0.5:  # a mosaic: each grain leans to one primary
        primary = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (gh, gw))] - 1 / 3
        grains += primary * rng.uniform(0.03, 0.08)
    grains = cv2.resize(grains, (w, h), interpolation=cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR)
    out = cv2.GaussianBlur(np.clip(out + grains, 0, 1).astype(np.float32), (0, 0), rng.uniform(0.3, 0.8))
    if rng.random() < 0.5:
        out = jpeg_round_trip(out, int(rng.integers(40, 90)))
    return np.ascontiguousarray(out, np.float32)


def _curve(h: int, w: int, rng: np.random.Generator, points: int = 40) -> np.ndarray:
    """A smooth open curve across the window (a necklace's sag, a cord's fall), as (points, 2) x, y."""
    t = np.linspace(0, 1, points)
    p0 = np.array([rng.uniform(-0.1, 0.5) * w, rng.uniform(0, 1) * h])
    p2 = np.array([rng.uniform(0.5, 1.1) * w, rng.uniform(0, 1) * h])
    p1 = (p0 + p2) / 2 + rng.normal(0, 0.3, 2) * [w, h]
    if rng.random() < 0.5:  # a lanyard or a row of buttons hangs down rather than across
        p0, p2 = p0[::-1] * [w / h, h / w], p2[::-1] * [w / h, h / w]
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.2, 2) * [w, h]
    return ((1 - t) ** 2)[:, None] * p0 + (2 * t * (1 - t))[:, None] * p1 + (t ** 2)[:, None] * p2


def _sphere(out: np.ndarray, centre, radius: float, colour: np.ndarray, light: np.ndarray) -> None:
    """A lit bead in place: shaded from its rim to a specular spot toward `light`, a soft shadow on
    the far side. Real dust is flat inside; a pearl or a button is round, shaded and casts a shadow."""
    h, w = out.shape[:2]
    r = int(np.ceil(radius)) + 3
    cx, cy = float(centre[0]), float(centre[1])
    x0, x1, y0, y1 = max(0, int(cx) - r), min(w, int(cx) + r + 1), max(0, int(cy) - r), min(h, int(cy) + r + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = (xx - cx) / radius, (yy - cy) / radius
    shadow = np.clip(1.2 - np.hypot(dx + 0.4 * light[0], dy + 0.4 * light[1]), 0, 1) * 0.35
    patch = out[y0:y1, x0:x1] * (1 - shadow[..., None])
    d2 = dx * dx + dy * dy
    inside = np.clip((1 - np.sqrt(d2)) * radius + 0.5, 0, 1)  # one anti-aliased pixel at the rim
    nz = np.sqrt(np.clip(1 - d2, 0, 1))
    lambert = np.clip(dx * light[0] + dy * light[1] + nz * 0.8, 0, 1.2)
    spec = np.clip(1 - np.hypot(dx - 0.4 * light[0], dy - 0.4 * light[1]) * 2.5, 0, 1) ** 2
    shade = colour * (0.35 + 0.65 * lambert[..., None]) + spec[..., None] * 0.5
    out[y0:y1, x0:x1] = patch * (1 - inside[..., None]) + np.clip(shade, 0, 1) * inside[..., None]


def jewellery(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pearls, beads and buttons in a row, earrings (a stud, a drop or a hoop) and cords or lanyards
    across clothes: small bright shapes and thin bright lines a detector takes for dust and scratches
    (a default restore repainted a pearl-buttoned cardigan, a white lanyard cord and earrings in
    photos/whole). What tells them apart is shading: round and lit, with a shadow beside them."""
    h, w = rgb.shape[:2]
    out = rgb.copy()
    light = rng.normal(0, 1, 2)
    light = (light / max(float(np.linalg.norm(light)), 1e-6)).astype(np.float32)
    white = rng.random() < 0.7
    colour = (rng.uniform(0.8, 1.0) * np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.85, 1.0)]) if white
              else rng.uniform(0.2, 1.0, 3)).astype(np.float32)
    kind = rng.choice(["beads", "earrings", "cord"], p=[0.4, 0.25, 0.35])
    if kind == "beads":  # a necklace, or buttons down a cardigan
        radius = rng.uniform(1.2, 5.0)
        curve = _curve(h, w, rng, 400)
        step = np.cumsum(np.r_[0, np.linalg.norm(np.diff(curve, axis=0), axis=1)])
        gap = radius * rng.uniform(2.0, 2.4) if rng.random() < 0.6 else radius * rng.uniform(3, 8)
        for s in np.arange(0, step[-1], gap):
            _sphere(out, curve[np.searchsorted(step, s).clip(0, len(curve) - 1)], radius * rng.uniform(0.9, 1.1), colour, light)
    elif kind == "earrings":
        for _ in range(int(rng.integers(1, 3))):
            c = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.2, 0.9) * h])
            style = rng.integers(3)
            if style == 0:  # a stud
                _sphere(out, c, rng.uniform(1.5, 4.0), colour, light)
            elif style == 1:  # a drop: a stud and a pendant below it
                r = rng.uniform(1.5, 3.5)
                _sphere(out, c, r * 0.7, colour, light)
                _sphere(out, c + [0, r * rng.uniform(2.5, 4)], r, colour, light)
            else:  # a hoop: a thin metallic ring, lit on one side
                ring = np.zeros((h, w), np.float32)
                axes = (int(rng.integers(3, 12)), int(rng.integers(4, 14)))
                cv2.ellipse(ring, (int(c[0]), int(c[1])), axes, float(rng.uniform(-20, 20)), 0, 360, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
                yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
                lit = 0.55 + 0.45 * np.tanh(((xx - c[0]) * light[0] + (yy - c[1]) * light[1]) / 4)
                out = out * (1 - ring[..., None]) + (colour * lit[..., None]) * ring[..., None]
    else:  # a cord or a lanyard: a round-shaded band with a soft shadow beside it
        t = int(rng.integers(2, 7))
        pts = _curve(h, w, rng).astype(np.int32)
        band = np.zeros((h, w), np.uint8)
        cv2.polylines(band, [pts], False, 255, t, cv2.LINE_AA)
        cover = band.astype(np.float32) / 255
        depth = cv2.distanceTransform((band > 127).astype(np.uint8), cv2.DIST_L2, 3) / max(t / 2, 1.0)
        across = np.sqrt(np.clip(depth * (2 - depth), 0, 1))  # a cylinder's profile: dim at its sides
        shift = np.float32([[1, 0, light[0] * -2], [0, 1, light[1] * -2]])
        shadow = cv2.GaussianBlur(cv2.warpAffine(cover, shift, (w, h)), (0, 0), 1.0) * 0.35 * (1 - cover)
        out = out * (1 - shadow[..., None])
        out = _blend(out, cover, 0) + (colour * (0.55 + 0.45 * across[..., None])) * cover[..., None]
    return np.clip(out, 0, 1).astype(np.float32)


NEGATIVES = {"lettering": lettering, "signature": signature, "highlights": highlights, "rim_light": rim_light,
             "glasses": glasses, "strands": strands, "border": border, "halftone": halftone, "paper": paper,
             "shadows": shadows, "autochrome": autochrome, "jewellery": jewellery}
NEGATIVE_KINDS = tuple(NEGATIVES)


def hard_negative(rgb: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """`rgb` with one kind of damage-like picture content (a random kind unless `kind` is given)."""
    kind = kind or NEGATIVE_KINDS[int(rng.integers(len(NEGATIVE_KINDS)))]
    return NEGATIVES[kind](np.ascontiguousarray(rgb, np.float32), rng)
