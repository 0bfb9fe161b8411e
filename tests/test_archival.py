"""Archival promises: depth, mode, tone, alpha and metadata survive; runs resume; outputs are
reproducible and carry their provenance."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms
from typer.testing import CliRunner

from faceheal.cli import app
from faceheal.images import Picture, read_image
from tests.conftest import EXAMPLES, ROOT, read_rgb, write_png

runner = CliRunner()
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>City Archive</dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta>')


def _aligned_face() -> tuple[np.ndarray, np.ndarray]:
    face = read_rgb(EXAMPLES / "aligned" / "bopbtl_old_c.png")
    mask = read_rgb(EXAMPLES / "aligned_masks" / "bopbtl_old_c.png") > 127
    return face, mask


def test_16bit_gray_tiff_keeps_depth_profile_metadata_and_orientation(tmp_path):
    face, mask = _aligned_face()
    gray16 = (cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    stored = np.ascontiguousarray(np.rot90(gray16, 1))  # orientation 6 displays it rotated back upright
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "ScannerCo"
    exif[700] = XMP
    (tmp_path / "in").mkdir()
    Image.fromarray(stored).save(tmp_path / "in" / "scan.tif", icc_profile=SRGB, exif=exif.tobytes(),
                                 dpi=(1200, 1200), compression="tiff_lzw")
    write_png(tmp_path / "masks" / "scan.png", mask.astype(np.uint8) * 255)  # drawn on the upright view
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--masks",
                            str(tmp_path / "masks"), "--aligned", "--model", "telea"])
    assert r.exit_code == 0, r.output
    out_path = tmp_path / "out" / "scan.tif"
    with tifffile.TiffFile(out_path) as tif:
        page = tif.pages[0]
        tags = {t.name: t.value for t in page.tags.values()}
        pixels = page.asarray()
    assert pixels.dtype == np.uint16 and pixels.shape == stored.shape
    assert int(tags["Orientation"]) == 6 and tags["Make"] == "ScannerCo" and tags["XMP"] == XMP
    assert tags["InterColorProfile"] == SRGB
    assert tags["XResolution"] == (1200, 1) and int(tags["Compression"]) == 5  # LZW kept
    changed = pixels != stored
    allowed = cv2.dilate(np.rot90(mask, 1).astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    assert changed.any() and not (changed & ~allowed).any()


def test_rgba_png_keeps_alpha_and_16bit_colour(tmp_path, portrait, face_mask):
    h, w = portrait.shape[:2]
    rgba = np.dstack([portrait.astype(np.uint16) * 257, np.linspace(0, 65535, w, dtype=np.uint16)[None].repeat(h, 0)])
    write_png(tmp_path / "in" / "a.png", rgba)
    write_png(tmp_path / "m" / "a.png", face_mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--masks", str(tmp_path / "m"),
                            "--model", "telea"])
    assert r.exit_code == 0, r.output
    out = read_image(tmp_path / "out" / "a.png").pixels
    assert out.dtype == np.uint16 and out.shape == rgba.shape
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    assert (out[..., :3] != rgba[..., :3]).any()


def test_rotated_jpeg_is_detected_upright_and_keeps_its_orientation(tmp_path, portrait, face_mask):
    stored = np.ascontiguousarray(np.rot90(portrait, 1))  # sideways on disk; EXIF 6 turns it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "in").mkdir()
    Image.fromarray(stored).save(tmp_path / "in" / "p.jpg", exif=exif.tobytes(), quality=95, icc_profile=SRGB, xmp=XMP,
                                 dpi=(600, 600))
    write_png(tmp_path / "m" / "p.png", face_mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--masks", str(tmp_path / "m"),
                            "--model", "telea", "--report", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "r.jsonl").read_text())["faces"]) == 1
    out = Image.open(tmp_path / "out" / "p.jpg")
    assert out.getexif()[0x0112] == 6 and out.info["icc_profile"] == SRGB and out.info["xmp"] == XMP
    assert tuple(round(v) for v in out.info["dpi"]) == (600, 600)
    assert out.size == (stored.shape[1], stored.shape[0])
    src = Image.open(tmp_path / "in" / "p.jpg")
    assert out.quantization == src.quantization  # same JPEG quality tables


def test_sepia_print_gets_sepia_repairs(tmp_path):
    face, mask = _aligned_face()
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    sepia_tone = np.array([1.0, 0.82, 0.60], np.float32)
    sepia = np.clip(gray[..., None] * sepia_tone * 255 + 0.5, 0, 255).astype(np.uint8)
    write_png(tmp_path / "in" / "s.png", sepia)
    write_png(tmp_path / "m" / "s.png", mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--masks", str(tmp_path / "m"),
                            "--aligned"])
    assert r.exit_code == 0, r.output
    out = read_rgb(tmp_path / "out" / "s.png").astype(np.float32)
    repaired = out[mask]
    bright = repaired[repaired[:, 0] > 40]
    ratios = bright[:, 1:] / bright[:, :1]
    np.testing.assert_allclose(ratios.mean(0), sepia_tone[1:], atol=0.04)


def test_same_inputs_same_bytes_and_a_sidecar(tmp_path):
    args = ["restore", str(EXAMPLES / "aligned"), "--masks", str(EXAMPLES / "aligned_masks"), "--aligned", "--sidecar"]
    assert runner.invoke(app, args + ["-o", str(tmp_path / "a")]).exit_code == 0
    assert runner.invoke(app, args + ["-o", str(tmp_path / "b")]).exit_code == 0
    for p in (EXAMPLES / "aligned").iterdir():
        assert (tmp_path / "a" / p.name).read_bytes() == (tmp_path / "b" / p.name).read_bytes()
        side = json.loads((tmp_path / "a" / (p.name + ".faceheal.json")).read_text())
        weights_sha = (ROOT / "weights" / "faceheal-generator.pt.sha256").read_text().split()[0]
        assert side["model"]["weights_sha256"] == weights_sha
        assert side["mask"]["source"] == "file" and len(side["mask"]["sha256"]) == 64
        assert side["pixels_changed"] > 0 and side["changed_boxes"] and side["parameters"]["aligned"] is True


def test_killed_run_resumes_and_finishes(tmp_path, portrait, face_mask):
    n = 12
    for i in range(n):
        write_png(tmp_path / "in" / f"p{i:02d}.png", portrait)
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    cmd = [sys.executable, "-m", "faceheal", "restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
           "--mask", str(tmp_path / "m.png"), "--model", "telea", "--skip-existing", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((tmp_path / "out").glob("p*.png"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = sorted(p.name for p in (tmp_path / "out").glob("p*.png"))
    assert 2 <= len(done_before) < n, "the run should have been killed part-way"
    for p in (tmp_path / "out").glob("p*.png"):  # every file under its final name is complete
        assert read_image(p).pixels.shape == portrait.shape
    r = subprocess.run(cmd[:-1], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{len(done_before)} already done" in r.stderr
    assert len(list((tmp_path / "out").glob("p*.png"))) == n


def test_max_pixels_refuses_decompression_bombs(tmp_path):
    write_png(tmp_path / "in" / "big.png", np.zeros((300, 400, 3), np.uint8))
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", "telea",
                            "--max-pixels", "100000"])
    assert r.exit_code == 1 and "big.png" in r.stderr and "max-pixels" in r.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="peak memory is read with getrusage on Linux")
def test_huge_sparse_scan_restores_with_bounded_memory(tmp_path, portrait, face_mask):
    """A 100-megapixel 16-bit gray TIFF: restore repairs it in place, never holding the scan twice; far
    below the float copies a naive pipeline makes (over 1 GB each)."""
    h, w = 10000, 10000
    big = np.full((h, w), 30000, np.uint16)
    face = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    fy, fx = 4000, 5000
    big[fy:fy + face.shape[0], fx:fx + face.shape[1]] = face
    mask = np.zeros((h, w), np.uint8)
    mask[fy:fy + face.shape[0], fx:fx + face.shape[1]][face_mask] = 255
    tifffile.imwrite(tmp_path / "in.tif", big, compression="zlib")
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    del big, mask
    code = (
        "import resource, sys\n"
        "from faceheal.cli import app\n"
        "try:\n"
        f"    app(['restore', r'{tmp_path / 'in.tif'}', '-o', r'{tmp_path / 'out'}', '--mask', r'{tmp_path / 'mask.png'}', '--model', 'telea', '-q'])\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code)\n"
        # VmHWM, the child's own peak (ru_maxrss would also count pytest's RSS when it forked)
        "peak = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "print('peak_mb', (peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "exit 0" in r.stdout, r.stdout + r.stderr
    peak = float(r.stdout.split("peak_mb")[1])
    print(f"peak RSS {peak:.0f} MB for a 100-megapixel 16-bit scan")
    # 783 MB measured (python, torch and the nets about 300, the scan 191, its mask 95, MTCNN's buffers);
    # 1,012 MB while restore still made a repaired copy of the scan and kept the detector's buffers
    assert peak < 950, f"peak RSS {peak:.0f} MB"
    out = tifffile.imread(tmp_path / "out" / "in.tif")
    assert out.dtype == np.uint16 and out.shape == (h, w)


def test_full_disk_is_one_clear_error_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    import errno

    from faceheal.errors import OutputError
    from faceheal.images import write_atomic

    (tmp_path / "old.png").write_bytes(b"complete earlier output")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputError, match="No space left"):
        write_atomic(tmp_path / "new.png", b"x" * 1000)
    with pytest.raises(OutputError):
        write_atomic(tmp_path / "old.png", b"replacement")
    assert not (tmp_path / "new.png").exists()
    assert (tmp_path / "old.png").read_bytes() == b"complete earlier output"  # nothing already written is lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]  # no temp files left behind


def test_an_image_is_encoded_straight_into_its_temp_file_and_a_failed_encode_leaves_nothing(tmp_path):
    """A scan's encoding goes into the output's temp file (never held in memory as well); an encoder that
    fails half-way leaves neither a temp file nor a partial output, and an earlier output stays."""
    from faceheal.errors import OutputError
    from faceheal.images import encode_image, write_image

    src = tmp_path / "scan.tif"
    pixels = (np.arange(300 * 200, dtype=np.uint32).reshape(300, 200) * 7 % 65536).astype(np.uint16)
    Image.fromarray(pixels).save(src, compression="tiff_lzw")
    pic = read_image(src)
    write_image(tmp_path / "out.tif", pic, pic.pixels)
    assert (tmp_path / "out.tif").read_bytes() == encode_image(pic, pic.pixels)
    assert np.array_equal(read_image(tmp_path / "out.tif").pixels, pixels)
    (tmp_path / "kept.tif").write_bytes(b"complete earlier output")
    broken = Picture(pixels=pic.pixels, format="TIFF", info=pic.info, frames=2)  # the encoder refuses it
    with pytest.raises(OutputError, match="frames"):
        write_image(tmp_path / "kept.tif", broken, pic.pixels)
    assert (tmp_path / "kept.tif").read_bytes() == b"complete earlier output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.tif", "out.tif", "scan.tif"]


def test_a_read_only_input_mode_is_given_to_its_output_only_once_it_is_written(tmp_path):
    """Archival masters are often read-only (0444) and their outputs take that mode: it must be set only
    after the data is in (written into a 0444 file, anyone but root is refused)."""
    from faceheal.images import write_atomic

    seen = []

    def encoder(f):
        seen.append(os.stat(f.name).st_mode & 0o777)  # the temp file, while it is written
        f.write(b"y" * 10)

    write_atomic(tmp_path / "b.tif", encoder, 0o444)
    assert seen == [0o600]
    assert (tmp_path / "b.tif").stat().st_mode & 0o777 == 0o444 and (tmp_path / "b.tif").read_bytes() == b"y" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tif"]


@pytest.mark.parametrize("mode", ["1", "P", "CMYK", "LAB"])
def test_bilevel_palette_cmyk_and_lab_files_come_back_in_their_own_mode(tmp_path, mode):
    """Converted for the model, written back in the file's mode: unchanged pixels exactly as stored,
    repaired ones converted (dithered for 1-bit, the file's own palette for P)."""
    face, mask = _aligned_face()
    rgb = Image.fromarray(face)
    if mode == "1":
        img = rgb.convert("L").convert("1")  # Floyd-Steinberg dither, as scanned line art is
    elif mode == "P":
        img = rgb.quantize(64)
    elif mode == "CMYK":
        img = rgb.convert("CMYK")
    else:
        img = ImageCms.applyTransform(rgb, ImageCms.buildTransformFromOpenProfiles(
            ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"))
    name = "face.png" if mode == "P" else "face.tif"  # 1-bit as a G4 TIFF, as archives keep line art
    (tmp_path / "in").mkdir()
    img.save(tmp_path / "in" / name, **({"compression": "group4"} if mode == "1" and name.endswith(".tif") else {}))
    write_png(tmp_path / "m.png", mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--aligned",
                            "--mask", str(tmp_path / "m.png"), "--model", "telea"])
    assert r.exit_code == 0, r.output
    before, after = Image.open(tmp_path / "in" / name), Image.open(tmp_path / "out" / name)
    assert after.mode == mode and after.size == before.size
    a, b = np.asarray(after), np.asarray(before)
    differs = (a != b) if a.ndim == 2 else (a != b).any(-1)
    assert not (differs & ~mask).any(), "a pixel outside the damage changed"
    assert differs[mask].mean() > 0.2
    if mode == "P":
        assert after.getpalette() == before.getpalette()


@pytest.mark.parametrize("bits", [2, 4])
def test_2_and_4_bit_gray_pngs_keep_their_depth(tmp_path, bits):
    """A 2- or 4-bit gray PNG comes back at its depth, repairs on its own gray levels."""
    face, mask = _aligned_face()
    step = 255 // (2 ** bits - 1)
    gray = (np.round(face.mean(-1) / step) * step).astype(np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(gray).save(tmp_path / "in" / "face.png", bits=bits)
    write_png(tmp_path / "m.png", mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--aligned",
                            "--mask", str(tmp_path / "m.png"), "--model", "telea"])
    assert r.exit_code == 0, r.output
    data = (tmp_path / "out" / "face.png").read_bytes()
    assert data[24] == bits  # IHDR bit depth
    a, b = np.asarray(Image.open(tmp_path / "out" / "face.png")), np.asarray(Image.open(tmp_path / "in" / "face.png"))
    assert not ((a != b) & ~mask).any(), "a pixel outside the damage changed"
    assert (a != b)[mask].mean() > 0.1


def test_multi_frame_files_are_never_cut_to_one_frame(tmp_path):
    face, mask = _aligned_face()
    pages = [Image.fromarray(face), Image.fromarray(face[::-1])]
    (tmp_path / "in").mkdir()
    pages[0].save(tmp_path / "in" / "book.tif", save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "in" / "anim.gif", save_all=True, append_images=pages[1:])
    write_png(tmp_path / "m.png", mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--aligned",
                            "--mask", str(tmp_path / "m.png"), "--model", "telea"])
    assert r.exit_code == 1
    for name in ("book.tif", "anim.gif"):  # found in the folder, and refused with one line each
        assert f"{name}: 2 frames" in r.stderr
        assert not (tmp_path / "out" / name).exists()
    write_png(tmp_path / "none.png", np.zeros(mask.shape, np.uint8))
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out2"), "--aligned",
                            "--mask", str(tmp_path / "none.png"), "--model", "telea"])
    assert r.exit_code == 0, r.output  # nothing to repair: every frame kept, byte for byte
    for name in ("book.tif", "anim.gif"):
        assert (tmp_path / "out2" / name).read_bytes() == (tmp_path / "in" / name).read_bytes()


def _with_app13(jpeg: bytes) -> bytes:
    """A JPEG with a Photoshop/IPTC APP13 segment after its APP0, as press archives' files have."""
    payload = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0c\x1c\x02\x05\x00\x07archive"
    seg = b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload
    app0_end = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:app0_end] + seg + jpeg[app0_end:]


def test_jpeg_repairs_keep_every_other_block_and_every_marker(tmp_path, portrait, face_mask):
    import io
    import shutil

    import jpeglib

    from faceheal.jpeg_blocks import segments

    buf = io.BytesIO()
    Image.fromarray(portrait).save(buf, "JPEG", quality=88, comment=b"scan 1927/04, box 12", progressive=True)
    src = tmp_path / "in" / "p.jpg"
    src.parent.mkdir()
    src.write_bytes(_with_app13(buf.getvalue()))
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(src.parent), "-o", str(tmp_path / "out"), "--mask", str(tmp_path / "m.png"),
                            "--model", "telea", "--report", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out" / "p.jpg"
    before, after = jpeglib.read_dct(str(src)), jpeglib.read_dct(str(out))
    before.load()
    after.load()
    touched = np.zeros(before.Y.shape[:2], bool)
    ys, xs = np.nonzero(face_mask)
    touched[ys // 8, xs // 8] = True
    same = (before.Y == after.Y).all(axis=(2, 3))
    assert same[~touched].all(), "a luma block away from the repair was re-encoded"
    assert not same[touched].all()
    for name in ("Cb", "Cr"):  # 4:2:0: a chroma block covers 16x16 pixels
        tc = np.zeros(getattr(before, name).shape[:2], bool)
        tc[ys // 16, xs // 16] = True
        assert (getattr(before, name) == getattr(after, name)).all(axis=(2, 3))[~tc].all()
    head = [seg for m, seg in segments(src.read_bytes())[0] if m >= 0xE0]
    assert head == [seg for m, seg in segments(out.read_bytes())[0] if m >= 0xE0]  # APP0, APP13, COM, as they were
    report = json.loads((tmp_path / "r.jsonl").read_text())
    differs = (np.asarray(Image.open(out)) != np.asarray(Image.open(src))).any(-1)
    assert report["pixels_changed"] == int(differs.sum())
    if shutil.which("jpegtran"):
        assert Image.open(out).info.get("progressive")


def test_a_jpeg_compressed_tiff_changes_only_its_repaired_pixels(tmp_path):
    """JPEG inside a TIFF cannot keep its blocks through Pillow: it is written with lossless deflate,
    so pixels far from the repair stay exactly as decoded (they moved by up to 36 levels before)."""
    face, mask = _aligned_face()
    (tmp_path / "in").mkdir()
    Image.fromarray(face).save(tmp_path / "in" / "scan.tif", compression="jpeg")
    write_png(tmp_path / "m.png", mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--aligned", "--mask",
                            str(tmp_path / "m.png"), "--model", "telea", "--report", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    before = np.asarray(Image.open(tmp_path / "in" / "scan.tif").convert("RGB"))
    after = np.asarray(Image.open(tmp_path / "out" / "scan.tif").convert("RGB"))
    differs = (before != after).any(-1)
    assert not (differs & ~mask).any()
    assert json.loads((tmp_path / "r.jsonl").read_text())["pixels_changed"] == int(differs.sum())


def test_c_library_messages_never_reach_stderr_and_faceheal_lines_do(capfd):
    """libtiff and libjpeg print from C to file descriptor 2; while they work, fd 2 is captured and only faceheal's
    own lines (say, another thread's) are written back."""
    from faceheal.images import c_library_quiet

    with c_library_quiet():
        os.write(2, b"TIFFFetchNormalTag: Defined set_get_field_type of custom tag 903 (Tag 903) is undefined.\n")
        os.write(2, b"faceheal: other.png: error: truncated file\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "faceheal: other.png: error: truncated file\nafter\n"

