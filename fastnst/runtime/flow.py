"""Optical flow, warping and the flow's trust mask in NumPy and OpenCV, no torch: what
``--temporal-blend`` needs on the onnxruntime path (:mod:`fastnst.infer.temporal_blend`).

OpenCV's flow solvers are called here only (the torch helpers in :mod:`fastnst.video.flow`
wrap :func:`flow_field`). Conventions as in :mod:`fastnst.video`: a flow is ``[2, H, W]``
in pixels, x first; the backward flow of frame t satisfies ``I_t(p) ≈ I_{t-1}(p + flow(p))``.
The mask tests are those of :func:`fastnst.video.masks.consistency_mask` (the training
side's, on tensors); ``tests/test_temporal_blend.py`` checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastnst.errors import UserError

FLOW_METHODS = ("dis", "farneback")

# ``flows(previous, current)`` → the backward flow ``[2, H, W]`` and its trust mask ``[H, W]``
# (0 or 1), both at the frames' size (:class:`fastnst.infer.temporal_blend.LastFlow`).
FlowFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def opencv() -> Any:
    """OpenCV, or a user error naming the extra that brings it."""
    try:
        import cv2
    except ImportError as exc:
        raise UserError(
            "optical flow needs OpenCV: pip install 'fastnst[video]' (opencv-python-headless)"
        ) from exc
    return cv2


def luma_u8(image: np.ndarray) -> np.ndarray:
    """``[3, H, W]`` RGB in [0, 1] → uint8 luma ``[H, W]`` (what OpenCV's flow takes)."""
    rgb = np.clip(np.asarray(image, np.float32), 0, 1)
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return np.round(luma * np.float32(255)).astype(np.uint8)


def flow_field(source: np.ndarray, target: np.ndarray, method: str = "dis") -> np.ndarray:
    """Flow ``[2, H, W]`` from each pixel of ``source`` to its match in ``target`` (both
    ``[3, H, W]`` RGB in [0, 1]): ``target(p + flow(p)) ≈ source(p)``."""
    if method not in FLOW_METHODS:
        raise UserError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    cv2 = opencv()
    gray_a, gray_b = luma_u8(source), luma_u8(target)
    if method == "dis":
        solver = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        field = solver.calc(gray_a, gray_b, None)
    else:
        field = cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, 0.5, 4, 21, 5, 7, 1.5, 0)
    return np.ascontiguousarray(field.transpose(2, 0, 1))


def positions(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute positions ``p + flow(p)``: x and y maps ``[H, W]`` (float32)."""
    h, w = flow.shape[-2:]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[1]
    return xs.astype(np.float32), ys.astype(np.float32)


def warp(images: np.ndarray, flow: np.ndarray, cubic: bool = False) -> np.ndarray:
    """``out(p) = images(p + flow(p))`` for ``[C, H, W]`` float32 (C at most 4), bilinear
    (as :func:`fastnst.video.warp.warp`) or sharper (``cubic``: :func:`clamped_cubic`, for
    chains of moves), the border repeated outside."""
    cv2 = opencv()
    xs, ys = positions(flow)
    planes = np.ascontiguousarray(images.transpose(1, 2, 0), dtype=np.float32)
    if cubic:
        out = clamped_cubic(planes, xs, ys)
    else:
        out = cv2.remap(planes, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out.reshape(*out.shape[:2], -1).transpose(2, 0, 1))


def clamped_cubic(planes: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """OpenCV's bicubic sample of ``planes`` (``[H, W, C]``) at ``(xs, ys)``, clamped to the
    range of the four pixels around each position. A glued stroke is moved once a frame for
    as long as it is kept; bicubic alone lifts strokes about 6 px across by up to 2.9 % a
    sub-pixel move, and after 60 frames of a pan that band was 5.7x stronger: ringing, a
    hatch over the background. Clamped, no move can lift a value past its neighbours, and
    the strokes stay sharp where bilinear moves blur them away (docs/VIDEO.md, "The glue's
    ringing")."""
    cv2 = opencv()
    border = cv2.BORDER_REPLICATE
    sharp = cv2.remap(planes, xs, ys, cv2.INTER_CUBIC, borderMode=border)
    # Each pixel's 2x2 block to its lower right, read at the position's top-left pixel.
    block = np.ones((2, 2), np.uint8)
    low = cv2.erode(planes, block, anchor=(0, 0), borderType=border)
    high = cv2.dilate(planes, block, anchor=(0, 0), borderType=border)
    left, top = np.floor(xs), np.floor(ys)
    low = cv2.remap(low, left, top, cv2.INTER_NEAREST, borderMode=border)
    high = cv2.remap(high, left, top, cv2.INTER_NEAREST, borderMode=border)
    return np.clip(sharp, low, high).reshape(sharp.shape)


def trust_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """``[H, W]`` float32: 1 where ``warp(frame_{t-1}, backward)`` should equal frame t: not
    occluded (forward-backward check), off motion boundaries, pointing inside the frame
    (Sundaram et al. 2010; the thresholds of :mod:`fastnst.video.masks`)."""
    returned = warp(forward, backward)
    mismatch = np.square(returned + backward).sum(0)
    scale = np.square(returned).sum(0) + np.square(backward).sum(0)
    occluded = mismatch > 0.01 * scale + 0.5
    grad_sq = sum(np.square(np.gradient(backward, axis=axis)).sum(0) for axis in (1, 2))
    boundary = grad_sq > 0.01 * np.square(backward).sum(0) + 0.002
    h, w = backward.shape[-2:]
    xs, ys = positions(backward)
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    return (~occluded & ~boundary & inside).astype(np.float32)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow resampled to ``size`` (corners aligned, as
    :func:`fastnst.video.warp.downscale_flow`), its vectors scaled to the new grid."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    cv2 = opencv()
    sx, sy = (size[1] - 1) / max(w - 1, 1), (size[0] - 1) / max(h - 1, 1)
    # Inverse map: output pixel (x, y) reads the input at (x / sx, y / sy).
    matrix = np.array([[1 / sx if sx else 0, 0, 0], [0, 1 / sy if sy else 0, 0]], np.float64)
    planes = np.ascontiguousarray(flow.transpose(1, 2, 0), dtype=np.float32)
    big = cv2.warpAffine(
        planes,
        matrix,
        (size[1], size[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return big.transpose(2, 0, 1) * np.array([sx, sy], np.float32)[:, None, None]


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A ``[H, W]`` mask resampled bilinearly (pixel centres, as torch's ``interpolate``)."""
    if mask.shape == tuple(size):
        return mask
    cv2 = opencv()
    return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
