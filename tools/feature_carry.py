"""Carrying a layer's features along the flow, rather than the output's RGB (a study; no
training, any model):

    python tools/feature_carry.py --model classics-video --clip ../shared/data/video/cockatoo.mp4 \
        --carry rgb:0 up2:1 up2:1:0.5h rgb:1 --strength 1.1 --json feature_carry.json

Every way the project steadies a video so far mixes two paintings: the blend and a recurrent
model's gate average the fresh output with the previous one moved along the flow, and an
average of two differently painted frames has less contrast than either (docs/VIDEO.md). Here
the network's activations at one layer are *replaced*, where the flow is trusted, by the
previous frame's moved along it (``LAYER:SHARE``, share 1: replaced outright; below 1 a mix),
and decoded as usual: the instance norms after that layer give the carried features the
network's own statistics back, and the head paints crisp strokes from them. Layers: ``enc``
(the encoder's output, a quarter of the size), ``res`` (after the residual blocks), ``up1``
(half size), ``up2`` (full size, the head's input), ``rgb`` (the output itself: the glue of
docs/VIDEO.md's bound, along our flow). ``LAYER:SHARE:STRETCH`` also repaints what the flow
has magnified or shrunk by more than ``STRETCH`` (log area) since it was painted, gradually,
or whole at once with ``STRETCH`` ending in ``h`` (:class:`LayerCarry`); ``--strength`` and
``--input-smooth`` are ``stylize``'s. A recurrent model runs as its still path (the guide is
this study's carry). The flow and trust mask are the inference's (DIS at ``--flow-size``, as
``stylize --video``); features move with ``--kernel`` (bicubic keeps them sharpest over a chain
of moves). Scores: the warping error as a multiple of the input's own under the issue's judge
(DIS) and under Farneback (an independent flow: our carry moves along DIS too), and the
judge's style distance; ``--strip`` writes the first, middle and last frames of each output
under the clip's (the look, which the Gram matrices do not see).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fastnst.evaluation.video_models import judge_distances, style_judge, style_sets
from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.infer.temporal_blend import InputSmooth, LastFlow
from fastnst.model import TransformerNet, still_network, style_weights
from fastnst.runtime.arrays import bolder_strokes
from fastnst.runtime.flow import FlowFn
from fastnst.video.metrics import warping_errors
from fastnst.video.pairs import read_frames
from fastnst.video.warp import downscale_flow, warp

LAYERS = ("enc", "res", "up1", "up2", "rgb")
KERNELS = ("bilinear", "bicubic", "nearest")
# The layers whose values are bounded (after a ReLU; the output): bicubic's overshoot is cut.
RANGES = {"enc": (0.0, None), "up1": (0.0, None), "up2": (0.0, None), "rgb": (0.0, 1.0)}

Carry = Callable[[str, torch.Tensor], torch.Tensor]


def run_with_carry(
    net: TransformerNet, frame: torch.Tensor, weights: torch.Tensor, carry: Carry
) -> torch.Tensor:
    """The plain network on ``[1, 3, H, W]``, each layer of :data:`LAYERS` passed through
    ``carry(layer, activations)`` on the way (the identity for all but the carried one)."""
    feats = net.encode(frame, weights)
    x = carry("enc", feats[-1])
    for block in net.residuals:
        x = block(x, weights)
    x = carry("res", x)
    x = carry("up1", net.up1(x, weights, tuple(feats[1].shape[-2:])))
    x = carry("up2", net.up2(x, weights, tuple(feats[0].shape[-2:])))
    return carry("rgb", torch.sigmoid(net.head(x, weights))[:, :3])


class LayerCarry:
    """What one video carries at ``layer``: the last frame's activations there (after the
    carry), moved onto the next frame along its flow and kept at ``share`` where trusted.

    With ``stretch`` (a log area ratio, e.g. 0.2) the carry also tracks how much each carried
    pixel has been magnified or shrunk since it was painted (the flow's area change, summed
    along the way): glued strokes grow with an approaching object, where the network paints
    them at one size, so the share kept falls linearly to 0 as the change reaches ``stretch``,
    and what is repainted forgets its change in proportion. ``hard``: kept whole until the
    change reaches ``stretch``, then repainted whole (no mix of two paintings, a jump instead)."""

    def __init__(
        self,
        layer: str,
        share: float,
        kernel: str = "bicubic",
        stretch: float | None = None,
        hard: bool = False,
    ) -> None:
        if layer not in LAYERS or kernel not in KERNELS:
            raise ValueError(f"layer one of {LAYERS}, kernel one of {KERNELS}")
        self.layer, self.share, self.kernel, self.stretch = layer, share, kernel, stretch
        self.hard = hard
        self.carried: torch.Tensor | None = None
        self.change: torch.Tensor | None = None  # [1, 1, H, W] log magnification, frame size

    def kept(self, flow: torch.Tensor, trusted: torch.Tensor) -> torch.Tensor:
        """The share of the carried activations kept at each pixel ``[1, 1, H, W]``, frame size."""
        if self.stretch is None:
            return self.share * trusted
        change = -torch.log(area_ratio(flow).clamp(min=1e-3))
        if self.change is not None:
            change = change + warp(self.change, flow)
        fresh_weight = (change.abs() / self.stretch).clamp(max=1)
        if self.hard:  # all at once when the change is reached, never a mix
            fresh_weight = (fresh_weight >= 1).to(change.dtype)
        self.change = change * (1 - fresh_weight) * trusted
        return self.share * trusted * (1 - fresh_weight)

    def __call__(
        self, layer: str, x: torch.Tensor, motion: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """``motion``: the backward flow ``[1, 2, H, W]`` and trust ``[1, 1, H, W]`` at the
        frame's size, None for a video's first frame (nothing carried)."""
        if layer != self.layer:
            return x
        if motion is not None and self.carried is not None and self.share > 0:
            flow, trusted = motion
            size = tuple(x.shape[-2:])
            moved = warp(self.carried, downscale_flow(flow, size), self.kernel)
            if self.kernel == "bicubic":  # its overshoot must not leave the layer's range
                moved = moved.clamp(*RANGES[layer]) if layer in RANGES else moved
            keep = F.interpolate(self.kept(flow, trusted), size=size, mode="bilinear")
            x = x + keep * (moved - x)
        self.carried = x
        return x


def changed(
    previous: np.ndarray, photo: np.ndarray, flow: torch.Tensor, threshold: float
) -> torch.Tensor:
    """``[1, 1, H, W]`` bool: where ``photo`` differs from ``previous`` moved along ``flow``
    by more than ``threshold`` (mean over the channels, averaged over a 5x5 box so that
    sensor noise, about 0.01 per pixel, does not count): new light, not new places."""
    moved = warp(torch.from_numpy(previous)[None], flow)
    difference = (torch.from_numpy(photo)[None] - moved).abs().mean(1, keepdim=True)
    return F.avg_pool2d(difference, 5, stride=1, padding=2, count_include_pad=False) > threshold


def area_ratio(flow: torch.Tensor) -> torch.Tensor:
    """``[1, 1, H, W]``: the area of the previous frame that the backward ``flow`` maps onto
    each pixel's unit square (det of its Jacobian): below 1 where the scene grows."""
    du_dy, du_dx = torch.gradient(flow[:, 0], dim=(1, 2))
    dv_dy, dv_dx = torch.gradient(flow[:, 1], dim=(1, 2))
    return ((1 + du_dx) * (1 + dv_dy) - du_dy * dv_dx)[:, None]


@torch.no_grad()
def stylize_clip(
    net: TransformerNet,
    frames: torch.Tensor,
    style: int,
    carry: LayerCarry,
    flows: FlowFn,
    smooth: float = 0.0,
    appearance: float | None = None,
) -> torch.Tensor:
    """``[T, 3, H, W]`` frames stylized in order with ``carry``; ``flows(previous, current)``
    gives the NumPy backward flow and trust mask (as
    :class:`~fastnst.infer.temporal_blend.LastFlow`). ``smooth``: the network sees the frames
    smoothed along the same flow (``--input-smooth``, :class:`InputSmooth`). ``appearance``:
    pixels whose photo changed by more than that along the flow (:func:`changed`) count as
    untrusted, so they are repainted: a light switched on in a still scene is not frozen."""
    weights = style_weights(style, 1, net.num_styles)
    seen = InputSmooth(smooth, flows=flows)(frames.numpy())
    outputs, previous = [], None
    for frame, shown in zip(frames, torch.from_numpy(seen), strict=True):
        photo = frame.numpy()
        motion = None
        if previous is not None:
            flow, trusted = (torch.from_numpy(a)[None] for a in flows(previous, photo))
            trusted = trusted[None]
            if appearance is not None:
                trusted = trusted * ~changed(previous, photo, flow, appearance)
            motion = (flow, trusted)
        outputs.append(run_with_carry(net, shown[None], weights, partial(carry, motion=motion)))
        previous = photo
    return torch.cat(outputs).float()


def carry_spec(spec: str, kernel: str) -> LayerCarry:
    """``LAYER:SHARE[:STRETCH[h]]`` (``up2:1``, ``up2:1:0.2``; ``h``: a hard refresh) → a
    fresh :class:`LayerCarry`."""
    layer, share, stretch = [*spec.split(":"), "", ""][:3]
    hard = stretch.endswith("h")
    stretch = stretch.removesuffix("h")
    return LayerCarry(layer, float(share or 1), kernel, float(stretch) if stretch else None, hard)


def write_strip(path: Path, frames: torch.Tensor, outputs: list[torch.Tensor]) -> None:
    """First, middle and last frame side by side; the clip's row on top, then each output's."""
    picks = [0, frames.shape[0] // 2, frames.shape[0] - 1]
    rows = [torch.cat(list(video[picks]), -1) for video in (frames, *outputs)]
    image = (torch.cat(rows, -2).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
    encoded = cv2.imencode(path.suffix, image.astype(np.uint8)[:, :, ::-1])[1]
    atomic_write(path, lambda tmp: tmp.write_bytes(encoded.tobytes()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument(
        "--carry", nargs="+", default=["rgb:0", "up2:1"], help="LAYER:SHARE[:STRETCH[h]]"
    )
    parser.add_argument("--kernel", choices=KERNELS, default="bicubic")
    parser.add_argument("--long-side", type=int, default=512)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--flow-size", type=int, default=320)
    parser.add_argument("--style", type=int, default=5)
    parser.add_argument("--style-dir", type=Path, default=Path("../shared/data/styles"))
    parser.add_argument("--judge-every", type=int, default=3)
    parser.add_argument(
        "--strength", type=float, default=1.0, help="bolder strokes on what is shown (>= 1)"
    )
    parser.add_argument("--input-smooth", type=float, default=0.0)
    parser.add_argument(
        "--appearance", type=float, help="repaint where the photo changed more than this"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--strip", type=Path)
    args = parser.parse_args()

    net, info = load_model(args.model)
    net = still_network(net).eval()
    frames = read_frames(args.clip, args.long_side, args.frames)
    judge = style_judge(style_sets(info, args.style_dir, Path())[args.style])
    outputs = [
        stylize_clip(
            net,
            frames,
            args.style,
            carry_spec(spec, args.kernel),
            LastFlow(args.flow_size, keep=args.frames),
            args.input_smooth,
            args.appearance,
        )
        for spec in args.carry
    ]
    if args.strength > 1:  # as `stylize --strength`: on the shown frames, after the carry
        outputs = [torch.from_numpy(bolder_strokes(o.numpy(), args.strength)) for o in outputs]
    dis = [e.mean for e in warping_errors(frames, [frames, *outputs])]
    farneback = [e.mean for e in warping_errors(frames, [frames, *outputs], "farneback")]
    rows = []
    print(f"{'carry':>10}{'x DIS':>9}{'x Farneback':>13}{'style':>8}")
    for i, (spec, output) in enumerate(zip(args.carry, outputs, strict=True), start=1):
        style = judge_distances(judge, output[:: args.judge_every], frames[:: args.judge_every])
        row = {
            "clip": Path(args.clip).stem,
            "model": args.model,
            "long_side": args.long_side,
            "carry": spec,
            "strength": args.strength,
            "input_smooth": args.input_smooth,
            "appearance": args.appearance,
            "kernel": args.kernel,
            "flow_size": args.flow_size,
            "x_dis": dis[i] / dis[0],
            "x_farneback": farneback[i] / farneback[0],
            "style_distance": style["style_distance"],
        }
        rows.append(row)
        print(
            f"{spec:>10}{row['x_dis']:>9.2f}{row['x_farneback']:>13.2f}{row['style_distance']:>8.3f}"
        )
    if args.json:
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(rows, indent=1) + "\n"))
    if args.strip:
        write_strip(args.strip, frames, outputs)


if __name__ == "__main__":
    main()
