"""Strokes glued to the scene (``--blend-kind glue``): the previous output moved along the
flow and kept *whole* where it still fits; where not, the detail blend.

Every other blend averages two paintings of a frame, and an average of two differently
painted frames has less contrast than either: the strokes calm down, and the style goes with
them (docs/VIDEO.md, "Carrying the network's features"). Kept whole, a glued stroke is one
painting, as crisp as the frame that painted it; the cost is knowing when it no longer fits.
The photo each shown pixel was painted from travels with it, and a pixel is repainted when

- the photo under it has changed by more than ``tolerance`` since it was painted: a flow that
  lines up the wrong thing (an occlusion, a chain of moves drifting off along a shear), a
  lamp or a slow fade all show up there, however slowly they came. This, not the flow's
  forward-backward check, is the test of trust: the check distrusts 13-19 % of every frame
  on our clips, and repainting all of that each frame cost the glue more flicker than it saved
  (docs/VIDEO.md, "Strokes glued to the scene");
- the map back to the frame it was painted on distorts it by more than :data:`GLUE_STRETCH`
  (:func:`distortion_of` the flows' Jacobians composed along the way, so that a distortion
  undone, or the flow's noise, does not add up): strokes glued to an approaching object grow
  with it, where the network paints them at one size, and a flow that smears a flat wall
  drags its strokes into streaks the photo cannot show;
- it comes from outside the previous frame (a pan's new edge).

The seam between kept and repainted pixels is feathered (:data:`GLUE_FEATHER`): where the flow
errs along thin lines (a textureless road, a flow boundary) a hard seam cut the kept strokes
into shards that the eye sees at once (docs/VIDEO.md).

A repainted pixel settles before it is glued again: it is repainted for :data:`GLUE_SETTLE`
more frames (the count moving with the scene). The repaint carries part of the old paint so
that it is no jump, and glued straight after one repaint that part stayed for good: a
moving bird's eye, repainted once, was shown at 40 % and then carried faded.

A kept stroke is sampled from an *anchor*, not from the frame before: every
:data:`GLUE_ANCHOR` frames the shown frame becomes the anchor, and the pixels kept since are
sampled from it once, along the flows composed since (a map of positions, smooth, so its
bilinear moves cost nothing). Only pixels repainted since the last anchor are moved on from
the frame before. Each move of a stroke changes it (bicubic lifted strokes about 6 px across
by up to 2.9 % a move, bilinear blurs them): moved 60 times along a pan they turned into a
coloured hatch; with the anchor a stroke is resampled once every :data:`GLUE_ANCHOR`
frames, each sample clamped to its four neighbours' range
(:func:`fastnst.runtime.flow.clamped_cubic`).

What is repainted is shown as the caller says (the default detail blend of
:mod:`fastnst.infer.temporal_blend`; the fresh output where the flow is not trusted), and is
glued from then on. NumPy and OpenCV only (both backends).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fastnst.runtime.arrays import gaussian_blur
from fastnst.runtime.flow import FlowFn, opencv, positions, warp

# The distortion (the larger |log singular value|) of the map back to the painted frame at
# which a glued pixel is repainted. Chosen in a study on the log area change
# (tools/feature_carry.py, ``rgb:1:0.5h``: the per-frame look came back on an approaching
# cockatoo while the glue kept its flicker gain) and kept, not re-tuned, when the distortion
# replaced the area and then the composed map replaced the summed one (docs/VIDEO.md).
GLUE_STRETCH = 0.5

# The photo's change under a glued pixel is its channel mean averaged over a box this wide:
# sensor and codec noise (about 0.01 per pixel) does not count, an edge that moved does.
CHANGE_BOX = 5


# The seam between kept and repainted pixels: the keep mask blurred by a Gaussian of this
# sigma (px) weighs the moved output against the repainted one. A hard seam cut the strokes on
# bikes' road into shards along the flow's error lines; 1.5 px reads as paint there and on
# cockatoo, 3 px as a blur (docs/VIDEO.md, "A feathered seam").
GLUE_FEATHER = 1.5

# The frames a repainted pixel is repainted again before it is glued: with the default
# repaint (the detail blend carrying 0.6 of the old paint) 0.6 ** 5 = 8 % of a stroke that
# no longer fitted is left, where one repaint left 60 %. On cockatoo 2 kept the beak's shape,
# 4 the moving eyes too, for +25-45 % of the glue's flicker under the judge (still a third to
# a half of the detail blend's on three clips; docs/VIDEO.md, "A repaint that settles").
GLUE_SETTLE = 4


# The frames between anchors: a kept stroke is resampled once per anchor rather than once a
# frame (docs/VIDEO.md, "The glue's ringing"). A new anchor costs nothing (the shown frame is
# taken as it is); a pixel repainted between two anchors is moved from the frame before until
# the next one.
GLUE_ANCHOR = 8


def flow_jacobian(flow: np.ndarray) -> np.ndarray:
    """``[4, H, W]``: the Jacobian of the backward ``flow``'s map ``p -> p + flow(p)``
    (``[2, H, W]``) at each pixel, row-major ``[[a, b], [c, d]]``."""
    du_dy, du_dx = np.gradient(flow[0])
    dv_dy, dv_dx = np.gradient(flow[1])
    return np.stack([1 + du_dx, du_dy, dv_dx, 1 + dv_dy]).astype(np.float32)


def compose(carried: np.ndarray, local: np.ndarray) -> np.ndarray:
    """``[4, H, W]``: the map to the frame a pixel was painted on, ``carried`` (already moved
    along the flow) after this frame's ``local`` one: the matrix product per pixel."""
    a, b, c, d = carried
    e, f, g, h = local
    return np.stack([a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h])


def distortion_of(jacobian: np.ndarray) -> np.ndarray:
    """``[H, W]``: how much a map with this ``jacobian`` (``[4, H, W]``) distorts each pixel,
    the larger absolute log of its two singular values: a zoom, a stretch along one axis and
    a shear all count (a glued stroke smeared along the motion keeps its area)."""
    a, b, c, d = jacobian
    rotation_part = np.hypot((a + d) / 2, (c - b) / 2)
    stretch_part = np.hypot((a - d) / 2, (c + b) / 2)
    largest = np.maximum(rotation_part + stretch_part, 1e-3)
    smallest = np.maximum(np.abs(rotation_part - stretch_part), 1e-3)
    return np.maximum(np.abs(np.log(largest)), np.abs(np.log(smallest))).astype(np.float32)


def inside(flow: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: where ``p + flow(p)`` lies inside the previous frame (elsewhere a
    warp can only repeat its border)."""
    height, width = flow.shape[-2:]
    xs, ys = positions(flow)
    return (xs >= 0) & (xs <= width - 1) & (ys >= 0) & (ys <= height - 1)


def photo_change(photo: np.ndarray, painted_from: np.ndarray) -> np.ndarray:
    """``[H, W]``: how far ``photo`` is from ``painted_from`` (both ``[3, H, W]``): the
    channels' mean absolute difference, averaged over a :data:`CHANGE_BOX` box."""
    cv2 = opencv()
    difference = np.abs(photo - painted_from).mean(0)
    return cv2.blur(difference, (CHANGE_BOX, CHANGE_BOX), borderType=cv2.BORDER_REPLICATE)


def feathered(keep: np.ndarray, inside_frame: np.ndarray) -> np.ndarray:
    """``[H, W]`` float32: the moved output's share of each shown pixel, ``keep`` (bool)
    blurred across the seam by :data:`GLUE_FEATHER`; nothing where the moved output came from
    outside the previous frame (a repeated border, never a stroke)."""
    return gaussian_blur(keep.astype(np.float32), GLUE_FEATHER) * inside_frame


def identity(size: tuple[int, ...]) -> np.ndarray:
    """``[4, H, W]``: the Jacobian of a pixel that has not moved since it was painted."""
    eye = np.array([1, 0, 0, 1], np.float32)[:, None, None]
    return np.ascontiguousarray(np.broadcast_to(eye, (4, *size)))


Blender = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class Glue:
    """One video's glued output. Call with each ``(photo, fresh)`` in order (float32
    ``[3, H, W]``, the network's output for ``photo``); returns what is shown. ``tolerance``:
    how much the photo under a glued pixel may change before it is repainted (0 to 1; larger
    keeps strokes longer); ``flows(previous, current)`` gives the backward flow ``[2, H, W]``
    and its trust mask ``[H, W]`` (0 or 1); ``repaint(carried, fresh, trusted)`` shows the
    repainted pixels (``[3, H, W]`` each, the mask ``[H, W]``)."""

    def __init__(self, tolerance: float, flows: FlowFn, repaint: Blender) -> None:
        self.tolerance, self.flows, self.repaint = tolerance, flows, repaint
        self.previous_photo: np.ndarray | None = None
        self.glued: np.ndarray | None = None  # what was shown last
        self.painted_from: np.ndarray | None = None  # the photo each shown pixel was painted on
        # [4, H, W]: the map from each shown pixel to the frame it was painted on (its Jacobian)
        self.deformation: np.ndarray | None = None
        self.kept: np.ndarray | None = None  # [H, W] bool: what the last frame kept glued
        self.settling: np.ndarray | None = None  # [H, W]: repaints each pixel has still to go
        self.anchor: tuple[np.ndarray, np.ndarray] | None = None  # shown and painted_from then
        self.since_anchor = 0  # the frames shown since the anchor was taken
        self.to_anchor: np.ndarray | None = None  # [2, H, W]: each pixel's position there
        self.anchored: np.ndarray | None = None  # [H, W] bool: shown as sampled from the anchor

    def start(self, photo: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        self.glued, self.painted_from = fresh, photo
        self.deformation = identity(photo.shape[-2:])
        self.kept = np.zeros(photo.shape[-2:], bool)
        self.settling = np.zeros(photo.shape[-2:], np.float32)
        self.take_anchor()
        return fresh

    def take_anchor(self) -> None:
        """The shown frame as it is becomes the anchor: every pixel is its own sample there."""
        assert self.glued is not None and self.painted_from is not None
        self.anchor = (self.glued, self.painted_from)
        self.since_anchor = 0
        self.to_anchor = np.zeros((2, *self.glued.shape[-2:]), np.float32)
        self.anchored = np.ones(self.glued.shape[-2:], bool)

    def moved_on(self, flow: np.ndarray) -> tuple[np.ndarray, ...]:
        """The per-pixel state moved along ``flow``; returns the shown frame and the photo
        each pixel was painted from, moved: sampled once from the anchor where the pixel has
        been kept since, moved on from the frame before elsewhere."""
        assert self.glued is not None and self.painted_from is not None
        assert self.anchor is not None and self.to_anchor is not None
        assert self.anchored is not None and self.settling is not None
        # The per-pixel state, moved in one warp: the displacements to the anchor, whether the
        # pixel was sampled from it, and the repaints it has still to go.
        state = np.concatenate([self.to_anchor, self.anchored[None], self.settling[None]])
        to_anchor, anchored, settling = np.split(warp(state.astype(np.float32), flow), [2, 3])
        self.to_anchor = to_anchor + flow
        self.anchored = anchored[0] > 0.999
        self.settling = np.rint(settling[0])
        self.since_anchor += 1
        pairs = [(self.anchor[0], self.glued), (self.anchor[1], self.painted_from)]
        if self.anchored.all():
            return tuple(warp(then, self.to_anchor, cubic=True) for then, _ in pairs)
        if not self.anchored.any():
            return tuple(warp(last, flow, cubic=True) for _, last in pairs)
        return tuple(
            np.where(
                self.anchored,
                warp(then, self.to_anchor, cubic=True),
                warp(last, flow, cubic=True),
            )
            for then, last in pairs
        )

    def __call__(self, photo: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        previous, self.previous_photo = self.previous_photo, photo
        if previous is None or previous.shape != photo.shape or self.glued is None:
            return self.start(photo, fresh)
        assert self.painted_from is not None and self.deformation is not None
        assert self.settling is not None
        flow, trusted = self.flows(previous, photo)
        moved, painted_from = self.moved_on(flow)
        deformation = compose(warp(self.deformation, flow), flow_jacobian(flow))
        inside_frame = inside(flow)
        settling = self.settling
        keep = (
            inside_frame
            & (settling <= 0)
            & (distortion_of(deformation) < GLUE_STRETCH)
            & (photo_change(photo, painted_from) <= self.tolerance)
        )
        repainted = self.repaint(moved, fresh, trusted)
        self.kept = keep
        share = feathered(keep, inside_frame)
        self.glued = repainted + share * (moved - repainted)
        self.anchored &= share > 0.999  # elsewhere what is shown is no longer the sample
        self.painted_from = np.where(keep, painted_from, photo)
        self.deformation = np.where(keep, deformation, identity(photo.shape[-2:]))
        left = np.where(settling > 0, settling - 1, GLUE_SETTLE)
        self.settling = np.where(keep, 0, left).astype(np.float32)
        if self.since_anchor >= GLUE_ANCHOR:
            self.take_anchor()
        return self.glued
