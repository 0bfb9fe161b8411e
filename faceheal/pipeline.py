"""The restoration pipeline: photos in, restored photos out, only damaged face pixels changed.

`Restorer` owns the detector and the inpainting backend. It decodes and detects the next photos in a
background thread (bounded look-ahead), gathers the aligned crops of several photos into one batch
for the model, pastes each restored crop back through the inverse transform, and writes the result
atomically. `restore_image` is the same thing for one in-memory image, for use from Python.
"""
from __future__ import annotations

import functools
import json
from contextlib import contextmanager
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from faceheal.errors import FacehealError, NoFaceFound, OutputError
from faceheal.faces.align import (AlignedFace, align_face, align_with_matrix, change_weight, crop_region, paste_back,
                                  shift_matrix, template)
from faceheal.faces.detect import Face, FaceDetector
from faceheal.faces.hints import FaceBoxes
from faceheal.images import (Picture, apply_tone, descreened, encode_image, encode_into, from_float_rgb, mode_of,
                             monotone_tone, read_image, to_float_rgb, write_atomic, write_png)
from faceheal.grain import add_grain, is_grainy
from faceheal.inpainters import Inpainter, classical_fill
from faceheal.model.classical import TILE_PRIOR_RADIUS
from faceheal.model.weights import sha256_of
from faceheal.masks.source import MaskSource, detected_masks
from faceheal.model.windows import windows
from faceheal.originals import Originals
from faceheal.sources import Source, output_path


@dataclass
class RestoreOptions:
    aligned: bool = False  # inputs are already aligned face crops: skip detection
    change_radius: int = 0  # px beyond the (grown) damage that may change, feathered to 0 there: 0 = the damage only
    # damage no face crop covers: "auto" repairs it with the backend's own region fill (the texture
    # inpainter beside the generator, OpenCV with --model telea), "telea" with OpenCV, None leaves it.
    # Detected damage too: the per-region decision (masks/decision.py) keeps a clean photo's flags away,
    # and filling away from faces changed no more clean val photos (benchmarks/clean_photos.py)
    fill_outside: str | None = "auto"
    skip_no_face: bool = False  # no output at all for a photo without faces (default: a copy)
    layout_dir: Path | None = None  # write the predicted semantic layout of each face here
    max_pixels: int | None = None
    in_place: bool = False  # -o may be the input folder; the original is kept as <name>.faceheal-bak
    jpeg_quality: int | None = None
    sidecar: bool = False  # write <output>.faceheal.json (provenance)
    skip_existing: bool = False  # an output that exists is complete (atomic writes): skip its input
    masks_dir: Path | None = None  # also save each photo's damage mask here (mirroring the outputs)
    native_detail: bool = True  # big faces: the photo-resolution fill near the damage's edge (TEXTURE_EDGE_PX)
    grain: str = "auto"  # repairs get the scan's grain: on, off, or auto (on for grainy scans: faceheal/grain.py)
    face_boxes: FaceBoxes | None = None  # the user's face boxes (--face-boxes): faces to add, detections to drop


@dataclass
class FaceResult:
    face: Face | None
    hole_ratio: float
    layout: np.ndarray | None = None
    damage_probability: float | None = None  # the per-face decision's, for detected damage

    def to_json(self) -> dict:
        d = self.face.to_json() if self.face else {"box": None, "score": None}
        d["mask_ratio"] = round(self.hole_ratio, 4)
        if self.damage_probability is not None:
            d["damage_probability"] = self.damage_probability
        return d


@dataclass
class ImageResult:
    """What happened to one input: the JSON line of `--report`."""

    path: str
    output: str | None = None
    status: str = "ok"  # ok | partial (damage left unrepaired) | unchanged | skipped | no-face | error
    error: str | None = None
    faces: list[FaceResult] = field(default_factory=list)
    pixels_changed: int = 0
    damaged_pixels: int = 0
    unrepaired_pixels: int = 0  # damaged pixels outside every face crop, left as they were
    grain: bool = False  # repairs were given the scan's grain
    # the per-face decision's for the photo outside every face (detected damage flagged there only):
    # why a group photo's clothes or background were repainted, or left
    rest_damage_probability: float | None = None
    face_boxes: list[str] = field(default_factory=list)  # what the user's --face-boxes did here, to check
    possible_faces: list[dict] = field(default_factory=list)  # faces that may be hidden under the damage (box, score)
    seconds: float = 0.0
    traceback: str | None = None  # of an unexpected exception, for --debug; not in the report

    @property
    def failed(self) -> bool:
        return self.status == "error"

    def to_json(self) -> dict:
        d = {"path": self.path, "output": self.output, "status": self.status, "error": self.error,
             "faces": [f.to_json() for f in self.faces], "pixels_changed": self.pixels_changed,
             "damaged_pixels": self.damaged_pixels, "unrepaired_pixels": self.unrepaired_pixels,
             "grain": self.grain, "seconds": round(self.seconds, 3)}
        if self.rest_damage_probability is not None:
            d["rest_damage_probability"] = self.rest_damage_probability
        if self.face_boxes:
            d["face_boxes"] = self.face_boxes
        if self.possible_faces:
            d["possible_faces"] = self.possible_faces
        return d


@dataclass
class _Loaded:
    source: Source
    picture: Picture | None = None
    hole: np.ndarray | None = None  # (H, W) bool, display orientation; after compose: the damage left
    faces: list[Face] = field(default_factory=list)
    aligned: list[AlignedFace] = field(default_factory=list)
    error: FacehealError | None = None
    started: float = 0.0
    mask_info: dict = field(default_factory=dict)
    result: ImageResult | None = None  # finished already (nothing for the model): pixels released
    originals: Originals | None = None  # set by compose: the photo's own pixels under its repairs


def aligned_matrix(shape: tuple[int, int], size: int) -> np.ndarray:
    """The image -> crop transform of an already-aligned input: a plain rescale to the crop size."""
    h, w = shape
    return np.array([[size / w, 0, 0], [0, size / h, 0]], np.float64)


class Restorer:
    def __init__(self, inpainter: Inpainter, detector: FaceDetector | None, masks: MaskSource,
                 options: RestoreOptions | None = None, parameters: dict | None = None):
        self.inpainter = inpainter
        self.detector = detector
        self.masks = masks
        self.options = options or RestoreOptions()
        self.parameters = parameters or {}  # the run's flags, recorded in sidecars
        self.timings: dict[str, float] = {}  # busy seconds per stage, summed over threads (loaders overlap the rest)
        self._timings_lock = threading.Lock()

    @contextmanager
    def _timed(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            with self._timings_lock:
                self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t

    # -- stage 1: decode, mask, detect, align (runs in the look-ahead thread) -----------------
    def load(self, source: Source) -> _Loaded:
        try:
            with self._timed("decode"):
                pic = read_image(source.path, self.options.max_pixels)
            return self.prepare(source, pic)
        except FacehealError as e:
            return _Loaded(source, error=detached(e), started=time.perf_counter())
        except MemoryError:
            return _Loaded(source, error=FacehealError("out of memory while decoding (try --max-pixels)"),
                           started=time.perf_counter())
        except Exception as e:  # not faceheal's own (a decoder's, say): this photo fails, the batch goes on
            return _Loaded(source, error=unexpected(e), started=time.perf_counter())

    def prepare(self, source: Source, pic: Picture) -> _Loaded:
        """Mask, detect and align one decoded photo; errors are kept on the item, not raised.

        Nothing here converts the whole photo to float: detection sees a downscaled 8-bit copy, the
        aligner reads each face's footprint only, so a 100-megapixel scan costs little more than its
        decoded pixels.
        """
        item = _Loaded(source, picture=pic, started=time.perf_counter())
        try:
            display = descreened(pic, pic.display())
            size = self.inpainter.crop_size
            if self.options.aligned:
                m = aligned_matrix(display.shape[:2], size)
                item.faces = [None]
                eyes_mouth = (template(size) - m[:, 2]) / np.diag(m[:, :2])
                item.hole, item.mask_info = self.masks.mask_for(source, display, [eyes_mouth])
                h, w = display.shape[:2]
                item.hole = self.masks.decided(item.hole, [(0, 0, w, h)], item.mask_info)
                item.aligned = [align_with_matrix(display, item.hole, m, size)]
            else:
                item.faces, item.hole, item.mask_info = self.masks.find(self.detector, source, display, size, self._timed,
                                                                        self.options.face_boxes)
                if not item.faces:
                    raise NoFaceFound("no face found")
                with self._timed("align"):
                    item.aligned = [align_face(display, item.hole, f.landmarks, size) for f in item.faces]
            with self._timed("prior"):
                for a in item.aligned:
                    a.prior = self.inpainter.prior_for(a.crop, a.hole)
            if display.size > BIG_PHOTO_VALUES:  # the detectors' buffers and the mask's decoding: back to the OS
                _release_freed_memory()
        except FacehealError as e:
            item.error = detached(e)
        return item

    # -- stage 2 and 3: paste back, write ------------------------------------------------------
    def compose(self, item: _Loaded, restored: list[np.ndarray], res: ImageResult) -> np.ndarray:
        """Paste the restored crops into the photo; returns display-orientation stored pixels.

        Only pixels within `change_radius` of the damage can differ from the input; damage that no
        face crop covers is left as is (counted in `unrepaired_pixels`) unless `fill_outside`. Work
        happens face by face in each face's footprint, in float, so memory follows the faces, not the
        scan. The repairs are written into the decoded pixels themselves (`item.originals` keeps what
        was under them), and `item.hole` is left holding the damage not repaired: a scan is never
        held twice. So compose runs once per item: it consumes the picture and the hole.
        """
        display, hole = item.picture.display(), item.hole
        res.damaged_pixels = int(hole.sum())
        out = display if display.flags.writeable else display.copy()  # repaired in place (decoders give writable pixels)
        item.originals = originals = Originals(out)
        covered = []  # (footprint, pixels the faces' repairs took) of each face: cleared from the hole after
        radius = self.options.change_radius
        tone = None if item.picture.is_gray else monotone_tone(to_float_rgb(display[::8, ::8]), ~hole[::8, ::8])
        rim_px = CLASSICAL_RIM_PX if self.inpainter.name == "generator" else 0
        # --model telea: OpenCV's fill made at the photo's resolution wherever a face's repair is whole
        # (through the 256 px crop it scored 0.40-0.55 dB below the same fill on the whole photo,
        # `faceheal eval --photos --baselines-only`, test split, NVIDIA masks)
        classical = self.inpainter.name != "generator"
        h, w = hole.shape
        # measured only when there is something to repair: a clean photo costs no grain check
        grain = bool(res.damaged_pixels) and (self.options.grain == "on" or (self.options.grain == "auto" and is_grainy(display, hole)))
        res.grain = grain
        rng = np.random.default_rng([res.damaged_pixels, h, w])  # the same photo, the same grain
        for a, crop in zip(item.aligned, restored):
            if not a.hole.any():
                continue
            x0, y0, x1, y1 = crop_region(a.matrix, crop.shape[0], (h, w))
            if x1 <= x0 or y1 <= y0 or not hole[y0:y1, x0:x1].any():
                continue
            # the weight near the footprint's edge depends on damage just outside it
            mx0, my0, mx1, my1 = max(0, x0 - radius - 2), max(0, y0 - radius - 2), min(w, x1 + radius + 2), min(h, y1 + radius + 2)
            weight_all = change_weight(hole[my0:my1, mx0:mx1], radius)
            image_weight = weight_all[y0 - my0:y1 - my0, x0 - mx0:x1 - mx0]
            canvas = to_float_rgb(out[y0:y1, x0:x1])
            scale = photo_px_per_crop_px(a.matrix)
            big = self.options.native_detail and scale >= NATIVE_DETAIL_SCALE and not classical
            finer = self.options.native_detail and scale >= FINE_TEXTURE_SCALE
            local_hole = hole[y0:y1, x0:x1]
            edge = native_edge(scale)
            learned_edge = big and self.inpainter.learned_fill  # the texture inpainter near the edge (TEXTURE_EDGE_PX)
            detail = finer and learned_edge and self.inpainter.detail_pass  # and the detail pass over the whole repair
            # before the paste: from the photo's own pixels
            native = (self.inpainter.fill_region(canvas, local_hole) if classical or learned_edge
                      else classical_fill(canvas, local_hole, edge.radius, edge.method) if big else None)
            start = classical_fill(canvas, local_hole, TILE_PRIOR_RADIUS) if detail else None
            weight = np.zeros(image_weight.shape, np.float32)
            paste_back(canvas, weight, crop, shift_matrix(a.matrix, x0, y0), image_weight,
                       edge_feather=0 if self.options.aligned else 8)
            changed = weight > 0
            took = weight >= 0.999  # the crop's repair whole here (not faded at the crop's edge)
            full = local_hole & took
            if classical:  # no face model: its crop would only hold OpenCV's fill resampled twice
                canvas[full] = native[full]
            if big and full.any():
                with self._timed("native_detail"):
                    if learned_edge:  # photo px from the nearest undamaged pixel, damage beyond the footprint counted
                        depth = _inner_distance(hole[my0:my1, mx0:mx1])[y0 - my0:y1 - my0, x0 - mx0:x1 - mx0]
                        share = face_model_weight(depth[full])
                    else:  # crop px inside the crop's whole repair
                        share = edge.model_weight(_inner_distance(full) / scale)[full]
                    if detail:
                        self._detail_pass(canvas, native, start, local_hole, full, share)
                    else:
                        if learned_edge and finer:  # the face model's colour cast, measured at the edge, taken out deeper in
                            carry_colour_offset(canvas, native, full, depth)
                        self._native_detail(canvas, native, full, share)
            if rim_px > 0 and not learned_edge:  # the damage's outermost pixels: the classical fill (see CLASSICAL_RIM_PX)
                rim = full & (_inner_distance(local_hole) <= rim_px)
                if rim.any():  # filled from both sides: the photo outside, the model's repair inside
                    canvas[rim] = classical_fill(canvas, rim, 5, cv2.INPAINT_NS)[rim]
            if tone is not None and changed.any():  # a toned print: repairs take its tone, not the model's colour
                canvas[changed] = apply_tone(tone, canvas[changed])
            # a big face's repair, resampled up from the crop, lacks every frequency above the crop's: the
            # surroundings' fine texture (skin, grain, sensor noise) is given back unless --grain off
            if grain or (finer and self.options.grain == "auto"):
                canvas = add_grain(canvas, changed, rng)
            originals.keep(y0, y1, x0, x1, changed)
            out[y0:y1, x0:x1] = from_float_rgb(canvas, out[y0:y1, x0:x1], changed)
            covered.append(((y0, y1, x0, x1), took))
        for (y0, y1, x0, x1), took in covered:  # the damage no face repaired, in place
            hole[y0:y1, x0:x1] &= ~took
        if self._fills_outside() and hole.any():
            _release_freed_memory()  # the faces' float canvases: back to the OS before the windows' tensors
            with self._timed("away_from_faces"):
                self._fill_away_from_faces(out, hole, grain, rng, originals, tone)
        res.unrepaired_pixels = int(hole.sum())
        res.pixels_changed = originals.count_changed()
        return out

    def _detail_pass(self, canvas: np.ndarray, native: np.ndarray, start: np.ndarray, local_hole: np.ndarray,
                     full: np.ndarray, share: np.ndarray) -> None:
        """A big face (FINE_TEXTURE_SCALE and up) with the detail net shipped: its repair is the detail
        net's, at the photo's resolution, started as it was trained (faceheal/train/tiles.py
        `detail_start`): OpenCV's fill (`start`) near the damage's edge, the face model's resampled
        repair (in `canvas`) deeper in, by `share`; the damage the crop did not repair whole is shown
        to it as the texture inpainter filled it (`native`)."""
        around = canvas.copy()
        rest = local_hole & ~full
        around[rest] = native[rest]
        w = share[:, None]
        around[full] = (1 - w) * start[full] + w * canvas[full]
        canvas[full] = self.inpainter.add_detail(around, full)[full]

    @staticmethod
    def _native_detail(canvas: np.ndarray, native: np.ndarray, full: np.ndarray, share: np.ndarray) -> None:
        """A face bigger in the photo than its crop: thin damage resampled through the crop loses the
        photo's own pixels beside it (a damaged crop pixel covers several photo pixels, so the crop's
        hole is wider than the photo's), and the repair comes back soft. So near the damage's edge the
        fill made at the photo's resolution (`native`: the texture inpainter's, or OpenCV's) takes over,
        and the face model's repair deeper in: `share` is the model's weight at each pixel of `full`
        (`face_model_weight`, or `native_edge`'s without the texture inpainter)."""
        w = share[:, None]
        canvas[full] = np.clip((1 - w) * native[full] + w * canvas[full], 0, 1)

    def _fill_away_from_faces(self, out: np.ndarray, todo: np.ndarray, grain: bool, rng, originals: Originals,
                              tone: np.ndarray | None = None) -> None:
        """Repair the damage no face crop took (in place, `todo` cleared as it goes) with the backend's
        `fill_region`, window by window: a window is read in float with its context, every damage pixel
        in it not repaired yet is hidden from the fill, and only its core is written back. Memory
        follows the window, not the scan; a face's repair next to a window is its context. `tone`: a
        monochrome print's tone curve, which these repairs take as the faces' do (the texture
        inpainter, trained on colour photos, put colour into gray scans stored as RGB)."""
        h, w = todo.shape
        for i, (x0, y0, x1, y1) in enumerate(windows(todo, AWAY_WINDOW, AWAY_CONTEXT)):  # disjoint cores, each with damage
            if i and i % 8 == 0:  # windows of many shapes fragment the heap: RSS crept up by ~250 MB over 100
                _release_freed_memory()
            wx0, wy0, wx1, wy1 = max(0, x0 - AWAY_CONTEXT), max(0, y0 - AWAY_CONTEXT), min(w, x1 + AWAY_CONTEXT), min(h, y1 + AWAY_CONTEXT)
            canvas = to_float_rgb(out[wy0:wy1, wx0:wx1])
            hidden = todo[wy0:wy1, wx0:wx1]
            filled = (classical_fill(canvas, hidden) if self.options.fill_outside == "telea"
                      else self.inpainter.fill_region(canvas, hidden))
            core = np.zeros(hidden.shape, bool)
            core[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = True
            core &= hidden
            canvas[core] = filled[core] if tone is None else apply_tone(tone, filled[core])
            if grain:
                canvas = add_grain(canvas, core, rng)
            originals.keep(wy0, wy1, wx0, wx1, core)
            out[wy0:wy1, wx0:wx1] = from_float_rgb(canvas, out[wy0:wy1, wx0:wx1], core)
            todo[wy0:wy1, wx0:wx1] &= ~core

    def _fills_outside(self) -> bool:
        return self.options.fill_outside is not None

    def finish(self, item: _Loaded, restored: list[np.ndarray], layouts: list[np.ndarray | None],
               out_path: Path) -> ImageResult:
        res = ImageResult(path=str(item.source.path))
        decision = item.mask_info.get("decision", {})
        probs = decision.get("face_damage_probability") or [None] * len(item.faces)
        res.rest_damage_probability = decision.get("rest_damage_probability")
        res.face_boxes = list(item.mask_info.get("face_boxes", []))
        res.possible_faces = list(item.mask_info.get("possible_faces", []))
        res.faces = [FaceResult(f, a.hole_ratio, lay, p) for f, a, lay, p in zip(item.faces, item.aligned, layouts, probs)]
        # the damage as found (compose leaves only what it did not repair), written after the photo
        found = item.hole.copy() if self.options.masks_dir is not None else None
        with self._timed("paste_back"):
            out_display = self.compose(item, restored, res)
        pic = item.picture
        if self.options.in_place and out_path.exists() and out_path.resolve() == item.source.path.resolve():
            backup = out_path.with_name(out_path.name + ".faceheal-bak")
            if not backup.exists():
                shutil.copy2(item.source.path, backup)
        if res.unrepaired_pixels:  # never "ok" with damage left: say how much, and why
            res.status = "partial"
            res.error = (f"{res.unrepaired_pixels} of {res.damaged_pixels} damaged pixels left unrepaired "
                         f"(outside every face found: --faces-only or --fill-outside none)")
        if res.pixels_changed == 0:
            copy_exact(item.source.path, out_path)
            if res.status == "ok":
                res.status = "unchanged"
        else:
            _release_freed_memory()  # the texture pass's windows: back to the OS before the encoder's buffers
            with self._timed("encode_write"):
                stored = pic.store(out_display)
                # encoders that keep the file's own bytes where nothing changed (a JPEG's blocks, a
                # palette's indices) are told what changed: the decoded pixels hold the repair now
                changed = pic.store(item.originals.changed_mask()) if pic.format == "JPEG" or pic.stored else None
                if pic.format == "JPEG":  # what really differs once encoded: the repaired blocks only
                    from faceheal.jpeg_blocks import decode

                    data = encode_image(pic, stored, self.options.jpeg_quality, changed)
                    decoded = decode(data)
                    if decoded.shape == pic.pixels.shape:
                        with item.originals.original():  # pic.pixels as decoded (the same array when not rotated)
                            res.pixels_changed = count_changed(decoded, pic.pixels)
                    write_atomic(out_path, data, mode_of(item.source.path))
                else:  # encoded straight into the output's temp file: never a second copy in memory
                    write_atomic(out_path, lambda f: encode_into(f, pic, stored, self.options.jpeg_quality, changed),
                                 mode_of(item.source.path))
        res.output = str(out_path)
        if self.options.layout_dir is not None:
            self._write_layouts(item, res)
        if found is not None:
            self._write_mask(item, found)
        if self.options.sidecar:
            self._write_sidecar(item, res, out_path)
        return res

    def _write_sidecar(self, item: _Loaded, res: ImageResult, out_path: Path) -> None:
        """`<output>.faceheal.json`: everything needed to know how this file came to be."""
        from faceheal import __version__

        boxes = item.originals.changed_boxes()  # display orientation, as the masks
        doc = {"faceheal": __version__, "input": str(item.source.path), "input_sha256": sha256_of(item.source.path),
               "output": str(out_path), "model": self.inpainter.describe(), "mask": item.mask_info,
               "faces": [f.to_json() for f in res.faces], "pixels_changed": res.pixels_changed,
               "changed_boxes": boxes[:1000], "changed_boxes_total": len(boxes),
               "orientation": item.picture.orientation, "parameters": self.parameters}
        write_atomic(out_path.with_name(out_path.name + ".faceheal.json"), json.dumps(doc, indent=1).encode())

    def _write_mask(self, item: _Loaded, hole: np.ndarray) -> None:
        write_png(self.options.masks_dir / item.source.relative.with_suffix(".png"), hole.astype(np.uint8) * 255)

    def _write_layouts(self, item: _Loaded, res: ImageResult) -> None:
        from faceheal.model.semantics import colourise

        for i, fr in enumerate(res.faces):
            if fr.layout is not None:
                rel = item.source.relative
                write_png(self.options.layout_dir / rel.parent / f"{rel.stem}.face{i}.layout.png", colourise(fr.layout))

    def run(self, sources: Iterable[Source], out_dir: Path, on_result: Callable[[ImageResult], None] | None = None,
            batch_faces: int = 8, lookahead: int = 4, loaders: int = 1) -> list[ImageResult]:
        """Restore every source into `out_dir`; one `ImageResult` per source, errors included, in input
        order.

        Three stages overlap: `loaders` threads decode, detect, mask and align ahead of the model (at
        most `lookahead` photos per loader ahead); the model takes batches of crops from several photos;
        as many writer threads paste back, encode and write one batch while the model works on the
        next (OpenCV, Pillow and zlib release the GIL). At most two batches are ever past the model,
        so memory stays flat however long the run.
        """
        results = []
        if self.options.skip_existing:
            sources = self._skip_done(sources, out_dir, on_result, results)
        loaders = max(1, int(loaders))

        def deliver(futures) -> None:
            for f in futures:
                r = f.result()
                results.append(r)
                if on_result:
                    on_result(r)
            _release_freed_memory()

        writing = []  # the previous batch's futures, in input order
        with ThreadPoolExecutor(max_workers=loaders, thread_name_prefix="faceheal-load") as load_pool, \
                ThreadPoolExecutor(max_workers=loaders, thread_name_prefix="faceheal-write") as write_pool:
            load = functools.partial(self._load_or_finish, out_dir=out_dir)
            for group in _batches(_prefetch(load_pool, load, sources, lookahead * loaders), batch_faces):
                done = self._inpaint_group(group)
                del group
                if writing:
                    deliver(writing)
                writing = [write_pool.submit(self._finish_item, g, mine, mine_layouts, out_dir)
                           for g, mine, mine_layouts in done]
                del done
            deliver(writing)
        return results

    def _skip_done(self, sources: Iterable[Source], out_dir: Path, on_result, results) -> Iterator[Source]:
        """Sources whose output is not there yet. Outputs are only ever renamed into place complete,
        so an existing output is a finished one, whatever stopped the earlier run."""
        for src in sources:
            try:
                done = output_path(out_dir, src).exists()
            except FacehealError:
                done = False
            if not done:
                yield src
                continue
            r = ImageResult(path=str(src.path), output=str(output_path(out_dir, src)), status="skipped")
            results.append(r)
            if on_result:
                on_result(r)

    def _inpaint_group(self, group: list[_Loaded]) -> list[tuple[_Loaded, list, list]]:
        """Run the model once over the damaged crops of every photo in `group`; returns each photo with
        its restored crops and layouts. A model failure (e.g. out of GPU memory) fails these photos only."""
        good = [g for g in group if g.error is None]
        crops = [a for g in good for a in g.aligned]
        restored, layouts = [], []
        if crops:
            todo = [i for i, a in enumerate(crops) if a.hole.any()]
            restored = [a.crop for a in crops]
            layouts = [None] * len(crops)
            if todo:
                try:
                    priors = [crops[i].prior for i in todo]
                    with self._timed("inpaint"):
                        r = self.inpainter.inpaint(np.stack([crops[i].crop for i in todo]),
                                                   np.stack([crops[i].hole for i in todo]),
                                                   np.stack(priors) if all(p is not None for p in priors) else None)
                except (RuntimeError, MemoryError) as e:  # e.g. out of (GPU) memory: these photos fail, the run goes on
                    for g in good:
                        g.error = FacehealError(f"inpainting failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                                                f"try a smaller --batch-size")
                    todo, crops, restored, layouts = [], [], [], []
                for j, i in enumerate(todo):
                    restored[i] = r.images[j]
                    layouts[i] = r.layouts[j] if r.layouts is not None else None
        out, k = [], 0
        for g in group:
            n = len(g.aligned) if g.error is None else 0
            out.append((g, restored[k:k + n], layouts[k:k + n]))
            k += n
        return out

    def _load_or_finish(self, source: Source, out_dir: Path) -> _Loaded:
        """Load a photo (a loader thread); one with nothing for the model (no face, no damage on a face,
        an error) is finished at once, written and released, so that photos waiting for a batch of
        damaged faces to fill never hold a no-face scan's pixels, and a killed run has written it."""
        item = self.load(source)
        if item.error is not None or not any(a.hole.any() for a in item.aligned):
            item.result = self._finish_item(item, [a.crop for a in item.aligned], [None] * len(item.aligned), out_dir)
            item.picture, item.hole, item.aligned, item.originals = None, None, [], None
            _release_freed_memory()  # its pixels: back to the OS now, not at the next batch
        return item

    def _finish_item(self, g: _Loaded, restored: list[np.ndarray], layouts: list, out_dir: Path) -> ImageResult:
        """Paste back and write one photo (a writer thread); every failure is this photo's result."""
        if g.result is not None:
            return g.result
        res = ImageResult(path=str(g.source.path))
        try:
            out_path = output_path(out_dir, g.source)
            if g.error is None:
                res = self.finish(g, restored, layouts, out_path)
            elif isinstance(g.error, NoFaceFound):
                res = self._no_face(g, out_path)
            else:
                res.status, res.error = "error", str(g.error)
        except FacehealError as e:
            res.status, res.error = "error", str(e)
        except OSError as e:
            res.status, res.error = "error", f"{e.strerror or e}"
        except Exception as e:  # not faceheal's own: this photo fails, the batch goes on
            err = unexpected(e)
            res.status, res.error, res.traceback = "error", str(err), err.traceback
        if res.status == "error" and res.traceback is None:
            res.traceback = getattr(g.error, "traceback", None)
        g.originals = None  # its kept tiles, and through them the decoded pixels: not held past the write
        res.seconds = time.perf_counter() - g.started
        return res

    def _no_face(self, g: _Loaded, out_path: Path) -> ImageResult:
        """No face: reported as such; the output is a byte-for-byte copy (or, for a mask the user drew,
        the photo with that damage repaired) unless --skip-no-face. Detected damage on a photo with no
        face is left: faceheal restores portraits, and a copy is what an archive expects of the rest."""
        res = ImageResult(path=str(g.source.path), status="no-face", error=str(g.error),
                          face_boxes=list(g.mask_info.get("face_boxes", [])),
                          possible_faces=list(g.mask_info.get("possible_faces", [])))
        if self.options.skip_no_face:
            return res
        if self._fills_outside() and not self.masks.is_auto and g.hole is not None and g.hole.any():
            g.faces, g.aligned = [], []
            res = self.finish(g, [], [], out_path)
            res.status, res.error = "no-face", str(g.error)  # finish kept the face boxes' notes
        else:
            copy_exact(g.source.path, out_path)
            res.output = str(out_path)
        return res


# Damaged pixels at most this far from an undamaged one take OpenCV's Navier-Stokes fill instead of
# the generator's: right next to known pixels the classical continuation is the better guess. Chosen on
# the 'val' photos of `faceheal eval --photos` (25 photos, 20-30 % and 40-50 % face damage, PSNR in the
# face box of the generator's result with a rim of d px from Navier-Stokes): d = 0 / 1 / 2 / 3 gave
# 38.09 / 38.99 / 39.12 / 39.10 dB on scratches, 33.74 / 33.88 / 33.61 / 33.28 on strokes and
# 30.49 / 30.58 / 30.55 / 30.40 on NVIDIA masks. 1 px is better than none on all three. The rim is
# filled from both sides (the photo outside, the model's repair inside), not from the photo alone:
# on 20 val photos +0.01-0.05 dB (NVIDIA), +0.05-0.28 (strokes), +0.03-0.13 (scratches), lower LPIPS
# everywhere, and far cheaper (Navier-Stokes on the rim, not the whole hole).
CLASSICAL_RIM_PX = 1

# A face whose crop is this many times smaller than its footprint in the photo takes the photo-resolution
# classical fill near the damage's edge (Restorer._native_detail). Chosen on 12 'val' CelebA-HQ photos at
# 512 px (faces 2-3x the crop's scale; thin strokes and wide brush marks over 15-35 % of the face box;
# PSNR of the damaged pixels): the 256 px repair resampled 24.66 dB, OpenCV Telea on the photo 24.85;
# blends from / over (crop px) 0.5 / 3: 25.71, 1 / 1.5: 25.63, 0.5 / 1.5: 25.46; from scale 2 instead
# of 1.5: 25.46. From scale 1.0 instead of 1.5 (All-Age-Faces' faces are 1.1-1.3x; 1.05 is the same there), `faceheal eval
# --photos` on 24 'val' photos: NVIDIA masks +0.03 to +0.10 dB in every bin, strokes -0.06 / +0.25 /
# +0.17 / +0.36 / +0.42 dB (10-20 ... 50-60 %), LPIPS about the same. (A texture network refining
# the resampled repair from its soft copy, trained with L1, scored below the soft copy itself: 32.7
# against 33.9 dB on val tiles, and was dropped.)
NATIVE_DETAIL_SCALE = 1.05  # not at 1:1 (an aligned input): there the 1 px classical rim is the better edge
# (the fill and how deep it reaches: `native_edge`, by scale)
# ... and from this scale its repair also gets the fine texture around it (the crop cannot hold those
# frequencies; at 1.0-1.5 it holds most of them, and added grain would cost PSNR for little):
# CelebA-HQ val, faces 2-3x: sharpness ratio 0.05 -> 0.82 (the photos' own 0.86), LPIPS 0.068 -> 0.060
FINE_TEXTURE_SCALE = 1.5


@dataclass(frozen=True)
class NativeEdge:
    """How a face's repair meets the photo near the damage's edge: OpenCV's fill (`method`, `radius`)
    made at the photo's resolution, giving way to the model's repair with depth (crop px from the
    nearest undamaged pixel): the model's weight is 1 - exp(-depth / tau), or, with `ramp` (from,
    span), rises linearly from 0 at `from` to 1 at `from + span` (and stays 1: no fill deep inside)."""

    method: int
    radius: int
    tau: float = 0.0
    ramp: tuple[float, float] | None = None

    def model_weight(self, depth: np.ndarray) -> np.ndarray:
        if self.ramp is not None:
            return np.clip((depth - self.ramp[0]) / self.ramp[1], 0, 1)
        return 1 - np.exp(-depth / self.tau)


def native_edge(scale: float) -> NativeEdge:
    """The edge blend for a face of `scale` photo px per crop px, chosen on 'val' photos in two regimes.

    Faces 1.05-1.5x the crop's scale (`faceheal eval --photos` on 40 'val' All-Age-Faces photos, faces
    1.1-1.3x; PSNR / LPIPS in the face box by bin 10-20 ... 50-60 %): Navier-Stokes with depth 1.5 beat
    the earlier Telea with a linear ramp (0 at 0.5 crop px, 1 at 3.5) in every bin, NVIDIA masks
    36.03/32.82/29.11/26.89/24.16 -> 36.14/32.91/29.15/26.94/24.17 dB (LPIPS within 0.0004), strokes
    38.72/35.62/33.47/31.95/30.80 -> 38.95/35.72/33.59/32.03/30.82 (LPIPS 0.0166/0.0328/0.0517/0.0725/
    0.0914 -> 0.0154/0.0308/0.0487/0.0683/0.0882), scratches 40.39/38.40 -> 40.54/38.52; depth 2.0
    scored within 0.04 dB of 1.5, Navier-Stokes with the old ramp no better than Telea with it. Per
    pixel, the best mix of model and Navier-Stokes there rose from 0.2-0.4 at the first pixel to 0.9 at
    8 px. Faces from 1.5x (`benchmarks/big_faces.py --split val`, CelebA-HQ at 512 px, faces 2-3x):
    the Telea ramp stays (24.86 dB, LPIPS 0.0591): Telea with tau 3 was no better (24.85, 0.0591) and
    leaves some fill deep inside, which the fine texture added there does not want; Navier-Stokes lost
    with every depth tried (tau 1.5 / 3 / 4 / the ramp: 24.66 / 24.81 / 24.78 / 24.83).
    """
    if scale < FINE_TEXTURE_SCALE:
        return NativeEdge(cv2.INPAINT_NS, 5, tau=1.5)
    return NativeEdge(cv2.INPAINT_TELEA, 3, ramp=(0.5, 3.0))


# A face bigger in the photo than its crop (from NATIVE_DETAIL_SCALE), with the texture inpainter shipped:
# the face's repair is the texture inpainter's, made at the photo's resolution with every known pixel
# beside the damage in view, near the damage's edge, and the face model's deeper in a wide hole,
# where the face's layout matters (`face_model_weight`, by photo px from the nearest undamaged pixel).
# Chosen on 'val' (`faceheal eval --photos` path, 40 All-Age-Faces photos, faces 1.1-1.3x, NVIDIA
# masks and strokes): per pixel, the texture inpainter beat the face model by 1.5-2 dB within 5 px
# of the edge (the best share of the face model there: 0.0-0.1), the face model won from about 12 px
# (best share 0.5-0.8). Face-box PSNR by bin 10-20 ... 50-60 %, NVIDIA: the face model with the
# Navier-Stokes edge 36.14/32.92/29.17/26.93/24.22, the texture inpainter alone 37.66/34.34/30.15/
# 28.09/24.45, this mix 37.71/34.31/30.22/28.10/24.77 through restore; strokes 38.95/35.73/33.59/32.03/30.82 ->
# 40.80/37.73/35.68/34.07/32.83 (the texture inpainter alone the same). Mixing the two runs' outputs
# offline, every edge width 2-6 px, rise 4-12 px and deep share 0.6-1.0 scored within 0.1 dB of this one. The texture
# inpainter fed the face model's repair as its starting fill instead of OpenCV's kept the face model's
# errors: +0.1 to +0.6 dB over the face model alone.
TEXTURE_EDGE_PX, FACE_MODEL_RISE_PX, FACE_MODEL_DEEP = 3.0, 8.0, 0.8


# A big face's repair deep in a wide hole is the face model's, whose colour and brightness drift a little
# from the photo's (a paler cheek, a grayer jaw); within COLOUR_REF_PX of the damage's edge the texture
# inpainter's repair, made from the photo's own pixels, is the better one (1.5-2 dB per pixel). So the
# difference between the two there, smoothed (Gaussian COLOUR_SIGMA px), is carried inward (OpenCV's
# fill over the offset) and added to the face model's repair. `benchmarks/big_faces.py --split val`
# (CelebA-HQ at 512 px, faces 2-3x the crop's scale): NVIDIA masks over 30-50 % of the box 23.93 ->
# 24.10 dB, LPIPS 0.092 -> 0.090; brush marks 24.80 -> 24.89, thin strokes the same; reference 3 / 6 px
# and sigma 8 within 0.02 dB of it; the offset bounded to 15 levels (COLOUR_MAX_OFFSET) 24.09 dB, LPIPS
# 0.0900 (to 8 levels: 24.05). On All-Age-Faces' faces (1.1-1.3x; `faceheal eval --photos --split val
# --limit 24`, NVIDIA) it moved the bins by -0.04 to +0.07 dB: used from FINE_TEXTURE_SCALE only.
COLOUR_REF_PX, COLOUR_SIGMA, COLOUR_MAX_OFFSET = 4.0, 4.0, 0.06


def carry_colour_offset(canvas: np.ndarray, native: np.ndarray, full: np.ndarray, depth: np.ndarray) -> None:
    """In place: the face model's repair (`canvas`'s `full` pixels) less its colour offset from the
    texture inpainter's (`native`) near the damage's edge, carried into the pixels deeper than
    COLOUR_REF_PX (`depth`: photo px from the nearest undamaged pixel)."""
    ref = full & (depth <= COLOUR_REF_PX)
    deep = full & (depth > COLOUR_REF_PX)
    if not ref.any() or not deep.any():
        return
    offset = np.zeros_like(canvas)
    offset[ref] = native[ref] - canvas[ref]
    num = cv2.GaussianBlur(offset, (0, 0), COLOUR_SIGMA)
    den = cv2.GaussianBlur(ref.astype(np.float32), (0, 0), COLOUR_SIGMA)[..., None]
    # a cast, not a difference of structure (an eyebrow one has and the other not): bounded
    smooth = np.clip(np.where(ref[..., None], num / np.maximum(den, 1e-3), 0), -COLOUR_MAX_OFFSET, COLOUR_MAX_OFFSET).astype(np.float32)
    carried = classical_fill(np.clip(smooth + 0.5, 0, 1), deep, 5) - 0.5  # (shifted into [0, 1] for OpenCV)
    canvas[deep] = np.clip(canvas[deep] + carried[deep], 0, 1)


def face_model_weight(depth: np.ndarray) -> np.ndarray:
    """The face model's share of a face's repair at `depth` photo px inside the damage; the rest is the
    texture inpainter's (see TEXTURE_EDGE_PX)."""
    return FACE_MODEL_DEEP * (1 - np.exp(-np.maximum(0, depth - TEXTURE_EDGE_PX) / FACE_MODEL_RISE_PX))


def photo_px_per_crop_px(matrix: np.ndarray) -> float:
    """The scale of an image -> crop similarity transform, as photo pixels per crop pixel."""
    return float(1 / np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


# damage away from faces is repaired in windows of this many px (cores), each read with this context
AWAY_WINDOW, AWAY_CONTEXT = 1024, 64

# a photo of more stored values than this hands freed memory back after prepare (detection buffers, mask decoding)
BIG_PHOTO_VALUES = 30_000_000


def _inner_distance(hole: np.ndarray) -> np.ndarray:
    """Each damaged pixel's distance to the nearest undamaged one (0 outside the damage)."""
    return cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)


def detached(e: FacehealError) -> FacehealError:
    """An error kept on its photo's item: its traceback as text (for --debug), not its frames, which
    would keep the decoded photo alive until the item goes."""
    import traceback

    e.traceback = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return e.with_traceback(None)


def unexpected(e: BaseException) -> FacehealError:
    """An exception that is not faceheal's own, as one input's error: one line, its traceback kept for
    --debug."""
    import traceback

    first = (str(e).splitlines() or [""])[0][:300]
    err = FacehealError(f"unexpected {type(e).__name__}" + (f": {first}" if first else ""))
    err.traceback = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return err


def count_changed(a: np.ndarray, b: np.ndarray, rows: int = 1024) -> int:
    """Pixels where two same-shaped images differ in any channel, counted in bands of rows."""
    n = 0
    for y in range(0, a.shape[0], rows):
        d = a[y:y + rows] != b[y:y + rows]
        n += int((d.any(axis=-1) if d.ndim == 3 else d).sum())
    return n


def copy_exact(src: Path, dst: Path) -> None:
    """The input's bytes under the output name (atomic): nothing to change means nothing changes."""
    try:
        data = Path(src).read_bytes()
    except OSError as e:
        raise OutputError(f"cannot read {src}: {e.strerror or e}") from None
    if Path(dst).exists() and Path(dst).resolve() == Path(src).resolve():
        return
    write_atomic(dst, data, mode_of(src))


@functools.lru_cache(maxsize=1)
def _libc_malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS after each batch of photos. glibc keeps them otherwise,
    and photos of many sizes decoded in several threads fragment its arenas: RSS crept up by about
    300 MB over 400 photos without this (benchmarks/bench_restore.py)."""
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)


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
                  detector: FaceDetector | None = None, aligned: bool = False, change_radius: int = 0) -> np.ndarray:
    """Restore one in-memory photo: image (H, W, 3) uint8/uint16 RGB, mask (H, W) bool (None: detect
    the damage) -> restored copy.

    Raises `NoFaceFound` when detection finds nothing.
    """
    from faceheal.faces.detect import MtcnnDetector
    from faceheal.inpainters import make_inpainter

    inpainter = inpainter or make_inpainter("generator")
    if not aligned:
        detector = detector or MtcnnDetector()
    masks = detected_masks() if mask is None else MaskSource(auto=lambda rgb, lm: mask.astype(bool), grow=0)
    restorer = Restorer(inpainter, detector, masks,  # a mask given is the caller's: all of it is repaired
                        RestoreOptions(aligned=aligned, change_radius=change_radius,
                                       fill_outside="auto"))
    # a copy: compose repairs the picture's pixels in place, and the caller's array is theirs
    item = restorer.prepare(Source(Path("<memory>"), Path("memory.png")), Picture(pixels=image.copy(), format="PNG"))
    if item.error is not None:
        raise item.error
    [(item, restored, _)] = restorer._inpaint_group([item])  # the batching loop restore runs, priors included
    if item.error is not None:
        raise item.error
    return restorer.compose(item, restored, ImageResult(path="<memory>"))
