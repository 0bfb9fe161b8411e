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


_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"BM")
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


def _stdin_paths(stream: TextIO) -> Iterator[Path]:
    for line in stream:
        line = line.strip()
        if line:
            yield Path(line)


def expand_inputs(inputs: Iterable[str], stdin: TextIO | None = None, exclude: Path | None = None) -> list[Source]:
    """Files, folders and `-` -> sources with relative paths, in a stable order, without duplicates.

    A folder's files are relative to that folder; a single file is relative to its own folder; stdin
    paths are relative to the current directory (one that escapes it fails, alone, when mirrored).
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
            for p in _stdin_paths(stdin or sys.stdin):
                # relative to the current folder, the root of stdin paths; a path that escapes it
                # keeps its '..' and is refused for that input when its output path is made
                rel = Path(os.path.relpath(p.absolute(), cwd))
                add(p, rel)
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
        raise OutputError(f"its output would fall outside {out_dir} (paths on stdin must lie under the current folder)")
    return out_dir / source.relative


def check_output_dir(out_dir: Path, inputs: Iterable[str], in_place: bool) -> None:
    """Refuse `-o` equal to an input folder (or inside it... only equality matters) unless --in-place."""
    if in_place:
        return
    out = out_dir.resolve()
    for item in inputs:
        if item != "-" and Path(item).is_dir() and Path(item).resolve() == out:
            raise UsageError(f"-o {out_dir} is the input folder: pick another folder or pass --in-place (keeps a backup)")


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
