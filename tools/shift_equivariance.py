"""How a model's painting moves when the photo moves: the lattice part of video flicker.

    python tools/shift_equivariance.py --model classics --model classics-video \
        --photos ../shared/data/content/*.png --style 5 --json shift.json

The network samples at stride 4, so a photo moved by 4 px should come out moved by 4 px; a
photo moved by 1-3 px may come out painted afresh. For each whole-pixel move ``s`` (both
axes, one at a time) the photo is cropped twice, ``s`` apart, both crops are stylized and
the overlap compared: the mean over pixels of the squared RGB difference summed over
channels (16-px borders left out, where reflect padding differs). ``moved_4`` is the output
against itself moved by 4 px: how much the picture changes where the strokes do not follow,
so ``lattice`` (the mean error at 1-3 px over ``moved_4``) is the share of a stroke's
texture that a sub-lattice move repaints: 0 for a network that follows the photo.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.images import load_image, resize_long_side
from fastnst.runtime.tiles import STRIDE

BORDER = 16


def moved_pair(image: torch.Tensor, shift: int, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two crops of ``image`` ``shift`` px apart along ``axis`` (-1: columns, -2: rows)."""
    length = image.shape[axis]
    return image.narrow(axis, 0, length - shift), image.narrow(axis, shift, length - shift)


def overlap_error(first: torch.Tensor, second: torch.Tensor, shift: int, axis: int) -> float:
    """Mean squared difference (summed over channels) where the two crops show the same
    pixels: ``second``'s pixel i is ``first``'s pixel i + ``shift``."""
    length = first.shape[axis]
    a = first.narrow(axis, shift, length - shift)
    b = second.narrow(axis, 0, length - shift)
    inner = (a - b)[..., BORDER:-BORDER, BORDER:-BORDER]
    return inner.pow(2).sum(1).mean().item()


@torch.no_grad()
def measure(
    stylize: Callable[[torch.Tensor], torch.Tensor], photos: list[torch.Tensor], shifts: list[int]
) -> dict:
    """Per shift the mean error over photos and both axes; ``moved_4`` and ``lattice``."""
    errors: dict[int, list[float]] = {s: [] for s in shifts}
    moved = []
    for photo in photos:
        whole = stylize(photo)
        for axis in (-1, -2):
            moved.append(overlap_error(whole, whole, STRIDE, axis))
            for s in shifts:
                first, second = moved_pair(photo, s, axis)
                errors[s].append(overlap_error(stylize(first), stylize(second), s, axis))
    mean = {s: sum(v) / len(v) for s, v in errors.items()}
    moved_4 = sum(moved) / len(moved)
    off_lattice = [mean[s] for s in shifts if s % STRIDE]
    lattice = sum(off_lattice) / len(off_lattice) / moved_4 if off_lattice else float("nan")
    return {"shifts": mean, "moved_4": moved_4, "lattice": lattice}


def model_stylizer(model: str, style: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's network (fp32, as trained) painting ``style``."""
    net, _ = load_model(model)
    weights = F.one_hot(torch.tensor([style]), net.num_styles).float()
    return lambda photo: net(photo, weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="repeat for several")
    parser.add_argument("--photos", nargs="+", type=Path, required=True)
    parser.add_argument("--style", type=int, default=5)
    parser.add_argument("--long-side", type=int, default=384)
    parser.add_argument("--shifts", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    photos = [resize_long_side(load_image(p)[None], args.long_side) for p in args.photos]
    rows = {m: measure(model_stylizer(m, args.style), photos, args.shifts) for m in args.model}
    header = "".join(f"{f'{s} px':>10}" for s in args.shifts)
    print(f"{'model':<40}{header}{'moved 4':>10}{'lattice':>10}")
    for model, row in rows.items():
        cells = "".join(f"{row['shifts'][s]:>10.5f}" for s in args.shifts)
        print(f"{model:<40}{cells}{row['moved_4']:>10.4f}{row['lattice']:>10.3f}")
    if args.json:
        record = {
            "command": "python tools/shift_equivariance.py",
            "photos": [str(p) for p in args.photos],
            "style": args.style,
            "long_side": args.long_side,
            "models": rows,
        }
        atomic_write(args.json, lambda p: p.write_text(json.dumps(record, indent=2)))


if __name__ == "__main__":
    main()
