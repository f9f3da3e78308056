"""Consecutive frames: optical flow between them (:mod:`.flow`), warping by a flow field
(:mod:`.warp`), the masks that say where a warped frame can be trusted (:mod:`.masks`:
occlusions, motion boundaries, pixels that left the frame), the temporal losses
(:mod:`.losses`), the flicker metric (:mod:`.metrics`) and the frame pairs the temporal
stage trains on (:mod:`.pairs`). Plain torch, no Lightning: training
(:mod:`fastnst.training.temporal`), optimisation (:mod:`fastnst.optimize.video`), the
runtime's blend (:mod:`fastnst.infer.temporal_blend`) and ``fastnst eval-video`` use it.

Convention everywhere: ``flow`` is ``[N, 2, H, W]`` in pixels, channel 0 horizontal (x),
channel 1 vertical (y). The *backward* flow of frame ``t`` says, for each of its pixels,
where that point was in frame ``t-1``: ``I_t(p) ≈ I_{t-1}(p + flow(p))``, so
``warp(I_{t-1}, flow)`` lines the previous frame up with the current one.
"""
