"""Strokes glued to the scene (``--blend-kind glue``): the previous output moved along the
flow and kept *whole* where it still fits, the fresh output everywhere else.

Every other blend averages two paintings of a frame, and an average of two differently
painted frames has less contrast than either: the strokes calm down, and the style goes with
them (docs/VIDEO.md, "Carrying the network's features"). Kept whole, a glued stroke is one
painting, as crisp as the frame that painted it; the cost is knowing when it no longer fits.
A pixel is repainted (takes the fresh output) when

- the flow is not trusted there (newly visible, a motion boundary: as every blend);
- the flow has magnified or shrunk it by more than :data:`GLUE_STRETCH` (log area) since it
  was painted: strokes glued to an approaching object grow with it, where the network paints
  them at one size;
- the photo under it has changed by more than ``tolerance`` since it was painted: the photo
  it was painted from travels with it, so a lamp, a slow fade or a flow that drifted off
  (a chain of moves along a shear) all show up, however slowly they came.

Each repaint is whole at once, never a mix. NumPy and OpenCV only (both backends).
"""

from __future__ import annotations

import numpy as np

from fastnst.runtime.flow import FlowFn, opencv, warp

# The log area change at which a glued pixel is repainted. A study's choice (tools/
# feature_carry.py, ``rgb:1:0.5h``): the per-frame look came back on an approaching cockatoo
# while the glue kept its flicker gain (docs/VIDEO.md).
GLUE_STRETCH = 0.5

# The photo's change under a glued pixel is its channel mean averaged over a box this wide:
# sensor and codec noise (about 0.01 per pixel) does not count, an edge that moved does.
CHANGE_BOX = 5


def area_change(flow: np.ndarray) -> np.ndarray:
    """``[H, W]``: the log of how much the backward ``flow`` (``[2, H, W]``) magnifies each
    pixel of the previous frame (minus the log of its Jacobian's determinant): above 0 where
    the scene grows."""
    du_dy, du_dx = np.gradient(flow[0])
    dv_dy, dv_dx = np.gradient(flow[1])
    area = (1 + du_dx) * (1 + dv_dy) - du_dy * dv_dx
    return -np.log(np.maximum(area, 1e-3)).astype(np.float32)


def photo_change(photo: np.ndarray, painted_from: np.ndarray) -> np.ndarray:
    """``[H, W]``: how far ``photo`` is from ``painted_from`` (both ``[3, H, W]``): the
    channels' mean absolute difference, averaged over a :data:`CHANGE_BOX` box."""
    cv2 = opencv()
    difference = np.abs(photo - painted_from).mean(0)
    return cv2.blur(difference, (CHANGE_BOX, CHANGE_BOX), borderType=cv2.BORDER_REPLICATE)


class Glue:
    """One video's glued output. Call with each ``(photo, fresh)`` in order (float32
    ``[3, H, W]``, the network's output for ``photo``); returns what is shown. ``tolerance``:
    how much the photo under a glued pixel may change before it is repainted (0 to 1; larger
    keeps strokes longer); ``flows(previous, current)`` gives the backward flow ``[2, H, W]``
    and its trust mask ``[H, W]`` (0 or 1)."""

    def __init__(self, tolerance: float, flows: FlowFn) -> None:
        self.tolerance, self.flows = tolerance, flows
        self.previous_photo: np.ndarray | None = None
        self.glued: np.ndarray | None = None  # what was shown last
        self.painted_from: np.ndarray | None = None  # the photo each shown pixel was painted on
        self.stretch: np.ndarray | None = None  # [H, W] log area change since it was painted

    def start(self, photo: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        self.glued, self.painted_from = fresh, photo
        self.stretch = np.zeros(photo.shape[-2:], np.float32)
        return fresh

    def __call__(self, photo: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        previous, self.previous_photo = self.previous_photo, photo
        if previous is None or previous.shape != photo.shape or self.glued is None:
            return self.start(photo, fresh)
        assert self.painted_from is not None and self.stretch is not None
        flow, trusted = self.flows(previous, photo)
        moved = np.clip(warp(self.glued, flow, cubic=True), 0.0, 1.0)
        painted_from = warp(self.painted_from, flow, cubic=True)
        stretch = warp(self.stretch[None], flow)[0] + area_change(flow)
        keep = (
            (trusted > 0.5)
            & (np.abs(stretch) < GLUE_STRETCH)
            & (photo_change(photo, painted_from) <= self.tolerance)
        )
        self.glued = np.where(keep, moved, fresh)
        self.painted_from = np.where(keep, painted_from, photo)
        self.stretch = np.where(keep, stretch, np.float32(0))
        return self.glued
