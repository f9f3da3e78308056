"""Stylize's video blends scored where the true motion is known, so that no flow estimator is
shared between a blend and its judge:

    python tools/blend_exact.py --model classics-video --strength 1.2 \
        --shown detail:0.6:320 --shown glue:0.1:320 --shown glue:0.1:512 \
        --photos ../shared/data/content --json docs/video/blend_exact.json

The issue's judge (``fastnst eval-video``) moves each output frame along OpenCV's DIS flow of
the input frames. A blend that moves its strokes along the same DIS flow, at the judge's size,
agrees with the judge wherever that flow errs, and reads steadier than a viewer sees it. Here
each photo becomes a clip with a known camera (tools/anchored_bound.py: a smooth random pan
with a little rotation and zoom, each frame with its own noise), each ``--shown`` variant
(``KIND:WEIGHT:FLOW_SIZE``, as ``stylize --video --blend-kind KIND --temporal-blend WEIGHT
--flow-size FLOW_SIZE`` shows it, with the default input smoothing) is run through
``VideoStream``, and its warping error is given as a multiple of the input's under the exact
flow (the truth) and under the DIS judge. Per variant: the geometric mean over photos.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from anchored_bound import (  # a sibling script: tools/ is sys.path[0]
    known_camera_clip,
    photo_paths,
    with_noise,
)

from fastnst.files import atomic_write
from fastnst.infer.temporal_blend import BLEND_KINDS, VideoStream
from fastnst.runtime.backends import load_stylizer
from fastnst.video.metrics import masked_warp_error, warping_errors

FRAME = (288, 512)


class Shown(NamedTuple):
    kind: str
    weight: float
    flow_size: int

    @classmethod
    def parse(cls, spec: str) -> Shown:
        """``KIND:WEIGHT:FLOW_SIZE``, e.g. ``glue:0.1:512``."""
        kind, weight, flow_size = spec.split(":")
        if kind not in BLEND_KINDS:
            raise argparse.ArgumentTypeError(f"blend kind must be one of {BLEND_KINDS}: {spec}")
        return cls(kind, float(weight), int(flow_size))

    def label(self) -> str:
        return f"{self.kind}:{self.weight:g}:{self.flow_size}"


def add_unguided(parser: argparse.ArgumentParser) -> None:
    """``--unguided``, for this tool and tools/glue_parts.py."""
    parser.add_argument(
        "--unguided",
        action="store_true",
        help="a recurrent model's still path: its guide left out, as on a photo",
    )


def video_stream(stylizer, shown: Shown, unguided: bool) -> VideoStream:
    """A fresh stream as ``stylize --video`` runs this variant (``unguided``: a recurrent
    model's still path, its guide left out)."""
    return VideoStream(
        stylizer.recurrent and not unguided,
        blend=shown.weight,
        flow_size=shown.flow_size,
        blend_kind=shown.kind,
    )


def shown_frames(
    stylizer, frames: torch.Tensor, args: argparse.Namespace, shown: Shown
) -> torch.Tensor:
    """``[T, 3, H, W]``: the clip as ``stylize --video`` shows it with this variant
    (``args``: the style, strength and ``unguided``)."""
    weights = stylizer.styles(args.style)[0][1]
    stream = video_stream(stylizer, shown, args.unguided)
    out = [stream(stylizer, frame[None].numpy(), weights, args.strength) for frame in frames]
    return torch.from_numpy(np.concatenate(out))


def exact_multiple(out: torch.Tensor, floor: float, flow: torch.Tensor, inside: torch.Tensor):
    """Warping error under the exact flow, as a multiple of the input's (``floor``)."""
    return float(masked_warp_error(out[1:], out[:-1], flow, inside).mean()) / floor


def measure(args: argparse.Namespace) -> list[dict]:
    """One row per photo and variant."""
    stylizer = load_stylizer(args.model, "onnx", "cpu")
    rows = []
    for index, photo_path in enumerate(photo_paths(args.photos)):
        _, clean, flow, inside = known_camera_clip(photo_path, FRAME, args, index)
        frames = with_noise(clean, args.noise, args.seed + index)
        floor = float(masked_warp_error(frames[1:], frames[:-1], flow, inside).mean())
        outputs = [shown_frames(stylizer, frames, args, s) for s in args.shown]
        judged = warping_errors(frames, [frames, *outputs])
        for shown, out, error in zip(args.shown, outputs, judged[1:], strict=True):
            row = {
                "photo": photo_path.name,
                "shown": shown.label(),
                "exact_x": exact_multiple(out, floor, flow, inside),
                "dis_x": error.mean / judged[0].mean,
            }
            rows.append(row)
            print(
                f"{row['photo'][:24]:<25}{row['shown']:>18}{row['exact_x']:>9.2f}{row['dis_x']:>9.2f}"
            )
    return rows


def summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per variant: the geometric means of both multiples over the photos."""
    out: dict[str, dict[str, float]] = {}
    for label in dict.fromkeys(row["shown"] for row in rows):
        mine = [row for row in rows if row["shown"] == label]
        out[label] = {
            key: math.exp(sum(math.log(row[key]) for row in mine) / len(mine))
            for key in ("exact_x", "dis_x")
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="classics-video")
    parser.add_argument("--photos", type=Path, action="append", required=True)
    parser.add_argument("--shown", type=Shown.parse, action="append", required=True)
    parser.add_argument("--style", default="5")
    add_unguided(parser)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--speed", type=float, default=5.5, help="mean pan, px a frame")
    parser.add_argument("--noise", type=float, default=0.011, help="cockatoo's: 0.011")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"{'photo':<25}{'shown':>18}{'exact x':>9}{'DIS x':>9}")
    rows = measure(args)
    means = summary(rows)
    for label, value in means.items():
        print(f"{'geometric mean':<25}{label:>18}{value['exact_x']:>9.2f}{value['dis_x']:>9.2f}")
    if args.json:
        report = {
            "model": args.model,
            "unguided": args.unguided,
            "strength": args.strength,
            "noise": args.noise,
            "rows": rows,
            "geometric_mean": means,
        }
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(report, indent=2)))


if __name__ == "__main__":
    main()
