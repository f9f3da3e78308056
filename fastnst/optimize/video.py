"""Video by pixel optimisation (Ruder, Dosovitskiy and Brox 2016), built on
:mod:`fastnst.optimize.gatys`.

Each frame is a Gatys optimisation (same loss, same L-BFGS steps as ``fastnst optimize``)
that starts from the previous *result* moved along the backward optical flow, with the
current frame itself where the previous one shows nothing (occluded or newly entered).
Ruder et al.'s short-term temporal loss, masked by the Sundaram et al. tests of
:mod:`fastnst.video.masks`, pulls each result towards that warped start where the flow can
be trusted, so the texture stays on the objects instead of boiling from frame to frame.

    fastnst optimize --video clip.mp4 --style art.jpg --output out.mp4 --size 256 \\
        --steps 80 --frame-steps 30 --temporal-weight 36

Frames are optimised at ``--size`` (long side) and written at that size; frame rate,
timestamps and audio are the source's (``fastnst.infer.video``), and the file appears only
once complete.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastnst.errors import UserError
from fastnst.images import long_side_shape, resize_long_side
from fastnst.losses import PerceptualLoss
from fastnst.optimize.gatys import TemporalTarget, gatys
from fastnst.video.flow import FLOW_METHODS, estimate_flow
from fastnst.video.masks import motion_boundary_mask, occlusion_mask
from fastnst.video.warp import inside_mask, warp

VIDEO_INITS = ("warped", "frame")
# Ruder et al.'s γ in this project's units: see docs/VIDEO.md, "Video by optimisation".
DEFAULT_TEMPORAL_WEIGHT = 36.0


@dataclass(frozen=True)
class FrameMotion:
    """Backward flow of frame t (``t -> t-1``), where frame t-1 shows the same point
    (``visible``: not occluded, not outside) and where the warped result may be held to
    (``trusted``: visible and off motion boundaries, ``fastnst.video.masks.consistency_mask``)."""

    flow: torch.Tensor
    visible: torch.Tensor
    trusted: torch.Tensor


def frame_motion(previous: torch.Tensor, current: torch.Tensor, method: str = "dis") -> FrameMotion:
    """Flow and masks between two ``[1, 3, H, W]`` frames, from the frames themselves."""
    backward = estimate_flow(current, previous, method)
    forward = estimate_flow(previous, current, method)
    visible = (1 - occlusion_mask(backward, forward)) * inside_mask(backward)
    trusted = visible * (1 - motion_boundary_mask(backward))
    return FrameMotion(backward, visible, trusted)


def warped_start(
    previous_result: torch.Tensor, frame: torch.Tensor, motion: FrameMotion
) -> torch.Tensor:
    """Ruder et al.'s initialisation: the previous result warped into frame t where frame
    t-1 saw the point, the current frame itself in new and occluded regions."""
    warped = warp(previous_result, motion.flow)
    return torch.lerp(frame, warped, motion.visible.to(frame.dtype))


@dataclass(frozen=True)
class VideoSettings:
    """Steps for the first frame and for every later one (Ruder et al. give later frames
    fewer: they start close to their answer), the temporal weight, and the start."""

    first_steps: int
    frame_steps: int
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT
    init: str = "warped"
    size: int = 512
    flow: str = "dis"
    optimizer: str = "lbfgs"
    lr: float | None = None
    first_init: str = "content"  # frame 1 starts like an image: the frame itself or noise
    seed: int = 0

    def check(self) -> None:
        if self.first_steps < 1 or self.frame_steps < 1:
            raise UserError("--steps and --frame-steps must be at least 1")
        weight = self.temporal_weight
        if not weight >= 0 or weight == float("inf"):
            raise UserError(f"--temporal-weight must be finite and >= 0, got {weight}")
        if self.init not in VIDEO_INITS:
            raise UserError(f"unknown video init {self.init!r}; use {' or '.join(VIDEO_INITS)}")
        if self.flow not in FLOW_METHODS:
            raise UserError(f"unknown flow method {self.flow!r}; use {', '.join(FLOW_METHODS)}")


@dataclass
class VideoOptimizer:
    """Called by the video writer with consecutive batches of frames, in order; returns
    each frame's optimised result at ``settings.size``. Keeps the last frame and result,
    and each frame's final losses (``losses``)."""

    loss_fn: PerceptualLoss
    settings: VideoSettings
    losses: list[dict[str, float]] = field(default_factory=list)
    previous_frame: torch.Tensor | None = None
    previous_result: torch.Tensor | None = None

    def optimise_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """One ``[1, 3, H, W]`` frame at working size → its result."""
        settings, start, temporal = self.settings, None, None
        steps = settings.first_steps
        if self.previous_result is not None and self.previous_frame is not None:
            steps = settings.frame_steps
            motion = frame_motion(self.previous_frame, frame, settings.flow)
            start = frame
            if settings.init == "warped":
                start = warped_start(self.previous_result, frame, motion)
            if settings.temporal_weight > 0:
                temporal = TemporalTarget(
                    warp(self.previous_result, motion.flow),
                    motion.trusted,
                    settings.temporal_weight,
                )
        result = gatys(
            frame,
            self.loss_fn,
            steps,
            optimizer=settings.optimizer,
            init=settings.first_init,
            lr=settings.lr,
            seed=settings.seed,
            progress=False,
            start=start,
            temporal=temporal,
        )
        self.losses.append(result.history[-1])
        self.previous_frame, self.previous_result = frame, result.image
        return result.image

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        small = resize_long_side(frames.float(), self.settings.size)
        return torch.cat([self.optimise_frame(frame[None]) for frame in small])


def summary(losses: list[dict[str, float]], seconds: float) -> str:
    """One line: how many frames, their mean final losses, the time per frame."""

    def mean(key: str) -> float:
        values = [entry[key] for entry in losses if key in entry]
        return statistics.fmean(values) if values else float("nan")

    return (
        f"{len(losses)} frames: mean style {mean('style'):.4g}, content {mean('content'):.4g}, "
        f"temporal {mean('temporal'):.4g} (frames 2+), {seconds / max(len(losses), 1):.1f} s/frame"
    )


def run(args: argparse.Namespace, loss_fn: PerceptualLoss, device: torch.device) -> Path:
    """``fastnst optimize --video``: optimise every frame of ``args.video`` into ``args.output``."""
    from fastnst.infer.video import open_video, output_format, stylize_video

    output = Path(args.output)
    output_format(output)
    settings = VideoSettings(
        first_steps=args.steps,
        frame_steps=args.frame_steps or max(1, args.steps // 2),
        temporal_weight=args.temporal_weight,
        init=args.video_init,
        size=args.size,
        flow=args.flow,
        optimizer=args.optimizer,
        lr=args.lr,
        first_init=args.init,
        seed=args.seed,
    )
    settings.check()
    if args.max_frames < 0:
        raise UserError("--max-frames must be >= 0")
    with open_video(Path(args.video)) as container:
        context = container.streams.video[0].codec_context
        height, width = long_side_shape(context.height, context.width, settings.size)
    optimizer = VideoOptimizer(loss_fn, settings)
    began = time.perf_counter()
    stylize_video(
        Path(args.video),
        output,
        optimizer,
        device,
        batch_size=1,
        show_progress=not args.quiet,
        max_frames=args.max_frames,
        frame_size=(width, height),
    )
    print(summary(optimizer.losses, time.perf_counter() - began))
    return output
