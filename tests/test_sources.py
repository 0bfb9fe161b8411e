import io
from pathlib import Path

import pytest

from faceheal.errors import OutputError, UsageError
from faceheal.sources import Source, check_output_dir, expand_inputs, output_path, shard


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_folders_are_recursive_and_extensions_case_insensitive(tmp_path):
    for name in ["a.JPG", "sub/b.png", "sub/deep/c.TiFf", "sub/d.txt", "e.webp", ".hidden.png"]:
        _touch(tmp_path / "in" / name)
    got = [s.relative.as_posix() for s in expand_inputs([str(tmp_path / "in")])]
    assert got == ["a.JPG", "e.webp", "sub/b.png", "sub/deep/c.TiFf"]


def test_stdin_paths(tmp_path, monkeypatch):
    _touch(tmp_path / "scans" / "x" / "a.jpg")
    b = _touch(tmp_path / "scans" / "b.png")
    monkeypatch.chdir(tmp_path)
    got = expand_inputs(["-"], stdin=io.StringIO(f"scans/x/a.jpg\n\n{b}\n"))
    assert [s.relative.as_posix() for s in got] == ["scans/x/a.jpg", "scans/b.png"]
    assert got[0].path == Path("scans/x/a.jpg")


def test_output_mirrors_the_tree_and_never_escapes(tmp_path):
    out = tmp_path / "out"
    assert output_path(out, Source(Path("x"), Path("a/b.png"))) == out / "a" / "b.png"
    with pytest.raises(OutputError):
        output_path(out, Source(Path("x"), Path("../evil.png")))


def test_output_equal_to_input_folder_is_refused_unless_in_place(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(UsageError, match="--in-place"):
        check_output_dir(tmp_path / "in", [str(tmp_path / "in")], in_place=False)
    check_output_dir(tmp_path / "in", [str(tmp_path / "in")], in_place=True)


def test_symlink_loop_does_not_hang(tmp_path):
    _touch(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")
    got = expand_inputs([str(tmp_path / "in")])
    assert [s.relative.as_posix() for s in got] == ["a.png"]


def test_stdin_path_escaping_the_root_is_refused_alone(tmp_path, monkeypatch):
    _touch(tmp_path / "outside.png")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    got = expand_inputs(["-"], stdin=io.StringIO("../outside.png\n"))
    with pytest.raises(OutputError, match="outside"):
        output_path(tmp_path / "work" / "out", got[0])


def test_shards_are_disjoint_complete_and_stable():
    sources = [Source(Path(f"{i}.png"), Path(f"d{i % 7}/{i}.png")) for i in range(200)]
    parts = [shard(sources, f"{k}/3") for k in (1, 2, 3)]
    assert sum(len(p) for p in parts) == 200
    assert len({s.relative for p in parts for s in p}) == 200
    assert shard(list(reversed(sources)), "2/3") == list(reversed(parts[1]))
    assert all(len(p) > 40 for p in parts)
    with pytest.raises(UsageError):
        shard(sources, "4/3")


def test_output_folder_inside_the_input_is_not_walked_and_unnamed_images_are_sniffed(tmp_path):
    import numpy as np
    from tests.conftest import write_png

    write_png(tmp_path / "in" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "in" / "restored" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "x.png").rename(tmp_path / "in" / "IMG_20200320.101220")  # no image extension
    (tmp_path / "in" / "notes.txt").write_text("hello")
    (tmp_path / "in" / "data.bin").write_bytes(b"\x00" * 20)
    got = [s.relative.as_posix() for s in expand_inputs([str(tmp_path / "in")], exclude=tmp_path / "in" / "restored")]
    assert got == ["IMG_20200320.101220", "a.png"]
