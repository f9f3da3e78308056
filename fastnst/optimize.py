"""Gatys et al. (2016) style transfer by optimising the pixels of one image.

It is the slow baseline that the feed-forward network replaces, so it uses the very same
VGG-19 and loss modules (:class:`fastnst.losses.PerceptualLoss`) with the same settings: a
loss value here and a loss value of a trained network are the same quantity.

    fastnst optimize --content photo.jpg --style art.jpg --output out.png \\
        --steps 300 --optimizer lbfgs --init content --size 512

One *step* is one loss-and-gradient evaluation for both optimisers (L-BFGS runs one
iteration per step, without line search), so step counts compare across optimisers.
``--video`` optimises every frame of a video with a temporal loss (:mod:`fastnst.optimize_video`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from fastnst import CONF_DIR
from fastnst.devices import pick_device
from fastnst.errors import UserError, run_command
from fastnst.export import read_info
from fastnst.files import atomic_write
from fastnst.flow import FLOW_METHODS
from fastnst.images import load_image, resize_long_side, tensor_to_pil
from fastnst.losses import (
    PerceptualLoss,
    content_loss,
    short_term_temporal_loss,
    style_loss,
    total_variation_loss,
)

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
VIDEO_INITS = ("warped", "frame")
# Ruder et al.'s γ in this project's units: see docs/VIDEO.md, "Video by optimisation".
DEFAULT_TEMPORAL_WEIGHT = 36.0
# Step sizes for pixels in [0, 1]: L-BFGS scales its own steps; Adam moves each pixel by
# about lr per step, and 0.02 (5 grey levels) converges in a few hundred steps without ringing.
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
LOSS_CONF_DIR = CONF_DIR / "loss"
DEFAULT_LOSS_FILE = LOSS_CONF_DIR / "default.yaml"


def _loss_choices() -> str:
    names = ", ".join(sorted(path.stem for path in LOSS_CONF_DIR.glob("*.yaml")))
    return f"a packaged loss config ({names}), a .yaml file or a model file"


StepCallback = Callable[[int, torch.Tensor], None]


@dataclass(frozen=True)
class TemporalTarget:
    """The previous frame's result lined up with this frame (``warped``), where that can be
    trusted (``trusted``, ``[1, 1, H, W]``), and the weight of Ruder et al.'s short-term loss."""

    warped: torch.Tensor
    trusted: torch.Tensor
    weight: float


@dataclass
class OptimizationResult:
    """The final image and the loss of the image after each number of steps (0 … steps)."""

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)


def load_loss_settings(source: str | Path | None = None) -> dict[str, Any]:
    """``PerceptualLoss`` keyword arguments from a model file (its training settings), a loss
    config file, or the name of a packaged one (``post_conv``: fastnst/conf/loss/post_conv.yaml);
    ``defaults`` entries are merged like Hydra does."""
    path = Path(source) if source else DEFAULT_LOSS_FILE
    if not path.suffix and len(path.parts) == 1 and (LOSS_CONF_DIR / f"{path}.yaml").is_file():
        path = LOSS_CONF_DIR / f"{path}.yaml"
    if path.suffix == ".safetensors":
        info, _ = read_info(path)
        if not info.loss:
            raise UserError(f"{path} stores no loss settings; pass --loss with {_loss_choices()}")
        return dict(info.loss)
    if not path.is_file():
        raise UserError(f"loss settings not found: {path} (pass --loss with {_loss_choices()})")
    import yaml  # training-side dependency (Hydra's); optimisation is not the inference path

    raw = yaml.safe_load(path.read_text()) or {}
    merged: dict[str, Any] = {}
    for entry in raw.pop("defaults", []):
        if entry != "_self_":
            merged.update(load_loss_settings(path.with_name(f"{entry}.yaml")))
    merged.update(raw)
    return merged


class GatysObjective:
    """``PerceptualLoss`` for one fixed photo and one style: the photo's VGG features are
    computed once, not on every step. ``style_mix`` ``[1, num_styles]`` picks the loss's
    style target (default: its only one); ``temporal`` adds the short-term video loss."""

    def __init__(
        self,
        loss_fn: PerceptualLoss,
        content: torch.Tensor,
        style_mix: torch.Tensor | None = None,
        temporal: TemporalTarget | None = None,
    ) -> None:
        self.loss_fn = loss_fn
        self.temporal = temporal
        with torch.no_grad():
            self.content_targets = loss_fn.vgg(content)
        mix = torch.ones(1, 1) if style_mix is None else style_mix.reshape(1, -1).float()
        self.mix = mix.to(content.device)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        fn = self.loss_fn
        feats = fn.vgg(image)
        c_total, _ = content_loss(feats, self.content_targets, fn.content_layers)
        s_total, _ = style_loss(
            feats, fn.target_grams(), fn.style_layers, self.mix, fn.style_coefficients,
            fn.style_stat,
        )
        tv_total, _ = total_variation_loss(image)
        total = fn.content_weight * c_total + fn.style_weight * s_total + fn.tv_weight * tv_total
        parts = {"content": c_total.item(), "style": s_total.item(), "tv": tv_total.item()}
        if self.temporal is not None:
            t_total, _ = short_term_temporal_loss(
                image, self.temporal.warped, self.temporal.trusted
            )
            total = total + self.temporal.weight * t_total
            parts["temporal"] = t_total.item()
        return total, {"total": total.item(), **parts}


def build_loss(
    settings: Mapping[str, Any], style_images: list[torch.Tensor], device: torch.device
) -> PerceptualLoss:
    """The loss network with one style target: the mean Gram of ``style_images``."""
    loss_fn = PerceptualLoss(**settings).to(device)
    loss_fn.set_style_targets([style_images])
    return loss_fn


def gatys(
    content: torch.Tensor,
    loss_fn: PerceptualLoss,
    steps: int,
    optimizer: str = "lbfgs",
    init: str = "content",
    lr: float | None = None,
    seed: int = 0,
    style_mix: torch.Tensor | None = None,
    on_step: StepCallback | None = None,
    progress: bool = True,
    start: torch.Tensor | None = None,
    temporal: TemporalTarget | None = None,
) -> OptimizationResult:
    """Optimise an image (``[1, 3, H, W]`` in [0, 1]) for ``steps`` loss evaluations.

    ``on_step(k, image)`` is called with the image after ``k`` steps, for k = 1 … steps.
    Pixels are clamped to [0, 1] after each step, so every recorded loss is that of a
    saveable image. ``style_mix`` picks the style of a multi-style loss (a one-hot row).
    ``start`` replaces ``init`` with a given first image (a video's warped previous result);
    ``temporal`` adds the short-term video loss.
    """
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {optimizer!r}; use {' or '.join(OPTIMIZERS)}")
    if init not in INITS:
        raise UserError(f"unknown init {init!r}; use {' or '.join(INITS)}")
    if steps < 1:
        raise UserError("--steps must be at least 1")
    objective = GatysObjective(loss_fn, content, style_mix, temporal)
    if start is not None:
        start = start.detach().clone(memory_format=torch.contiguous_format)
    elif init == "content":
        # Contiguous: a photo read at its own size is a strided view of the decoded HWC
        # array, and L-BFGS flattens the gradient with .view().
        start = content.detach().clone(memory_format=torch.contiguous_format)
    else:
        noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed))
        start = noise.to(content.device)
    image = start.requires_grad_(True)
    step_size = DEFAULT_LR[optimizer] if lr is None else lr
    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [image], lr=step_size, max_iter=1, history_size=50
        )
    else:
        opt = torch.optim.Adam([image], lr=step_size)
    history: list[dict[str, float]] = []

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        total, parts = objective(image)
        total.backward()
        history.append({"step": float(len(history)), **parts})
        return total

    bar = tqdm(range(1, steps + 1), desc="optimising", unit="step", disable=not progress)
    for step in bar:
        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
        bar.set_postfix(loss=f"{history[-1]['total']:.4g}")
        if on_step is not None:
            on_step(step, image.detach())
    with torch.no_grad():
        _, parts = objective(image)
    history.append({"step": float(steps), **parts})
    return OptimizationResult(image=image.detach(), history=history)


def save_image(image: torch.Tensor, path: Path) -> None:
    """Write atomically, in the format the suffix names."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    pil = tensor_to_pil(image)
    atomic_write(path, lambda tmp: pil.save(tmp, format=fmt, quality=95))


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
    parser.add_argument(
        "--loss", default=None, help=f"{_loss_choices()} (default: default)"
    )
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
        from fastnst import optimize_video

        return optimize_video.run(args, loss_fn, device)
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


if __name__ == "__main__":
    from fastnst.cli import main as cli_main

    sys.exit(cli_main(["optimize", *sys.argv[1:]]))
