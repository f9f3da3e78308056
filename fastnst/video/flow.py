"""Dense optical flow with OpenCV: DIS (fast, the default) or Farnebäck.

OpenCV is imported on first use: it is a training/evaluation dependency
(``pip install 'fastnst[data]'``), never needed for inference.
"""

from __future__ import annotations

import numpy as np
import torch

from fastnst.errors import UserError
from fastnst.video.masks import consistency_mask

FLOW_METHODS = ("dis", "farneback")


def opencv():
    """OpenCV, or a user error naming the extra that brings it."""
    try:
        import cv2
    except ImportError as exc:
        raise UserError(
            "optical flow needs OpenCV: pip install opencv-python-headless (fastnst[data])"
        ) from exc
    return cv2


def _gray(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` RGB in [0, 1] → uint8 luma ``[H, W]`` (what OpenCV's flow takes)."""
    rgb = image.detach().float().clamp(0, 1).cpu()
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return luma.mul(255).round().to(torch.uint8).numpy()


def estimate_flow(source: torch.Tensor, target: torch.Tensor, method: str = "dis") -> torch.Tensor:
    """Flow from each pixel of ``source`` to its match in ``target``: ``[N, 2, H, W]``.

    ``source``/``target`` are ``[N, 3, H, W]`` RGB in [0, 1]; ``target(p + flow(p)) ≈
    source(p)``. For the backward flow of frame t, pass ``(frame_t, frame_{t-1})``.
    """
    if method not in FLOW_METHODS:
        raise UserError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    if source.shape != target.shape or source.dim() != 4:
        raise ValueError(f"frames differ in shape: {tuple(source.shape)} vs {tuple(target.shape)}")
    cv2 = opencv()
    if method == "dis":
        solver = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flows = []
    for a, b in zip(source, target, strict=True):
        gray_a, gray_b = _gray(a), _gray(b)
        if method == "dis":
            field = solver.calc(gray_a, gray_b, None)
        else:
            field = cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, 0.5, 4, 21, 5, 7, 1.5, 0)
        flows.append(torch.from_numpy(field).permute(2, 0, 1))
    return torch.stack(flows).to(source.device)


def flow_pair(
    previous: torch.Tensor, current: torch.Tensor, method: str = "dis"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward flow ``current -> previous`` and its trust mask (both ``[N, *, H, W]``)."""
    backward = estimate_flow(current, previous, method)
    forward = estimate_flow(previous, current, method)
    return backward, consistency_mask(backward, forward)
