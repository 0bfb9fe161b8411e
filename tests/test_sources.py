import io
from pathlib import Path

import pytest

from faceheal.errors import OutputError, UsageError
from faceheal.sources import Source, check_output_dir, check_outputs, expand_inputs, output_path, shard


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


def test_stdin_paths_outside_the_current_folder_are_mirrored_by_their_full_path(tmp_path, monkeypatch):
    """`find /abs/dir | faceheal restore - -o out`: as cp --parents and rsync -R do, never outside -o."""
    outside = _touch(tmp_path / "outside.png")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    [rel] = expand_inputs(["-"], stdin=io.StringIO(f"../outside.png\n{outside}\n"))  # one file, named twice
    assert rel.relative == Path(*outside.parts[1:])
    assert output_path(tmp_path / "work" / "out", rel) == tmp_path / "work" / "out" / Path(*outside.parts[1:])


def test_nul_separated_stdin_needs_null(tmp_path, monkeypatch):
    a = _touch(tmp_path / "a b.png")
    c = _touch(tmp_path / "c.png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="-0"):
        expand_inputs(["-"], stdin=io.StringIO(f"{a}\0{c}\0"))
    got = expand_inputs(["-"], stdin=io.StringIO(f"{a}\0{c}\0"), null=True)
    assert [s.relative.as_posix() for s in got] == ["a b.png", "c.png"]


def test_two_inputs_with_one_output_are_refused_before_any_work(tmp_path):
    _touch(tmp_path / "dup" / "a" / "p.png")
    _touch(tmp_path / "dup" / "b" / "p.png")
    sources = expand_inputs([str(tmp_path / "dup" / "a"), str(tmp_path / "dup" / "b")])
    with pytest.raises(UsageError, match="both be written"):
        check_outputs(tmp_path / "out", sources, in_place=False)


def test_an_output_over_another_input_and_o_above_the_input_are_refused(tmp_path):
    _touch(tmp_path / "album" / "p1.png")
    _touch(tmp_path / "album" / "scans" / "p1.png")
    with pytest.raises(UsageError, match="holds the input folder"):
        check_output_dir(tmp_path / "album", [str(tmp_path / "album" / "scans")], in_place=False)
    sources = expand_inputs([str(tmp_path / "album" / "scans" / "p1.png"), str(tmp_path / "album" / "p1.png")])
    with pytest.raises(UsageError):
        check_outputs(tmp_path / "album", sources, in_place=True)


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
