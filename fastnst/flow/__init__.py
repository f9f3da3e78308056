"""Optical flow between frames, warping by a flow field, and the masks that say where a
warped frame can be trusted (occlusions, motion boundaries, pixels that left the frame).

Convention everywhere: ``flow`` is ``[N, 2, H, W]`` in pixels, channel 0 horizontal (x),
channel 1 vertical (y). The *backward* flow of frame ``t`` says, for each of its pixels,
where that point was in frame ``t-1``: ``I_t(p) ≈ I_{t-1}(p + flow(p))``, so
``warp(I_{t-1}, flow)`` lines the previous frame up with the current one.
"""

from fastnst.flow.estimate import FLOW_METHODS, estimate_flow, flow_pair
from fastnst.flow.masks import consistency_mask, motion_boundary_mask, occlusion_mask
from fastnst.flow.warp import downscale_flow, inside_mask, pixel_grid, sample_at, warp

__all__ = [
    "FLOW_METHODS",
    "consistency_mask",
    "downscale_flow",
    "estimate_flow",
    "flow_pair",
    "inside_mask",
    "motion_boundary_mask",
    "occlusion_mask",
    "pixel_grid",
    "sample_at",
    "warp",
]
