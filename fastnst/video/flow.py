"""Dense optical flow on tensors: OpenCV's DIS (fast, the default) or Farnebäck, through
:func:`fastnst.runtime.flow.flow_field` (the one place that calls OpenCV's solvers).

OpenCV is imported on first use (``pip install 'fastnst[video]'``, headless).
"""

from __future__ import annotations

import torch

from fastnst.runtime.flow import FLOW_METHODS, flow_field
from fastnst.video.masks import consistency_mask

__all__ = ["FLOW_METHODS", "estimate_flow", "flow_pair"]


def estimate_flow(source: torch.Tensor, target: torch.Tensor, method: str = "dis") -> torch.Tensor:
    """Flow from each pixel of ``source`` to its match in ``target``: ``[N, 2, H, W]``.

    ``source``/``target`` are ``[N, 3, H, W]`` RGB in [0, 1]; ``target(p + flow(p)) ≈
    source(p)``. For the backward flow of frame t, pass ``(frame_t, frame_{t-1})``.
    """
    if source.shape != target.shape or source.dim() != 4:
        raise ValueError(f"frames differ in shape: {tuple(source.shape)} vs {tuple(target.shape)}")
    sources, targets = (t.detach().float().cpu().numpy() for t in (source, target))
    flows = [
        torch.from_numpy(flow_field(a, b, method)) for a, b in zip(sources, targets, strict=True)
    ]
    return torch.stack(flows).to(source.device)


def flow_pair(
    previous: torch.Tensor, current: torch.Tensor, method: str = "dis"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward flow ``current -> previous`` and its trust mask (both ``[N, *, H, W]``)."""
    backward = estimate_flow(current, previous, method)
    forward = estimate_flow(previous, current, method)
    return backward, consistency_mask(backward, forward)
