"""The review page: every photo of a run appears, its links resolve, failures come first, and it
renders in a real browser."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from faceheal.cli import app
from tests.conftest import write_png

runner = CliRunner()


@pytest.fixture
def run_dir(tmp_path, portrait, face_mask):
    for i in range(3):
        write_png(tmp_path / "in" / f"sub{i % 2}" / f"p{i}.png", portrait)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    write_png(tmp_path / "m.png", face_mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--mask", str(tmp_path / "m.png"),
                            "--review"])
    assert r.exit_code == 1  # the broken file
    return tmp_path / "out"


def test_every_photo_appears_and_every_link_resolves(run_dir):
    page = run_dir / "review" / "index.html"
    text = page.read_text()
    for name in ["p0.png", "p1.png", "p2.png", "broken.jpg"]:
        assert name in text
    links = set(re.findall(r'"(thumbs/[^"]+)"', text))
    assert len(links) >= 3 * 3  # before, after, overlay per restored photo (plus face crops)
    for link in links:
        assert (page.parent / link).is_file(), link
    assert "https://" not in text and "http://" not in text  # nothing from the network
    assert any("_layout.jpg" in link for link in links)  # the generator's predicted layouts are shown
    # failures are listed at the top, with their one-line reason
    assert text.index("Failures (1)") < text.index('id="grid"')
    assert "broken.jpg" in text.split('id="grid"')[0]


def test_review_command_rebuilds_from_the_manifest(run_dir):
    shutil.rmtree(run_dir / "review")
    r = runner.invoke(app, ["review", str(run_dir)])
    assert r.exit_code == 0, r.output
    assert (run_dir / "review" / "index.html").is_file()
    assert runner.invoke(app, ["review", str(run_dir / "nothing")]).exit_code == 2


def test_page_renders_thumbnails_in_headless_chromium(run_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        pytest.skip("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900", "--virtual-time-budget=3000",
                    f"--screenshot={shot}", (run_dir / "review" / "index.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file(), "Chromium wrote no screenshot"
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] > 500
    # the page background is flat dark gray; rendered photo thumbnails bring many distinct colours
    body = img[150:, :, :]
    colours = len(np.unique((body // 8).reshape(-1, 3), axis=0))
    assert colours > 600, f"only {colours} colours: thumbnails did not render"  # text alone: about 130


def test_damage_left_unrepaired_is_shown(tmp_path, portrait, face_mask):
    """--faces-only leaves the damage away from the face: the card says how much, and the overlay
    paints it apart (yellow) from the damage that was repaired (red)."""
    import json

    import cv2

    mask = face_mask.copy()
    mask[:12, :] = True  # a stroke along the top edge, away from the face
    write_png(tmp_path / "in" / "p.png", portrait)
    write_png(tmp_path / "m.png", mask.astype(np.uint8) * 255)
    r = runner.invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--mask", str(tmp_path / "m.png"),
                            "--faces-only", "--review"])
    assert r.exit_code == 0, r.output
    page = tmp_path / "out" / "review" / "index.html"
    data = re.search(r'<script id="data" type="application/json">(.*?)</script>', page.read_text(), re.S).group(1)
    [card] = json.loads(data.replace("<\\/", "</"))
    assert card["status"] == "partial" and card["damage_left"] > 0
    overlay = cv2.imread(str(page.parent / card["overlay"]))[..., ::-1].astype(int)
    yellow = (overlay[..., 0] > 180) & (overlay[..., 1] > 160) & (overlay[..., 2] < 90)
    assert yellow[:6].mean() > 0.5 and yellow[60:].mean() < 0.01
