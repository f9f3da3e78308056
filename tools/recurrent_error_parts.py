"""Where a recurrent model's warping error comes from, on one clip.

    python tools/recurrent_error_parts.py --model classics-video \
        --clip ../shared/data/video/cockatoo.mp4 --style 5 --judge-flow dis --json parts.json

The clip runs through the model as ``fastnst stylize --video`` runs it (the previous output
carried along the flow at ``--flow-size``, with its trust mask). The judge's masked error
(Lai et al. 2018, flow and occlusion mask from the input frames, as ``fastnst eval-video``)
is then split, each part as a multiple of the input's own error (the floor):

- ``trusted``: pixels where the network kept part of the carried frame; there the error is
  (1 - gate)^2 x the distance of its fresh RGB from the carried frame (``rgb_vs_carried``)
  plus the disagreement between the network's warp and the judge's (``carried_vs_judge``);
- ``untrusted``: pixels the judge trusts and the network's own mask did not: the fresh RGB.

``carried_vs_judge`` is what even a perfect copy would score: the judge's flow against the
network's, on the stylized texture.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.infer.temporal_blend import Recurrence
from fastnst.model import pad_to_min_side
from fastnst.modelfile import keep_carried
from fastnst.video.flow import flow_pair
from fastnst.video.pairs import read_frames
from fastnst.video.warp import warp


def masked_mean(values: torch.Tensor, weights: torch.Tensor, over: torch.Tensor) -> float:
    """Mean over frame pairs of Σ weights·values / Σ over."""
    sums = (weights * values).sum((1, 2, 3)) / over.sum((1, 2, 3)).clamp_min(1.0)
    return sums.mean().item()


@torch.no_grad()
def error_parts(
    model: str, frames: torch.Tensor, style: int, flow_size: int, judge_flow: str
) -> dict[str, float]:
    """The parts of the judge's error (see the module docstring), and the mean gate."""
    net, _ = load_model(model)
    if not net.config.recurrent:
        raise SystemExit(f"error: {model} is not a recurrent model")
    weights = F.one_hot(torch.tensor([style]), net.num_styles).float()
    recurrence = Recurrence(flow_size)  # the guide exactly as inference builds it
    outputs, guides, gates, fresh = [], [], [], []
    for frame in frames:
        photo = frame.numpy()
        guide = torch.from_numpy(recurrence.guide(photo))[None]
        h, w = photo.shape[-2:]
        padded_guide = pad_to_min_side(guide)
        feats = net.encode(pad_to_min_side(frame[None]), weights, padded_guide)
        raw = net.head_output(feats, weights, padded_guide)[..., :h, :w]
        out = keep_carried(raw, guide)
        recurrence.previous_photo, recurrence.previous_output = photo, out[0].numpy()
        outputs.append(out)
        guides.append(guide)
        gates.append(raw[:, 3:])
        fresh.append(raw[:, :3])
    out = torch.cat(outputs)
    flow, mask = flow_pair(frames[:-1], frames[1:], judge_flow)
    floor = masked_mean((frames[1:] - warp(frames[:-1], flow)).pow(2).sum(1, True), mask, mask)
    judge_warp = warp(out[:-1], flow)
    error = (out[1:] - judge_warp).pow(2).sum(1, keepdim=True)
    guide = torch.cat(guides[1:])
    moved, net_trust = guide[:, :3], guide[:, 3:]
    both = mask * net_trust
    rgb = torch.cat(fresh[1:])
    return {
        "floor": floor,
        "total_x": masked_mean(error, mask, mask) / floor,
        "trusted_x": masked_mean(error, both, mask) / floor,
        "untrusted_x": masked_mean(error, mask * (1 - net_trust), mask) / floor,
        "untrusted_share": masked_mean(1 - net_trust, mask, mask),
        "gate_where_trusted": masked_mean(torch.cat(gates[1:]), both, both),
        "rgb_vs_carried_x": masked_mean((rgb - moved).pow(2).sum(1, True), both, both) / floor,
        "carried_vs_judge_x": masked_mean((moved - judge_warp).pow(2).sum(1, True), both, both)
        / floor,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--style", type=int, default=5)
    parser.add_argument("--long-side", type=int, default=512)
    parser.add_argument("--max-frames", type=int, default=30)
    parser.add_argument("--flow-size", type=int, default=320, help="the network's flow")
    parser.add_argument("--judge-flow", default="dis", choices=["dis", "farneback"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    frames = read_frames(args.clip, args.long_side, args.max_frames)
    parts = error_parts(args.model, frames, args.style, args.flow_size, args.judge_flow)
    for name, value in parts.items():
        print(f"{name:<20}{value:>10.4g}")
    if args.json:
        record = {**vars(args), "clip": str(args.clip), "json": None, "parts": parts}
        atomic_write(args.json, lambda p: p.write_text(json.dumps(record, indent=2)))


if __name__ == "__main__":
    main()
