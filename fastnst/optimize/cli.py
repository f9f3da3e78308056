"""``fastnst optimize``: Gatys et al. for a photo (:mod:`fastnst.optimize.gatys`), Ruder et
al. for a video (``--video``, :mod:`fastnst.optimize.video`), with the same loss settings.

    fastnst optimize --content photo.jpg --style art.jpg --output out.png \\
        --steps 300 --optimizer lbfgs --init content --size 512
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fastnst.devices import pick_device
from fastnst.errors import UserError, run_command
from fastnst.images import load_image, resize_long_side
from fastnst.optimize.gatys import (
    INITS,
    OPTIMIZERS,
    build_loss,
    gatys,
    load_loss_settings,
    loss_choices,
    save_image,
)
from fastnst.optimize.video import DEFAULT_TEMPORAL_WEIGHT, VIDEO_INITS
from fastnst.optimize.video import run as run_video
from fastnst.video.flow import FLOW_METHODS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst optimize",
        description="Gatys et al. style transfer by pixel optimisation (the slow baseline).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--content", help="content photo")
    source.add_argument(
        "--video", help="video to stylize frame by frame with a temporal loss (Ruder et al.)"
    )
    parser.add_argument(
        "--style", required=True, nargs="+", help="style image(s); several make one style"
    )
    parser.add_argument(
        "--output", required=True, help="image (.png, .jpg) or, with --video, video to write"
    )
    parser.add_argument(
        "--steps", type=int, default=300, help="loss evaluations (default 300; video: frame 1)"
    )
    parser.add_argument("--optimizer", default="lbfgs", choices=OPTIMIZERS)
    parser.add_argument("--init", default="content", choices=INITS)
    parser.add_argument("--size", type=int, default=512, help="long side of the result in px")
    parser.add_argument(
        "--style-size", type=int, default=0, help="long side of style images (default --size)"
    )
    parser.add_argument("--lr", type=float, default=None, help="step size (lbfgs 1.0, adam 0.02)")
    parser.add_argument("--loss", default=None, help=f"{loss_choices()} (default: default)")
    parser.add_argument(
        "--save-every", type=int, default=0, help="also write the image every K steps"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise init")
    parser.add_argument(
        "--content-weight", type=float, default=None, help="override the loss's content_weight"
    )
    parser.add_argument(
        "--style-weight", type=float, default=None, help="override the loss's style_weight"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    video = parser.add_argument_group("video (--video)")
    video.add_argument(
        "--frame-steps", type=int, default=0, help="steps for frames 2+ (default: --steps / 2)"
    )
    video.add_argument(
        "--temporal-weight",
        type=float,
        default=DEFAULT_TEMPORAL_WEIGHT,
        help="short-term temporal loss weight; 0 leaves frames independent "
        f"(default {DEFAULT_TEMPORAL_WEIGHT:g})",
    )
    video.add_argument(
        "--video-init",
        default="warped",
        choices=VIDEO_INITS,
        help="start frames 2+ from the warped previous result (default) or the frame itself",
    )
    video.add_argument("--flow", default="dis", choices=FLOW_METHODS, help="optical flow method")
    video.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    return parser


def intermediate_path(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}_step{step:05d}{output.suffix}")


def run(args: argparse.Namespace) -> Path:
    output = Path(args.output)
    if not args.video and output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UserError(f"--output must end in .png or .jpg, got {output.name}")
    if args.size < 16 or args.style_size < 0 or args.save_every < 0:
        raise UserError("--size must be at least 16; --style-size and --save-every non-negative")
    device = pick_device(args.device)
    settings = load_loss_settings(args.loss)
    for key in ("content_weight", "style_weight"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    styles = [resize_long_side(load_image(p), args.style_size or args.size) for p in args.style]
    loss_fn = build_loss(settings, styles, device)
    if args.video:
        return run_video(args, loss_fn, device)
    content = resize_long_side(load_image(args.content), args.size).unsqueeze(0).to(device)

    def snapshot(step: int, image: torch.Tensor) -> None:
        if args.save_every and step % args.save_every == 0 and step < args.steps:
            save_image(image, intermediate_path(output, step))

    result = gatys(
        content,
        loss_fn,
        args.steps,
        optimizer=args.optimizer,
        init=args.init,
        lr=args.lr,
        seed=args.seed,
        on_step=snapshot,
        progress=not args.quiet,
    )
    save_image(result.image, output)
    first, last = result.history[0], result.history[-1]
    print(
        f"loss {first['total']:.4g} -> {last['total']:.4g} "
        f"(content {last['content']:.4g}, style {last['style']:.4g}) after {args.steps} steps"
    )
    return output


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), "nothing written for the final image", args)
