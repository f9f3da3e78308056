"""Persistent FiftyOne datasets of content photos and of style-set trees.

A style-set tree (``root/<style>/**/*.jpg``, as ``fastnst extract-frames`` writes it) is
FiftyOne's image-classification directory tree: each frame is labelled with its style
(for Spider-Verse, its universe), and exporting in that format gives a tree training reads
again. Frame-manifest facts (source clip, timestamp, scene) become sample fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from fastnst.data.content import FiftyOneUnavailable
from fastnst.datasets.manifest import Manifest
from fastnst.errors import UserError
from fastnst.images import find_images

if TYPE_CHECKING:
    import fiftyone as fo

LABEL_FIELD = "style"
EXPORT_FORMATS = ("tree", "fiftyone")


def import_fiftyone():  # noqa: ANN201 - the module, imported only when asked for
    """FiftyOne, or a one-line reason it is not installed."""
    try:
        import fiftyone
    except ImportError as exc:
        raise FiftyOneUnavailable(
            f"FiftyOne is not installed ({exc}): pip install 'fastnst[data]'"
        ) from None
    return fiftyone


def new_dataset(name: str, overwrite: bool = False) -> fo.Dataset:
    """An empty persistent dataset; an existing one is replaced only with ``overwrite``."""
    fo = import_fiftyone()
    if fo.dataset_exists(name):
        if not overwrite:
            raise UserError(f"FiftyOne dataset {name!r} exists; pass --overwrite to rebuild it")
        fo.delete_dataset(name)
    dataset = fo.Dataset(name)
    dataset.persistent = True
    return dataset


def build_content_dataset(name: str, folder: Path, overwrite: bool = False) -> fo.Dataset:
    """Every image below ``folder`` as a persistent dataset (``data=fiftyone data.name=NAME``)."""
    if not folder.is_dir():
        raise UserError(f"content folder not found: {folder}")
    paths = find_images(folder)
    if not paths:
        raise UserError(f"no images found below {folder}")
    dataset = new_dataset(name, overwrite)
    dataset.add_images([str(p.resolve()) for p in paths], progress=False)
    return dataset


def _manifest_facts(folder: Path) -> dict[Path, dict]:
    """Source, timestamp and scene of each listed frame in ``folder`` (and below)."""
    facts: dict[Path, dict] = {}
    for manifest_path in folder.rglob("manifest.json"):
        for record in Manifest.load(manifest_path.parent).frames:
            facts[(manifest_path.parent / record.file).resolve()] = {
                "source": record.source,
                "timestamp": record.timestamp,
                "scene": record.scene,
            }
    return facts


def build_style_dataset(name: str, root: Path, overwrite: bool = False) -> fo.Dataset:
    """Each image in ``root/<style>/`` labelled ``style=<style>``; manifest facts as fields."""
    fo = import_fiftyone()
    if not root.is_dir():
        raise UserError(f"style-set folder not found: {root}")
    samples = []
    for style_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        facts = _manifest_facts(style_dir)
        for path in find_images(style_dir):
            sample = fo.Sample(
                filepath=str(path.resolve()),
                **{LABEL_FIELD: fo.Classification(label=style_dir.name)},
            )
            for key, value in facts.get(path.resolve(), {}).items():
                sample[key] = value
            samples.append(sample)
    if not samples:
        raise UserError(f"no images in any style folder below {root}")
    dataset = new_dataset(name, overwrite)
    dataset.add_samples(samples, progress=False)
    return dataset


def export_dataset(dataset: fo.Dataset, directory: Path, kind: str = "tree") -> Path:
    """Write ``dataset`` to ``directory``: ``tree`` is a style-set tree (label folders),
    ``fiftyone`` keeps every field (re-import with ``fo.Dataset.from_dir``)."""
    fo = import_fiftyone()
    if kind not in EXPORT_FORMATS:
        raise UserError(f"export format must be one of {EXPORT_FORMATS}, got {kind!r}")
    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"export folder {directory} is not empty")
    if kind == "tree":
        dataset.export(
            export_dir=str(directory),
            dataset_type=fo.types.ImageClassificationDirectoryTree,
            label_field=LABEL_FIELD,
            progress=False,
        )
    else:
        dataset.export(
            export_dir=str(directory),
            dataset_type=fo.types.FiftyOneDataset,
            export_media=True,
            progress=False,
        )
    return directory


def describe(dataset: fo.Dataset) -> str:
    """One line: name, sample count and label counts if the dataset has style labels."""
    text = f"{dataset.name}: {len(dataset)} samples"
    if dataset.has_sample_field(LABEL_FIELD):
        counts = dataset.count_values(f"{LABEL_FIELD}.label")
        text += " " + json.dumps(dict(sorted(counts.items())))
    return text
