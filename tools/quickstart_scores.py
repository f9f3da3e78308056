"""Style and content distances of `make train`'s model (fastnst.distances), and a grid.

    python tools/quickstart_scores.py --model outputs/quickstart/spiderverse.safetensors \
        --photos ../shared/data/content --size 512 --grid docs/quality/quickstart/grid.jpg

Each model stylizes every photo (long side --size) in each of its styles; the style image of
a style is its procedural texture at --size (fastnst.data.textures), or ``<name>.png`` in the
model's --style-dir (the n-th --style-dir goes with the n-th --model): textures of an older
version, written by running ``--write-textures DIR`` with that version on PYTHONPATH.
Prints per-style and mean distances; the grid shows the style images over the outputs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fastnst.data.textures import UNIVERSES, universe_textures
from fastnst.distances import Distances
from fastnst.evaluation.report import save_grid
from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.images import find_images, load_image, resize_long_side, tensor_to_pil


def style_images(names: list[str], size: int, style_dir: Path | None) -> list[torch.Tensor]:
    """One style image per name: ``style_dir/<name>.png`` if given, else the built-in texture."""
    if style_dir is None:
        return [universe_textures(name, count=1, size=size)[0] for name in names]
    return [load_image(style_dir / f"{name}.png") for name in names]


@torch.no_grad()
def score(
    model: Path, photos: list[torch.Tensor], size: int, style_dir: Path | None
) -> tuple[dict, list[list[torch.Tensor]]]:
    """Per-style mean distances, and the rows of the grid (style images, then each photo)."""
    net, info = load_model(model)
    names = list(info.style_names)
    styles = style_images(names, size, style_dir)
    judge = Distances(styles)
    rows: list[list[torch.Tensor]] = [styles]
    per_style: dict[str, dict[str, float]] = {
        name: {"style": 0.0, "content": 0.0} for name in names
    }
    for photo in photos:
        outputs = [net(photo.unsqueeze(0), k)[0].clamp(0, 1) for k in range(len(names))]
        rows.append(outputs)
        for k, out in enumerate(outputs):
            for part, value in judge(out, photo, k).items():
                per_style[names[k]][part] += value / len(photos)
    mean = {
        part: float(np.mean([row[part] for row in per_style.values()]))
        for part in ("style", "content")
    }
    return {"mean": mean, "per_style": per_style}, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", type=Path, default=[])
    parser.add_argument("--style-dir", action="append", type=Path, default=[])
    parser.add_argument("--photos", default="../shared/data/content")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--grid", type=Path, help="JPEG: style images over the outputs")
    parser.add_argument("--thumb", type=int, default=96)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write-textures", type=Path, help="write the textures here and stop")
    args = parser.parse_args()
    if args.write_textures:
        args.write_textures.mkdir(parents=True, exist_ok=True)
        for name in UNIVERSES:
            image = tensor_to_pil(universe_textures(name, count=1, size=args.size)[0])
            atomic_write(
                args.write_textures / f"{name}.png", lambda tmp, im=image: im.save(tmp, "PNG")
            )
        return
    paths = find_images(args.photos)
    photos = [resize_long_side(load_image(p), args.size) for p in paths]
    results, columns = {}, [[None] + photos]  # the grid's first column: the photos
    titles = ["photo"]
    for index, model in enumerate(args.model):
        style_dir = args.style_dir[index] if index < len(args.style_dir) else None
        result, rows = score(model, photos, args.size, style_dir)
        label = model.parent.name or model.stem
        results[label] = result
        titles += [f"{label}: {name}" for name in result["per_style"]]
        columns += [list(column) for column in zip(*rows, strict=True)]
        mean = result["mean"]
        print(f"{label}: mean style {mean['style']:.3f} content {mean['content']:.3f}")
        for name, row in result["per_style"].items():
            print(f"  {name:12s} style {row['style']:.3f} content {row['content']:.3f}")
    if args.grid:
        cells = [list(row) for row in zip(*columns, strict=True)]
        save_grid(args.grid, cells, titles, args.thumb)
    if args.json:
        text = json.dumps(
            {"photos": [str(p) for p in paths], "size": args.size, **results}, indent=1
        )
        atomic_write(args.json, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    main()
