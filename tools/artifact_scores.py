"""Periodic-pattern and fine-texture scores of models on a set of photos (fastnst.artifacts).

    python tools/artifact_scores.py --model classics --model classics-lite \
        --photos ../shared/data/content --photos ../shared/data/photos --count 20 --size 512 \
        --json docs/quality/artifacts.json

Each model stylizes the photos in every style (or --styles); per style, the mean spectrum of
all its outputs gives ``periodic`` and ``peak``; ``hf_ratio`` is the output's fine-scale
energy share over its photo's. The photos themselves are scored as the row ``photos``: the
floor. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fastnst.artifacts import high_frequency_ratio, periodic_score
from fastnst.data.styles import folder_styles
from fastnst.distances import Distances
from fastnst.evaluation.run import evenly_spaced
from fastnst.evaluation.scores import LossMeter
from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.images import find_images, load_image, resize_long_side
from fastnst.models import resolve_model


def _array(image: torch.Tensor) -> np.ndarray:
    return image.squeeze(0).float().clamp(0, 1).numpy()


def pick_photos(folders: list[str], count: int) -> list[Path]:
    """Every photo of the first folder, then evenly spaced ones from the rest up to ``count``."""
    chosen = find_images(folders[0])
    for folder in folders[1:]:
        if len(chosen) < count:
            chosen += evenly_spaced(find_images(folder), count - len(chosen))
    return chosen


@torch.no_grad()
def score_model(
    spec: str, photos: list[torch.Tensor], styles: list[str] | None, style_dir: str | None
) -> dict:
    net, info = load_model(resolve_model(spec))
    names = styles or list(info.style_names)
    meter = judge = None
    if style_dir:  # the model's own loss, and the scale-free distances, against these images
        sets = {s.name: s for s in folder_styles(style_dir)}
        meter = LossMeter(info.loss, [sets[n].load(256) for n in names], torch.device("cpu"))
        judge = Distances([sets[n].load(512)[0] for n in names])
    per_style = {}
    for k, name in enumerate(names):
        index = info.style_names.index(name)
        outputs = [net(photo, index) for photo in photos]
        arrays = [_array(out) for out in outputs]
        score = periodic_score(arrays)
        hf = [high_frequency_ratio(a, _array(p)) for a, p in zip(arrays, photos, strict=True)]
        row = {**score.to_dict(), "hf_ratio": float(np.mean(hf))}
        if meter:
            losses = [meter(out, p, k) for out, p in zip(outputs, photos, strict=True)]
            distances = [judge(out, p, k) for out, p in zip(outputs, photos, strict=True)]
            for part in ("style", "content"):
                row[part] = float(np.mean([loss[part] for loss in losses]))
                row[f"{part}_distance"] = float(np.mean([d[part] for d in distances]))
        per_style[name] = row
    measured = ("style", "content", "style_distance", "content_distance")
    keys = ("periodic", "peak", "hf_ratio") + (measured if meter else ())
    mean = {k: float(np.mean([row[k] for row in per_style.values()])) for k in keys}
    return {"mean": mean, "per_style": per_style}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--photos", action="append", required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--styles", nargs="*")
    parser.add_argument("--style-dir", help="also score the model's own loss against these")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    paths = pick_photos(args.photos, args.count)
    photos = [resize_long_side(load_image(p).unsqueeze(0), args.size) for p in paths]
    floor = periodic_score(_array(p) for p in photos)
    results = {"photos": {"mean": {**floor.to_dict(), "hf_ratio": 1.0}}}
    for spec in args.model:
        start = time.perf_counter()
        results[spec] = score_model(spec, photos, args.styles, args.style_dir)
        results[spec]["seconds"] = round(time.perf_counter() - start, 1)
    print(f"{len(paths)} photos at {args.size} px")
    columns = ("style", "content", "style_distance", "content_distance")
    print(f"{'source':40s} {'periodic':>9s} {'peak':>8s} {'hf_ratio':>9s}", *columns)
    for name, row in results.items():
        m = row["mean"]
        losses = "".join(f" {m[k]:7.3f}" if k in m else f" {'-':>7s}" for k in columns)
        spectrum = f"{m['periodic']:9.4f} {m['peak']:8.2f} {m['hf_ratio']:9.3f}"
        print(f"{name[-40:]:40s} {spectrum}{losses}")
    if args.json:
        meta = {"photos": [str(p) for p in paths], "size": args.size}
        text = json.dumps({"meta": meta, **results}, indent=1)
        atomic_write(args.json, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    main()
