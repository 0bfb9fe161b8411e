"""End to end on the project's real photos in ../shared/data (skipped when it is absent)."""
from __future__ import annotations

import json

import cv2
import numpy as np
from typer.testing import CliRunner

from faceheal.cli import app
from faceheal.images import read_image
from faceheal.masks.synthetic import synthetic_mask
from tests.conftest import write_png


def test_whole_photos_restore_with_every_face_found(shared_data, tmp_path):
    whole = shared_data / "photos" / "whole"
    masks = tmp_path / "masks"
    for i, p in enumerate(sorted(whole.iterdir())):
        h, w = read_image(p).display().shape[:2]
        write_png(masks / (p.stem + ".png"), synthetic_mask((h, w), "scratches", (0.01, 0.03), i).astype(np.uint8) * 255)
    r = CliRunner().invoke(app, ["restore", str(whole), "-o", str(tmp_path / "out"), "--masks", str(masks),
                                 "--model", "telea", "--report", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    lines = {json.loads(x)["path"].split("/")[-1]: json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()}
    assert len(lines) == len(list(whole.iterdir()))
    assert len(lines["Solvay_conference_1927.png"]["faces"]) == 29
    assert all(len(v["faces"]) >= 1 for v in lines.values())
    for v in lines.values():  # same format out as in
        assert v["output"].rsplit(".", 1)[-1] == v["path"].rsplit(".", 1)[-1]


def test_painted_damage_is_repainted_by_the_generator(shared_data, tmp_path):
    src = shared_data / "photos" / "painted_damage"
    masks = tmp_path / "masks"
    for p in src.iterdir():
        img = cv2.imread(str(p))
        write_png(masks / p.name, (img.min(axis=2) >= 250).astype(np.uint8) * 255)
    r = CliRunner().invoke(app, ["restore", str(src), "-o", str(tmp_path / "out"), "--masks", str(masks), "--aligned"])
    assert r.exit_code == 0, r.output
    for p in src.iterdir():
        before, after = cv2.imread(str(p)), cv2.imread(str(tmp_path / "out" / p.name))
        hole = before.min(axis=2) >= 250
        assert after[hole].mean() < 230, f"{p.name}: the white strokes are still there"


def test_a_face_under_heavy_paint_is_found_through_the_damage(shared_data, tmp_path):
    """codeformer_00105: white strokes hide both eyes; MTCNN sees no face until the damage is filled."""
    src = shared_data / "photos" / "painted_damage" / "codeformer_00105.png"
    r = CliRunner().invoke(app, ["restore", str(src), "-o", str(tmp_path / "out"), "--model", "telea",
                                 "--report", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    [line] = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert line["status"] == "ok" and len(line["faces"]) == 1
