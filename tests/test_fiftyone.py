"""FiftyOne datasets on a temporary database: style trees and content folders round-trip
(export, re-import) with their labels, training reads content by dataset name, browse builds
its grouped dataset, and data=coco fails fast offline. The zoo is never called."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import CONF_DIR
from fastnst.cli import main as fastnst
from fastnst.data.content import FiftyOneUnavailable, coco_content, fiftyone_content
from fastnst.data.styles import spiderverse_styles
from fastnst.datasets.manifest import FrameRecord, Manifest
from fastnst.errors import UserError
from fastnst.export import ModelInfo, save_model
from fastnst.images import load_image, resize_long_side
from fastnst.model import NetConfig, TransformerNet


@pytest.fixture(scope="module")
def fo(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """FiftyOne on a database of its own; every dataset made here is deleted afterwards."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FIFTYONE_DO_NOT_TRACK", "true")
    patch.setenv("FIFTYONE_DATABASE_VALIDATION", "false")
    patch.setenv("FIFTYONE_DATABASE_DIR", str(tmp_path_factory.mktemp("fiftyone-db")))
    fiftyone = pytest.importorskip("fiftyone", reason="FiftyOne is in the data extra")
    before = set(fiftyone.list_datasets())
    yield fiftyone
    for name in set(fiftyone.list_datasets()) - before:
        fiftyone.delete_dataset(name)
    patch.undo()


def unique(prefix: str) -> str:
    return f"test-{prefix}-{uuid.uuid4().hex[:8]}"


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def style_tree(tmp_path: Path) -> Path:
    """Two universes: miles with a frame manifest, gwen with frames in a subfolder."""
    root = tmp_path / "spiderverse"
    manifest = Manifest(root / "miles")
    for i in range(3):
        path = write_image(root / "miles" / f"clip_{i}.png", i)
        manifest.add(
            FrameRecord(
                path.name,
                "/clips/a.mp4",
                "abc",
                1.5 * i,
                i,
                "0" * 16,
                f"{i:016x}",
                40,
                30,
                (0, 0, 40, 30),
                99.0,
            )
        )
    manifest.save()
    for i in range(2):
        write_image(root / "gwen" / "scene_2" / f"f{i}.png", 10 + i)
    return root


def test_style_tree_round_trips_with_labels(fo, style_tree: Path, tmp_path: Path) -> None:
    from fastnst.datasets.fiftyone_sets import build_style_dataset, export_dataset

    dataset = build_style_dataset(unique("styles"), style_tree)
    assert dataset.persistent
    assert dataset.count_values("style.label") == {"miles": 3, "gwen": 2}
    miles = dataset.match(fo.ViewField("style.label") == "miles")
    assert sorted(miles.values("timestamp")) == [0.0, 1.5, 3.0]
    assert set(miles.values("source")) == {"/clips/a.mp4"}

    tree = export_dataset(dataset, tmp_path / "tree", kind="tree")
    again = fo.Dataset.from_dir(
        dataset_dir=str(tree),
        dataset_type=fo.types.ImageClassificationDirectoryTree,
        label_field="style",
        name=unique("reimport"),
    )
    assert again.count_values("style.label") == {"miles": 3, "gwen": 2}
    # The exported tree is a style-set tree training reads as it is.
    styles = {s.name: s for s in spiderverse_styles(tree, universes=["miles", "gwen"])}
    assert {n: (s.source, len(s.paths)) for n, s in styles.items()} == {
        "miles": ("files", 3),
        "gwen": ("files", 2),
    }
    exported = {p.name: load_image(p) for p in (tree / "miles").iterdir()}
    assert any(
        torch.equal(img, load_image(style_tree / "miles" / "clip_0.png"))
        for img in exported.values()
    )

    full = export_dataset(dataset, tmp_path / "full", kind="fiftyone")
    copy = fo.Dataset.from_dir(
        dataset_dir=str(full), dataset_type=fo.types.FiftyOneDataset, name=unique("full")
    )
    assert copy.count_values("style.label") == {"miles": 3, "gwen": 2}
    assert sorted(v for v in copy.values("timestamp") if v is not None) == [0.0, 1.5, 3.0]

    with pytest.raises(UserError, match="not empty"):
        export_dataset(dataset, tmp_path / "full")


def test_content_dataset_is_training_content(fo, tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from fastnst.datasets.fiftyone_sets import build_content_dataset

    photos = [write_image(tmp_path / "photos" / f"p{i}.jpg", 20 + i) for i in range(3)]
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    name = unique("content")
    dataset = build_content_dataset(name, tmp_path / "photos")
    assert len(dataset) == 3
    assert sorted(fiftyone_content(name)) == sorted(p.resolve() for p in photos)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("train", overrides=["data=fiftyone", f"data.name={name}"])
    # what fastnst train builds (2 training photos: a batch of 2, since too few photos for a
    # batch are refused)
    datamodule = instantiate(cfg.data, num_val=1, val_size=16, batch_size=2)
    assert sorted(datamodule.source) == sorted(p.resolve() for p in photos)

    with pytest.raises(UserError, match="--overwrite"):
        build_content_dataset(name, tmp_path / "photos")
    assert len(build_content_dataset(name, tmp_path / "photos", overwrite=True)) == 3
    with pytest.raises(FiftyOneUnavailable, match="no FiftyOne dataset named"):
        fiftyone_content(unique("missing"))


def test_browse_builds_groups_of_content_outputs_and_sets(
    fo, style_tree: Path, tmp_path: Path
) -> None:
    from fastnst.datasets.browse import build_browse_dataset

    net = TransformerNet(NetConfig(num_styles=3, width=0.25, num_residual=1)).eval()
    model = save_model(
        net, tmp_path / "tiny.safetensors", ModelInfo(net={}, style_names=["miles", "gwen", "punk"])
    )
    content = tmp_path / "content"
    photos = [write_image(content / f"c{i}.png", 30 + i, (64, 48)) for i in range(3)]
    name = unique("browse")
    dataset = build_browse_dataset(
        name, model, content, tmp_path / "out", style_tree, num_samples=2, size=32
    )
    # punk has no frames in the tree: it gets an output but no set sheet.
    assert sorted(dataset.group_slices) == sorted(
        ["content", "miles", "gwen", "punk", "miles_set", "gwen_set"]
    )
    assert len(dataset) == 2  # groups
    all_samples = dataset.select_group_slices()
    assert len(all_samples) == 2 * 6
    content_paths = dataset.select_group_slices("content").values("filepath")
    assert set(content_paths) <= {str(p.resolve()) for p in photos}

    members = dataset.get_group(dataset.first().group.id)
    photo = resize_long_side(load_image(members["content"].filepath), 32)
    with torch.no_grad():
        expected = net(photo.unsqueeze(0), 1)[0]
    written = load_image(members["gwen"].filepath)
    assert written.shape == expected.shape
    assert (written - expected).abs().max() <= 1 / 255 + 1e-6
    assert members["gwen"].style.label == "gwen"
    with Image.open(members["miles_set"].filepath) as sheet:
        assert sheet.width == 3 * 128  # three frames, one row

    args = [
        "--model",
        str(model),
        "--content",
        str(content),
        "--styles",
        str(style_tree),
        "--num",
        "1",
        "--size",
        "32",
        "--out",
        str(tmp_path / "cli"),
        "--name",
        name,
        "--no-launch",
    ]
    assert fastnst(["browse", *args]) == 0
    assert len(fo.load_dataset(name)) == 1  # rebuilt in place
    assert (
        fastnst(
            [
                "browse",
                "--model",
                str(tmp_path / "none.safetensors"),
                "--content",
                str(content),
                "--no-launch",
                "--name",
                name,
            ]
        )
        == 1
    )


def test_coco_offline_fails_fast_and_never_calls_the_zoo(fo, monkeypatch, tmp_path: Path) -> None:
    import fiftyone.zoo as foz

    import fastnst.data.content as content

    def zoo_called(*args, **kwargs):
        raise AssertionError("the FiftyOne zoo must not be called offline")

    monkeypatch.setattr(foz, "load_zoo_dataset", zoo_called)
    monkeypatch.setattr(content, "coco_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(fo.config, "dataset_zoo_dir", str(tmp_path / "zoo"))
    with pytest.raises(FiftyOneUnavailable, match="data=folder"):
        coco_content(max_samples=10)


def test_datasets_cli_errors_are_one_line(fo, tmp_path: Path, capsys) -> None:
    from fastnst.commands.datasets import main

    assert main(["content", unique("x"), str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err == f"error: content folder not found: {tmp_path / 'absent'}\n"
    assert main(["export", unique("absent"), str(tmp_path / "e")]) == 1
    assert "no FiftyOne dataset named" in capsys.readouterr().err
    assert os.environ["FIFTYONE_DO_NOT_TRACK"] == "true"
