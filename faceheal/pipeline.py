"""The restoration pipeline: photos in, restored photos out, only damaged face pixels changed.

`Restorer` owns the detector and the inpainting backend. It decodes and detects the next photos in a
background thread (bounded look-ahead), gathers the aligned crops of several photos into one batch
for the model, pastes each restored crop back through the inverse transform, and writes the result
atomically. `restore_image` is the same thing for one in-memory image, for use from Python.
"""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from faceheal.errors import FacehealError, NoFaceFound, OutputError
from faceheal.faces.align import AlignedFace, align_face, change_weight, paste_back, template
from faceheal.faces.detect import Face, FaceDetector
from faceheal.images import Picture, from_float_rgb, read_image, to_float_rgb, to_rgb8, write_atomic, write_image
from faceheal.inpainters import Inpainter, classical_fill
from faceheal.masks.supplied import find_mask, read_mask
from faceheal.sources import Source, output_path


@dataclass
class RestoreOptions:
    aligned: bool = False  # inputs are already aligned face crops: skip detection
    change_radius: int = 4  # px around the damage that may change (feathered to 0 at this distance)
    fill_outside: str | None = None  # None | "telea": also fill damage that no face crop covers
    skip_no_face: bool = False  # no output at all for a photo without faces (default: a copy)
    layout_dir: Path | None = None  # write the predicted semantic layout of each face here
    max_pixels: int | None = None
    in_place: bool = False  # -o may be the input folder; the original is kept as <name>.faceheal-bak
    jpeg_quality: int | None = None


@dataclass
class FaceResult:
    face: Face | None
    hole_ratio: float
    layout: np.ndarray | None = None

    def to_json(self) -> dict:
        d = self.face.to_json() if self.face else {"box": None, "score": None}
        d["mask_ratio"] = round(self.hole_ratio, 4)
        return d


@dataclass
class ImageResult:
    """What happened to one input: the JSON line of `--report`."""

    path: str
    output: str | None = None
    status: str = "ok"  # ok | unchanged | no-face | error
    error: str | None = None
    faces: list[FaceResult] = field(default_factory=list)
    pixels_changed: int = 0
    damaged_pixels: int = 0
    unrepaired_pixels: int = 0  # damaged pixels outside every face crop, left as they were
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in ("error", "no-face")

    def to_json(self) -> dict:
        return {"path": self.path, "output": self.output, "status": self.status, "error": self.error,
                "faces": [f.to_json() for f in self.faces], "pixels_changed": self.pixels_changed,
                "damaged_pixels": self.damaged_pixels, "unrepaired_pixels": self.unrepaired_pixels,
                "seconds": round(self.seconds, 3)}


@dataclass
class _Loaded:
    source: Source
    picture: Picture | None = None
    hole: np.ndarray | None = None  # (H, W) bool, display orientation
    faces: list[Face] = field(default_factory=list)
    aligned: list[AlignedFace] = field(default_factory=list)
    error: FacehealError | None = None
    started: float = 0.0


class MaskSource:
    """Where the damage mask of each photo comes from: one file for all, a folder, or the detector.

    With the detector, faces are found first so that eyes and mouths can be protected from being
    taken for dust (catchlights, dark lip lines).
    """

    def __init__(self, mask_file: Path | None = None, masks_dir: Path | None = None,
                 auto: Callable[[np.ndarray, list], np.ndarray] | None = None):
        self.mask_file, self.masks_dir, self.auto = mask_file, masks_dir, auto

    @property
    def is_auto(self) -> bool:
        return self.mask_file is None and self.masks_dir is None

    def describe(self) -> str:
        if self.mask_file:
            return f"file:{self.mask_file}"
        if self.masks_dir:
            return f"dir:{self.masks_dir}"
        return "auto"

    def mask_for(self, source: Source, display_rgb: np.ndarray, landmarks: list[np.ndarray] = ()) -> np.ndarray:
        shape = display_rgb.shape[:2]
        if self.mask_file is not None:
            return read_mask(self.mask_file, shape)
        if self.masks_dir is not None:
            return read_mask(find_mask(self.masks_dir, source.relative), shape)
        return self.auto(display_rgb, list(landmarks))


def auto_damage_mask(sensitivity: float = 0.5):
    """The detector as a MaskSource callback: damage mask with eyes and mouths protected."""
    from faceheal.masks.damage import DamageSettings, detect_damage, protected_discs

    settings = DamageSettings(sensitivity=sensitivity)
    return lambda rgb, landmarks: detect_damage(rgb, settings, protected_discs(landmarks))


def aligned_matrix(shape: tuple[int, int], size: int) -> np.ndarray:
    """The image -> crop transform of an already-aligned input: a plain rescale to the crop size."""
    h, w = shape
    return np.array([[size / w, 0, 0], [0, size / h, 0]], np.float64)


class Restorer:
    def __init__(self, inpainter: Inpainter, detector: FaceDetector | None, masks: MaskSource,
                 options: RestoreOptions = RestoreOptions()):
        self.inpainter = inpainter
        self.detector = detector
        self.masks = masks
        self.options = options

    # -- stage 1: decode, mask, detect, align (runs in the look-ahead thread) -----------------
    def load(self, source: Source) -> _Loaded:
        try:
            pic = read_image(source.path, self.options.max_pixels)
        except FacehealError as e:
            return _Loaded(source, error=e, started=time.perf_counter())
        except MemoryError:
            return _Loaded(source, error=FacehealError("out of memory while decoding (try --max-pixels)"),
                           started=time.perf_counter())
        return self.prepare(source, pic)

    def prepare(self, source: Source, pic: Picture) -> _Loaded:
        """Mask, detect and align one decoded photo; errors are kept on the item, not raised."""
        item = _Loaded(source, picture=pic, started=time.perf_counter())
        try:
            display = pic.display()
            rgb = to_float_rgb(display)
            size = self.inpainter.crop_size
            if self.options.aligned:
                m = aligned_matrix(rgb.shape[:2], size)
                item.faces = [None]
                eyes_mouth = (template(size) - m[:, 2]) / np.diag(m[:, :2])
                item.hole = self.masks.mask_for(source, rgb, [eyes_mouth])
                item.aligned = [align_face_with_matrix(rgb, item.hole, m, size)]
            else:
                if not self.masks.is_auto:  # a bad mask fails fast, before detection
                    item.hole = self.masks.mask_for(source, rgb)
                item.faces = self.detector.detect(to_rgb8(display))
                if self.masks.is_auto:
                    item.hole = self.masks.mask_for(source, rgb, [f.landmarks for f in item.faces])
                if not item.faces:
                    raise NoFaceFound("no face found")
                item.aligned = [align_face(rgb, item.hole, f.landmarks, size) for f in item.faces]
        except FacehealError as e:
            item.error = e
        return item

    # -- stage 2 and 3: paste back, write ------------------------------------------------------
    def compose(self, item: _Loaded, restored: list[np.ndarray], res: ImageResult) -> np.ndarray:
        """Paste the restored crops into the photo; returns display-orientation stored pixels.

        Only pixels within `change_radius` of the damage can differ from the input; damage that no
        face crop covers is left as is (counted in `unrepaired_pixels`) unless `fill_outside`.
        """
        display, hole = item.picture.display(), item.hole
        res.damaged_pixels = int(hole.sum())
        canvas = to_float_rgb(display)
        weight = np.zeros(hole.shape, np.float32)
        image_weight = change_weight(hole, self.options.change_radius)
        for a, crop in zip(item.aligned, restored):
            if a.hole.any():
                paste_back(canvas, weight, crop, a.matrix, image_weight)
        uncovered = hole & (weight < 0.999)
        if self.options.fill_outside == "telea" and uncovered.any():
            filled = classical_fill(canvas, uncovered)
            canvas[uncovered] = filled[uncovered]
            weight[uncovered] = 1.0
            uncovered = hole & (weight < 0.999)
        res.unrepaired_pixels = int(uncovered.sum())
        out = from_float_rgb(canvas, display, weight > 0)
        changed = out != display
        res.pixels_changed = int(changed.any(axis=-1).sum() if changed.ndim == 3 else changed.sum())
        return out

    def finish(self, item: _Loaded, restored: list[np.ndarray], layouts: list[np.ndarray | None],
               out_path: Path) -> ImageResult:
        res = ImageResult(path=str(item.source.path))
        res.faces = [FaceResult(f, a.hole_ratio, lay) for f, a, lay in zip(item.faces, item.aligned, layouts)]
        out_display = self.compose(item, restored, res)
        pic = item.picture
        if self.options.in_place and out_path.exists() and out_path.resolve() == item.source.path.resolve():
            backup = out_path.with_name(out_path.name + ".faceheal-bak")
            if not backup.exists():
                shutil.copy2(item.source.path, backup)
        if res.pixels_changed == 0:
            copy_exact(item.source.path, out_path)
            res.status = "unchanged"
        else:
            write_image(out_path, pic, pic.store(out_display), self.options.jpeg_quality)
        res.output = str(out_path)
        if self.options.layout_dir is not None:
            self._write_layouts(item, res)
        return res

    def _write_layouts(self, item: _Loaded, res: ImageResult) -> None:
        from faceheal.model.semantics import colourise

        for i, fr in enumerate(res.faces):
            if fr.layout is not None:
                rel = item.source.relative
                path = self.options.layout_dir / rel.parent / f"{rel.stem}.face{i}.layout.png"
                import cv2
                ok, enc = cv2.imencode(".png", colourise(fr.layout)[..., ::-1])
                write_atomic(path, enc.tobytes())

    def run(self, sources: Iterable[Source], out_dir: Path, on_result: Callable[[ImageResult], None] | None = None,
            batch_faces: int = 8, lookahead: int = 4) -> list[ImageResult]:
        """Restore every source into `out_dir`; one `ImageResult` per source, errors included."""
        results = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceheal-load") as pool:
            for group in _batches(_prefetch(pool, self.load, sources, lookahead), batch_faces):
                for r in self._process_group(group, out_dir):
                    results.append(r)
                    if on_result:
                        on_result(r)
        return results

    def _process_group(self, group: list[_Loaded], out_dir: Path) -> Iterator[ImageResult]:
        good = [g for g in group if g.error is None]
        crops = [a for g in good for a in g.aligned]
        restored, layouts = [], []
        if crops:
            todo = [i for i, a in enumerate(crops) if a.hole.any()]
            restored = [a.crop for a in crops]
            layouts = [None] * len(crops)
            if todo:
                r = self.inpainter.inpaint(np.stack([crops[i].crop for i in todo]), np.stack([crops[i].hole for i in todo]))
                for j, i in enumerate(todo):
                    restored[i] = r.images[j]
                    layouts[i] = r.layouts[j] if r.layouts is not None else None
        k = 0
        for g in group:
            n = len(g.aligned) if g.error is None else 0
            mine, mine_layouts = restored[k:k + n], layouts[k:k + n]
            k += n
            res = ImageResult(path=str(g.source.path))
            try:
                out_path = output_path(out_dir, g.source)
                if g.error is None:
                    res = self.finish(g, mine, mine_layouts, out_path)
                elif isinstance(g.error, NoFaceFound):
                    res = self._no_face(g, out_path)
                else:
                    res.status, res.error = "error", str(g.error)
            except FacehealError as e:
                res.status, res.error = "error", str(e)
            except OSError as e:
                res.status, res.error = "error", f"{e.strerror or e}"
            res.seconds = time.perf_counter() - g.started
            yield res

    def _no_face(self, g: _Loaded, out_path: Path) -> ImageResult:
        """No face: reported as a failure; the output is a copy (or, with --fill-outside, the
        classical fill of the damage) unless --skip-no-face."""
        res = ImageResult(path=str(g.source.path), status="no-face", error=str(g.error))
        if self.options.skip_no_face:
            return res
        if self.options.fill_outside == "telea" and g.hole is not None and g.hole.any():
            g.faces, g.aligned = [], []
            res = self.finish(g, [], [], out_path)
            res.status, res.error = "no-face", str(g.error)
        else:
            copy_exact(g.source.path, out_path)
            res.output = str(out_path)
        return res


def align_face_with_matrix(rgb: np.ndarray, hole: np.ndarray, m: np.ndarray, size: int) -> AlignedFace:
    import cv2

    from faceheal.faces.align import warp_to_crop

    crop = warp_to_crop(rgb, m, size, cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_LINEAR)
    warped = warp_to_crop(hole.astype(np.float32), m, size, cv2.INTER_LINEAR, border_value=0)
    crop_hole = cv2.dilate((warped > 1e-3).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return AlignedFace(np.clip(crop, 0, 1).astype(np.float32), crop_hole, m)


def copy_exact(src: Path, dst: Path) -> None:
    """The input's bytes under the output name (atomic): nothing to change means nothing changes."""
    try:
        data = Path(src).read_bytes()
    except OSError as e:
        raise OutputError(f"cannot read {src}: {e.strerror or e}") from None
    if Path(dst).exists() and Path(dst).resolve() == Path(src).resolve():
        return
    write_atomic(dst, data)


def _prefetch(pool: ThreadPoolExecutor, fn, items: Iterable, lookahead: int) -> Iterator:
    """Map `fn` over `items` in `pool`, at most `lookahead` ahead: memory stays flat on long runs."""
    pending = []
    for it in items:
        pending.append(pool.submit(fn, it))
        if len(pending) > lookahead:
            yield pending.pop(0).result()
    for p in pending:
        yield p.result()


def _batches(items: Iterator[_Loaded], batch_faces: int) -> Iterator[list[_Loaded]]:
    """Group loaded photos so that each group holds about `batch_faces` damaged crops."""
    group, n = [], 0
    for it in items:
        group.append(it)
        n += sum(1 for a in it.aligned if a.hole.any())
        if n >= batch_faces:
            yield group
            group, n = [], 0
    if group:
        yield group


def restore_image(image: np.ndarray, mask: np.ndarray | None = None, inpainter: Inpainter | None = None,
                  detector: FaceDetector | None = None, aligned: bool = False, change_radius: int = 4) -> np.ndarray:
    """Restore one in-memory photo: image (H, W, 3) uint8/uint16 RGB, mask (H, W) bool (None: detect
    the damage) -> restored copy.

    Raises `NoFaceFound` when detection finds nothing.
    """
    from faceheal.faces.detect import MtcnnDetector
    from faceheal.inpainters import make_inpainter

    inpainter = inpainter or make_inpainter("generator")
    if not aligned:
        detector = detector or MtcnnDetector()
    masks = MaskSource(auto=auto_damage_mask()) if mask is None else MaskSource(auto=lambda rgb, lm: mask.astype(bool))
    restorer = Restorer(inpainter, detector, masks,
                        RestoreOptions(aligned=aligned, change_radius=change_radius))
    item = restorer.prepare(Source(Path("<memory>"), Path("memory.png")), Picture(pixels=image, format="PNG"))
    if item.error is not None:
        raise item.error
    todo = [i for i, a in enumerate(item.aligned) if a.hole.any()]
    restored = [a.crop for a in item.aligned]
    if todo:
        r = inpainter.inpaint(np.stack([restored[i] for i in todo]), np.stack([item.aligned[i].hole for i in todo]))
        for j, i in enumerate(todo):
            restored[i] = r.images[j]
    return restorer.compose(item, restored, ImageResult(path="<memory>"))
