"""Where the glue's flicker lives (``--blend-kind glue``): per frame, the share of pixels it
repainted, and the judge's warping error split between the pixels it kept glued and those it
repainted, as multiples of the input's own error:

    python tools/glue_parts.py --clip ../shared/data/video/cockatoo.mp4 --strength 1.2 \
        --flow-size 320 512

Kept pixels are the previous output moved along the glue's flow, so their error is where the
glue's flow and the judge's disagree (and bicubic against bilinear moves); repainted pixels
carry the network's fresh strokes (docs/VIDEO.md, "The glue's flow at 512 px").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from blend_exact import Shown, add_unguided, video_stream  # a sibling script: tools/ is sys.path[0]

from fastnst.infer.temporal_blend import DEFAULT_FLOW_SIZE
from fastnst.runtime.backends import load_stylizer
from fastnst.video.metrics import input_flows
from fastnst.video.pairs import read_frames
from fastnst.video.warp import warp


def glued_clip(
    stylizer, frames: torch.Tensor, args: argparse.Namespace, flow_size: int
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """The clip as ``stylize --video --blend-kind glue --flow-size flow_size`` shows it, and
    per frame what the glue kept (``[H, W]`` bool; nothing for the first frame)."""
    weights = stylizer.styles(args.style)[0][1]
    stream = video_stream(stylizer, Shown("glue", args.tolerance, flow_size), args.unguided)
    shown, kept = [], []
    for frame in frames:
        shown.append(stream(stylizer, frame[None].numpy(), weights, args.strength))
        kept.append(stream.blend.glue.kept.copy())
    return torch.from_numpy(np.concatenate(shown)), kept


def error_parts(frames: torch.Tensor, shown: torch.Tensor, kept: list[np.ndarray]) -> np.ndarray:
    """``[pairs, 4]``: per frame pair the repainted share, the judge's masked error (as
    :func:`fastnst.video.metrics.masked_warp_error`) from kept pixels and from repainted ones
    (they add up to the frame's), and the input's own (the floor)."""
    rows = []
    for start, flow, mask in input_flows(frames.float()):
        for k in range(flow.shape[0]):
            t, weight = start + k, mask[k, 0] / mask[k, 0].sum().clamp_min(1.0)
            moved = warp(shown[t - 1 : t], flow[k : k + 1])
            error = (shown[t : t + 1] - moved).pow(2).sum(1)[0] * weight
            own = (frames[t : t + 1] - warp(frames[t - 1 : t], flow[k : k + 1])).pow(2)
            glued = torch.from_numpy(kept[t])
            rows.append(
                [
                    1 - float(glued.float().mean()),
                    float((error * glued).sum()),
                    float((error * ~glued).sum()),
                    float((own.sum(1)[0] * weight).sum()),
                ]
            )
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fastnst/models/classics-video.safetensors")
    parser.add_argument("--clip", required=True)
    parser.add_argument("--style", default="5")
    add_unguided(parser)
    parser.add_argument("--long-side", type=int, default=512)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument("--flow-size", type=int, nargs="+", default=[DEFAULT_FLOW_SIZE])
    args = parser.parse_args()
    frames = read_frames(args.clip, args.long_side, args.frames)
    stylizer = load_stylizer(args.model, "onnx", "cpu")
    print(f"{'flow size':>10}{'repainted':>11}{'kept x':>9}{'repainted x':>13}{'all x':>8}")
    for flow_size in args.flow_size:
        shown, kept = glued_clip(stylizer, frames, args, flow_size)
        share, kept_error, repainted_error, floor = error_parts(frames, shown, kept).mean(0)
        from_kept, from_repainted = kept_error / floor, repainted_error / floor
        print(
            f"{flow_size:>10}{share:>11.1%}{from_kept:>9.2f}{from_repainted:>13.2f}"
            f"{from_kept + from_repainted:>8.2f}"
        )


if __name__ == "__main__":
    main()
