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

from faceheal.errors import UsageError
from faceheal.images import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Source:
    """One photo to process: `path` on disk, `relative` = its path under the input root."""

    path: Path
    relative: Path


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def walk_images(root: Path) -> Iterator[Path]:
    """Image files below `root`, sorted, following symlinked folders once (loops do not hang)."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not name.startswith(".") and is_image_name(p):
                yield p


def _stdin_paths(stream: TextIO) -> Iterator[Path]:
    for line in stream:
        line = line.strip()
        if line:
            yield Path(line)


def expand_inputs(inputs: Iterable[str], stdin: TextIO | None = None) -> list[Source]:
    """Files, folders and `-` -> sources with relative paths, in a stable order, without duplicates.

    A folder's files are relative to that folder; a single file is relative to its own folder; stdin
    paths are relative to the current directory when under it, else to their own folder. Missing files
    are kept (they fail later, one line each, and the batch goes on).
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
                resolved = p.absolute()
                try:
                    rel = resolved.relative_to(cwd)
                except ValueError:
                    rel = Path(p.name)
                if ".." in rel.parts:
                    rel = Path(p.name)
                add(p, rel)
            continue
        p = Path(item)
        if p.is_dir():
            for f in walk_images(p):
                add(f, f.relative_to(p))
        else:
            add(p, Path(p.name))
    return sources


def output_path(out_dir: Path, source: Source) -> Path:
    """Where the result for `source` goes; refuses anything that would land outside `out_dir`."""
    target = (out_dir / source.relative).resolve()
    root = out_dir.resolve()
    if root != target and root not in target.parents:
        raise UsageError(f"{source.path}: output would fall outside {out_dir}")
    return out_dir / source.relative


def check_output_dir(out_dir: Path, inputs: Iterable[str], in_place: bool) -> None:
    """Refuse `-o` equal to an input folder (or inside it... only equality matters) unless --in-place."""
    if in_place:
        return
    out = out_dir.resolve()
    for item in inputs:
        if item != "-" and Path(item).is_dir() and Path(item).resolve() == out:
            raise UsageError(f"-o {out_dir} is the input folder: pick another folder or pass --in-place (keeps a backup)")
