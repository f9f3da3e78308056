"""What each style set is made of: frame count and a thumbnail sheet per style.

Built on the same style builders training uses, so the sheet shows exactly the images
(or the procedural fallback texture) that a style's mean Gram target will come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from fastnst.data.styles import StyleSet
from fastnst.files import atomic_write
from fastnst.images import center_square, tensor_to_pil


@dataclass(frozen=True)
class StyleReportRow:
    name: str
    source: str  # "files" or "procedural"
    images: int  # images the style's target is computed from
    sheet: Path


def contact_sheet(
    images: list[torch.Tensor], columns: int = 8, tile: int = 128, title: str = ""
) -> Image.Image:
    """Centre-square thumbnails of ``images`` on a grid, with an optional title strip."""
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    header = 20 if title else 0
    sheet = Image.new("RGB", (columns * tile, rows * tile + header), (24, 24, 24))
    for index, image in enumerate(images):
        thumb = tensor_to_pil(center_square(image, tile))
        sheet.paste(thumb, ((index % columns) * tile, header + (index // columns) * tile))
    if title:
        ImageDraw.Draw(sheet).text((4, 4), title, fill=(235, 235, 235))
    return sheet


def write_style_report(
    styles: list[StyleSet], out: Path, columns: int = 8, tile: int = 128
) -> list[StyleReportRow]:
    """One ``<style>.jpg`` sheet per style in ``out``; rows in the network's style order."""
    rows = []
    for style in styles:
        images = style.load(size=tile * 2)
        title = f"{style.name}: {len(images)} {style.source} image(s)"
        sheet = contact_sheet(images, columns, tile, title)
        path = out / f"{style.name}.jpg"
        atomic_write(path, lambda tmp, sheet=sheet: sheet.save(tmp, format="JPEG", quality=90))
        rows.append(StyleReportRow(style.name, style.source, len(images), path))
    return rows
