"""Which files to restore and where each result goes.

Inputs are files, folders (searched recursively, image extensions matched case-insensitively) and `-`
(newline-separated paths on stdin). Each input keeps its path relative to the root it was found under,
and its output lands at the same relative path under `-o`. Nothing is ever written outside `-o`.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from faceheal.errors import OutputError, UsageError
from faceheal.images import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Source:
    """One photo to process: `path` on disk, `relative` = its path under the input root."""

    path: Path
    relative: Path


_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"BM", b"GIF87a", b"GIF89a")
_TEXT_SUFFIXES = {".json", ".txt", ".md", ".csv", ".xml", ".html", ".pdf", ".bak", ".faceheal-bak", ".part"}


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def looks_like_image(path: Path) -> bool:
    """An image by its name, or, for a name without a known image extension (phones and scanners
    write some), by its first bytes."""
    if is_image_name(path):
        return True
    if path.suffix.lower() in _TEXT_SUFFIXES:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def walk_images(root: Path, exclude: Path | None = None) -> Iterator[Path]:
    """Image files below `root`, sorted, following symlinked folders once (loops do not hang).
    `exclude`: a folder never to enter (the output folder, when it lies inside an input folder)."""
    seen: set[tuple[int, int]] = set()
    excluded = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        key = (st.st_dev, st.st_ino)
        if key in seen or (excluded is not None and Path(dirpath).resolve() == excluded and Path(dirpath).resolve() != Path(root).resolve()):
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not name.startswith(".") and looks_like_image(p):
                yield p


def _stdin_paths(stream: TextIO, null: bool = False) -> Iterator[Path]:
    """Paths on stdin, one per line, or separated by NUL bytes (`-0`, for `find -print0`)."""
    text = stream.read()
    if not null and "\0" in text:
        raise UsageError("the paths on stdin are separated by NUL bytes (find -print0): pass -0/--null")
    for item in text.split("\0") if null else text.splitlines():
        item = item if null else item.strip()
        if item:
            yield Path(item)


def _stdin_relative(path: Path, cwd: Path) -> Path:
    """Where a stdin path is mirrored under -o: its path from the current folder when it lies below it,
    else its whole absolute path without the root (as `cp --parents` and `rsync -R` do)."""
    absolute = Path(os.path.normpath(path.absolute()))
    if absolute == cwd or cwd in absolute.parents:
        return absolute.relative_to(cwd)
    return Path(*absolute.parts[1:])


def expand_inputs(inputs: Iterable[str], stdin: TextIO | None = None, exclude: Path | None = None,
                  null: bool = False) -> list[Source]:
    """Files, folders and `-` -> sources with relative paths, in a stable order, without duplicates.

    A folder's files are relative to that folder; a single file is relative to its own folder; stdin
    paths are relative to the current directory, or, outside it, mirrored by their full path.
    Missing files are kept (they fail later, one line each, and the batch goes on).
    """
    sources: list[Source] = []
    seen: set[Path] = set()

    def add(path: Path, relative: Path) -> None:
        key = path.resolve() if path.exists() else path.absolute()
        if key not in seen:
            seen.add(key)
            sources.append(Source(path, relative))

    cwd = Path.cwd().resolve()
    for item in inputs:
        if item == "-":
            for p in _stdin_paths(stdin or sys.stdin, null):
                add(p, _stdin_relative(p, cwd))
            continue
        p = Path(item)
        if p.is_dir():
            for f in walk_images(p, exclude):
                add(f, f.relative_to(p))
        else:
            add(p, Path(p.name))
    return sources


def output_path(out_dir: Path, source: Source) -> Path:
    """Where the result for `source` goes; refuses anything that would land outside `out_dir`."""
    target = (out_dir / source.relative).resolve()
    root = out_dir.resolve()
    if root != target and root not in target.parents:
        raise OutputError(f"its output would fall outside {out_dir}")
    return out_dir / source.relative


def check_output_dir(out_dir: Path, inputs: Iterable[str], in_place: bool) -> None:
    """Refuse `-o` equal to an input folder, or above one (its outputs would land among other
    originals: `restore album/scans -o album` writes album/p1.png), unless --in-place."""
    if in_place:
        return
    out = out_dir.resolve()
    for item in inputs:
        if item == "-" or not Path(item).is_dir():
            continue
        folder = Path(item).resolve()
        if folder == out:
            raise UsageError(f"-o {out_dir} is the input folder: pick another folder or pass --in-place (keeps a backup)")
        if out in folder.parents:
            raise UsageError(f"-o {out_dir} holds the input folder {item}: its outputs would land among other "
                             f"originals; pick another folder")


def check_outputs(out_dir: Path, sources: list[Source], in_place: bool) -> None:
    """Every output path, decided before any work: two inputs that would share one, or an output that
    is another input's file, are a usage error (nothing is written), not a silent overwrite."""
    owner: dict[str, Source] = {}
    inputs = {str(s.path.resolve()): s for s in sources if s.path.exists()}
    for s in sources:
        try:
            target = output_path(out_dir, s)
        except OutputError:
            continue  # refused for that input alone, later, with its name
        key = os.path.normcase(str(target.resolve()))
        if key in owner:
            raise UsageError(f"{owner[key].path} and {s.path} would both be written to {target}: "
                             f"restore them in separate runs or into separate -o folders")
        owner[key] = s
        other = inputs.get(str(target.resolve()))
        if other is not None and other.path.resolve() != s.path.resolve():
            raise UsageError(f"the output of {s.path} would overwrite the input {other.path}: pick another -o")


def shard(sources: list[Source], spec: str | None) -> list[Source]:
    """`--shard K/N`: the K-th of N deterministic parts (K from 1), by a hash of the relative path, so
    every machine of a cluster gets a stable, disjoint share whatever order the inputs were listed in."""
    if not spec:
        return sources
    try:
        k, n = (int(v) for v in spec.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise UsageError(f"--shard {spec!r}: expected K/N with 1 <= K <= N") from None
    import hashlib

    return [s for s in sources
            if int(hashlib.sha256(s.relative.as_posix().encode()).hexdigest()[:8], 16) % n == k - 1]
