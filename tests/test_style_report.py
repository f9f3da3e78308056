"""fastnst style-report: per-style image counts and thumbnail sheets, read the way training
reads the style sets (a frame manifest is not an image; empty universes fall back)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastnst.data.styles import StyleSet
from fastnst.datasets.manifest import MANIFEST_NAME
from fastnst.datasets.style_report import contact_sheet, write_style_report


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), colour, dtype=np.uint8))


def test_contact_sheet_grid_and_tiles() -> None:
    images = [torch.full((3, 30, 50), v) for v in (0.0, 0.6, 1.0)]
    sheet = contact_sheet(images, columns=2, tile=16, title="")
    assert sheet.size == (32, 32)
    pixels = np.asarray(sheet)
    assert pixels[8, 8].tolist() == [0, 0, 0]
    assert pixels[8, 24].tolist() == [153, 153, 153]
    assert pixels[24, 8].tolist() == [255, 255, 255]
    assert pixels[24, 24].tolist() == [24, 24, 24]  # empty cell: background


def test_report_counts_and_sheets(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    paths = []
    for i in range(5):
        paths.append(folder / f"{i}.png")
        solid((40 * i, 0, 0)).save(paths[-1])
    styles = [StyleSet("many", paths=paths), StyleSet("one", images=[torch.rand(3, 20, 20)])]
    rows = write_style_report(styles, tmp_path / "report", columns=4, tile=20)
    assert [(r.name, r.images) for r in rows] == [("many", 5), ("one", 1)]
    with Image.open(rows[0].sheet) as sheet:
        assert sheet.size == (80, 2 * 20 + 20)  # 4 columns, 2 rows, title strip
    with Image.open(rows[1].sheet) as sheet:
        assert sheet.size == (20, 20 + 20)


def test_cli_on_a_spiderverse_tree(tmp_path: Path) -> None:
    miles = tmp_path / "spiderverse" / "miles"
    miles.mkdir(parents=True)
    for i in range(3):
        solid((0, 80 * i, 200)).save(miles / f"frame_{i}.jpg")
    (miles / MANIFEST_NAME).write_text(json.dumps({"version": 1, "frames": []}))
    out = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastnst",
            "style-report",
            str(tmp_path / "spiderverse"),
            "--out",
            str(out),
            "--tile",
            "32",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = {s["name"]: s for s in json.loads((out / "report.json").read_text())["styles"]}
    assert list(report) == ["miles", "gwen", "punk", "mumbattan", "nueva_york"]
    assert (report["miles"]["source"], report["miles"]["images"]) == ("files", 3)
    assert all(report[n]["source"] == "procedural" for n in list(report)[1:])
    assert all(Path(s["sheet"]).is_file() for s in report.values())
    assert result.stdout.splitlines()[1].split()[:3] == ["miles", "files", "3"]


def test_cli_missing_folder_is_an_error_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastnst",
            "style-report",
            str(tmp_path / "nope"),
            "--layout",
            "folder",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: style folder not found: {tmp_path / 'nope'}"
