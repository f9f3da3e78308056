"""Content sources and style sets (the procedural textures: test_textures.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.data.content import ContentDataset, embedded_content, folder_content, validation_images
from fastnst.data.styles import folder_styles, spiderverse_styles, wikiart_styles
from fastnst.errors import UserError


def _photo(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def test_folder_content_is_recursive_and_skips_unreadable_files(tmp_path: Path) -> None:
    _photo(tmp_path / "a.jpg")
    _photo(tmp_path / "sub" / "deeper" / "b.png", seed=1)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("not an image")
    items = folder_content(tmp_path)
    assert [p.name for p in items] == ["a.jpg", "broken.jpg", "b.png"]
    dataset = ContentDataset(items, image_size=24)
    skipped = 0
    for i in range(len(dataset)):
        image, count = dataset[i]
        assert image.shape == (3, 24, 24) and image.min() >= 0 and image.max() <= 1
        skipped += count
    assert skipped >= 1  # broken.jpg was met, replaced and counted


def test_empty_or_missing_content_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        folder_content(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no images"):
        folder_content(tmp_path)


def test_embedded_content_is_real_photos() -> None:
    items = embedded_content()
    assert len(items) >= 7
    assert all(im.mode == "RGB" and min(im.size) >= 100 for im in items)
    val = validation_images(items, 3, 32)
    assert val.shape == (3, 3, 32, 32)


def test_folder_styles_files_and_subfolders(tmp_path: Path) -> None:
    _photo(tmp_path / "starry.jpg")
    _photo(tmp_path / "comics" / "p1.png", seed=2)
    _photo(tmp_path / "comics" / "p2.png", seed=3)
    styles = folder_styles(tmp_path, coefficients={"comics": 2.0})
    assert [(s.name, len(s.paths), s.coefficient) for s in styles] == [
        ("comics", 2, 2.0),
        ("starry", 1, 1.0),
    ]
    assert [im.shape[-2:] for im in styles[0].load(20)] == [torch.Size([15, 20])] * 2


def test_wikiart_groups(tmp_path: Path) -> None:
    for i, (movement, artist) in enumerate(
        [
            ("Cubism", "picasso"),
            ("Cubism", "braque"),
            ("Impressionism", "monet"),
            ("Impressionism", "monet"),
        ]
    ):
        _photo(tmp_path / movement / f"{artist}_work-{i}.jpg", seed=i)
    assert len(wikiart_styles(tmp_path, num_styles=4, group="painting")) == 4
    artists = wikiart_styles(tmp_path, num_styles=3, group="artist")
    assert {s.name: len(s.paths) for s in artists} == {"braque": 1, "monet": 2, "picasso": 1}
    movements = wikiart_styles(tmp_path, num_styles=2, group="movement")
    assert sorted(s.name for s in movements) == ["Cubism", "Impressionism"]
    assert [s.name for s in wikiart_styles(tmp_path, 2, seed=5)] == [
        s.name for s in wikiart_styles(tmp_path, 2, seed=5)
    ]
    with pytest.raises(UserError):
        wikiart_styles(tmp_path, num_styles=9, group="artist")


def test_spiderverse_uses_frames_and_says_when_it_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _photo(tmp_path / "miles" / "scene1" / "f001.jpg")
    (tmp_path / "miles" / "manifest.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        styles = spiderverse_styles(tmp_path, universes=["miles", "gwen"])
    miles, gwen = styles
    assert miles.source == "files" and len(miles.paths) == 1
    assert gwen.source == "procedural" and len(gwen.images) == 3
    assert "gwen" in caplog.text and "procedural" in caplog.text and "miles:" not in caplog.text
