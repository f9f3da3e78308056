"""Measure per-layer loss magnitudes to choose the default layer weights (conf/loss/*.yaml).

For every (content photo, style image) pair it computes, at each VGG tap, the style loss a
network would get if it returned the photo unchanged, and the content loss it would get if it
returned the style image instead. A layer weight of 1/mean makes each term about 1 at that
starting point, so no layer drowns the others and ``style_weight``/``content_weight`` are
the only trade-off left. Prints a table and writes JSON.

    python tools/calibrate_loss.py --content ../shared/data/content --styles ../shared/data/styles

``--tap conv`` and ``--style-stat covariance`` measure the other loss variants
(conf/loss/post_conv.yaml, conf/loss/covariance.yaml).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from fastnst.images import center_square, find_images, load_image
from fastnst.losses import STYLE_STATS, style_statistic
from fastnst.vgg import TAP_NAMES, VGGFeatures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, required=True)
    parser.add_argument("--styles", type=Path, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--weights", default="caffe")
    parser.add_argument("--tap", default="relu", choices=["relu", "conv"])
    parser.add_argument("--style-stat", default="gram", choices=STYLE_STATS)
    parser.add_argument("--json", type=Path, default=Path("outputs/calibrate_loss.json"))
    args = parser.parse_args()

    vgg = VGGFeatures(list(TAP_NAMES), weights=args.weights, tap=args.tap)
    photos = [center_square(load_image(p), args.size) for p in find_images(args.content)]
    styles = [center_square(load_image(p), args.size) for p in find_images(args.styles)]
    style_terms: dict[str, list[float]] = {name: [] for name in TAP_NAMES}
    content_terms: dict[str, list[float]] = {name: [] for name in TAP_NAMES}
    with torch.no_grad():
        photo_feats = [vgg(p.unsqueeze(0)) for p in photos]
        style_feats = [vgg(s.unsqueeze(0)) for s in styles]
        for pf in photo_feats:
            for sf in style_feats:
                for name in TAP_NAMES:
                    gp = style_statistic(pf[name], args.style_stat)
                    gs = style_statistic(sf[name], args.style_stat)
                    style_terms[name].append(F.mse_loss(gp, gs).item())
                    content_terms[name].append(F.mse_loss(pf[name], sf[name]).item())
    rows = []
    print(f"{'layer':<9}{'style loss':>14}{'1/style':>12}{'content loss':>15}{'1/content':>12}")
    for name in TAP_NAMES:
        s, c = statistics.mean(style_terms[name]), statistics.mean(content_terms[name])
        rows.append({"layer": name, "style": s, "content": c})
        print(f"{name:<9}{s:>14.4g}{1 / s:>12.3g}{c:>15.4g}{1 / c:>12.3g}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "weights": args.weights,
                "tap": args.tap,
                "style_stat": args.style_stat,
                "size": args.size,
                "layers": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
