"""How often the monochrome test (images.monotone_tone) fires, on colour faces and on real prints.

A colour photo judged monochrome gets its repairs re-toned through one average colour per brightness
(grey-blue skin); a print judged colour keeps the model's colours. This counts both over
../shared/data and writes a contact sheet of every photo judged monochrome that is not plain gray,
so a person can check that each is a toned print. Results: benchmarks/results/monochrome.md, .png.

    python benchmarks/monochrome.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from faceheal.images import read_image, monotone_tone, to_float_rgb  # noqa: E402
from faceheal.sources import walk_images  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
GROUPS = {"faces/celebamask": "faces/celebamask/images", "faces/celebamask unlabelled": "faces/celebamask/unlabelled",
          "faces/utkface": "faces/utkface", "faces/aaf": "faces/aaf/images",
          **{f"photos/{d}": f"photos/{d}" for d in ("faded", "gray_aligned", "scratched", "whole", "large", "painted_damage")}}


def judge(path: Path) -> tuple[str, np.ndarray | None]:
    pic = read_image(path)
    d = pic.display()
    if pic.is_gray:
        return "gray file", None
    step = max(1, max(d.shape[:2]) // 400)
    small = d[::step, ::step]
    rgb = to_float_rgb(small)
    if np.abs(rgb - rgb.mean(-1, keepdims=True)).max() < 2 / 255:
        return "gray in RGB", None
    return ("toned" if monotone_tone(rgb) is not None else "colour"), small


def main() -> None:
    lines = ["# The monochrome test on ../shared/data", "",
             "`python benchmarks/monochrome.py`. 'gray': no chroma at all (a gray file, or gray stored as RGB); "
             "'toned': judged monochrome with some chroma (sepia, toned, tinted: every one is on the contact "
             "sheet monochrome.png); 'colour': judged colour.", "",
             "| folder | photos | gray | toned | colour |", "|---|---|---|---|---|"]
    sheet = []
    for name, rel in GROUPS.items():
        counts = {"gray file": 0, "gray in RGB": 0, "toned": 0, "colour": 0}
        for p in walk_images(SHARED / rel):
            verdict, small = judge(p)
            counts[verdict] += 1
            if verdict == "toned":
                sheet.append(cv2.resize(np.ascontiguousarray(to_float_rgb(small)), (96, 96), interpolation=cv2.INTER_AREA))
        n = sum(counts.values())
        lines.append(f"| {name} | {n} | {counts['gray file'] + counts['gray in RGB']} | {counts['toned']} | {counts['colour']} |")
        print(lines[-1], flush=True)
    out = ROOT / "benchmarks" / "results"
    (out / "monochrome.md").write_text("\n".join(lines) + "\n")
    if sheet:
        rows = [np.concatenate(sheet[i:i + 16] + [np.zeros_like(sheet[0])] * (16 - len(sheet[i:i + 16])), 1)
                for i in range(0, len(sheet), 16)]
        cv2.imwrite(str(out / "monochrome.png"), np.clip(np.concatenate(rows, 0)[..., ::-1] * 255 + 0.5, 0, 255).astype(np.uint8))


if __name__ == "__main__":
    main()
