"""The dataset ``fastnst browse`` opens in the FiftyOne App: one group per content photo
with slices ``content``, one per style (the model's output) and ``<style>_set`` (a sheet
of the frames the style was trained from), so all sit side by side in the App."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from fastnst.datasets.fiftyone_sets import LABEL_FIELD, import_fiftyone, new_dataset
from fastnst.datasets.style_report import contact_sheet
from fastnst.devices import pick_device
from fastnst.errors import UserError
from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.images import find_images, load_image, resize_long_side, tensor_to_pil

if TYPE_CHECKING:
    import fiftyone as fo

CONTENT_SLICE = "content"
SET_SUFFIX = "_set"
SHEET_IMAGES = 16


def _save_png(image: torch.Tensor, path: Path) -> Path:
    pil = tensor_to_pil(image)
    atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))
    return path


def style_sheets(style_names: list[str], style_root: Path | None, out: Path) -> dict[str, Path]:
    """A thumbnail sheet per style that has frames in ``style_root/<style>/``."""
    sheets: dict[str, Path] = {}
    for name in style_names:
        folder = style_root / name if style_root else None
        paths = find_images(folder)[:SHEET_IMAGES] if folder and folder.is_dir() else []
        if paths:
            sheet = contact_sheet([load_image(p) for p in paths], columns=4, tile=128, title=name)
            path = out / f"{name}{SET_SUFFIX}.jpg"
            atomic_write(path, lambda tmp, sheet=sheet: sheet.save(tmp, format="JPEG", quality=90))
            sheets[name] = path
    return sheets


@torch.no_grad()
def build_browse_dataset(
    name: str,
    model: Path,
    content: Path,
    out: Path,
    style_root: Path | None = None,
    num_samples: int = 8,
    size: int = 512,
    seed: int = 0,
    device_name: str = "auto",
) -> fo.Dataset:
    """Stylize ``num_samples`` photos from ``content`` with every style of ``model``; write
    the outputs under ``out`` and return the grouped dataset (replacing one of that name)."""
    fo = import_fiftyone()
    device = pick_device(device_name)
    net, info = load_model(model, device)
    photos = find_images(content) if content.exists() else []
    if not photos:
        raise UserError(f"no content images found at {content}")
    if len(photos) > num_samples:
        photos = sorted(random.Random(seed).sample(photos, num_samples))
    sheets = style_sheets(info.style_names, style_root, out / "sets")
    samples = []
    for index, photo in enumerate(photos):
        group = fo.Group()
        samples.append(fo.Sample(filepath=str(photo.resolve()), group=group.element(CONTENT_SLICE)))
        image = resize_long_side(load_image(photo), size).unsqueeze(0).to(device)
        for style_index, style in enumerate(info.style_names):
            output = net(image, style_index)[0].cpu()
            path = _save_png(output, out / f"{index:03d}_{photo.stem}" / f"{style}.png")
            label = fo.Classification(label=style)
            samples.append(
                fo.Sample(
                    filepath=str(path.resolve()), group=group.element(style), **{LABEL_FIELD: label}
                )
            )
            if style in sheets:
                samples.append(
                    fo.Sample(
                        filepath=str(sheets[style].resolve()),
                        group=group.element(style + SET_SUFFIX),
                        **{LABEL_FIELD: fo.Classification(label=style)},
                    )
                )
    dataset = new_dataset(name, overwrite=True)
    dataset.add_group_field("group", default=CONTENT_SLICE)
    dataset.add_samples(samples, progress=False)
    dataset.info = {"model": str(model.resolve()), "styles": info.style_names}
    dataset.save()
    return dataset
