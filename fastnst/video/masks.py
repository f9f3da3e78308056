"""Where a warped frame can be trusted: the forward-backward consistency test and the
motion-boundary test of Sundaram, Brox and Keutzer 2010 (the masks of Ruder et al. 2016)."""

from __future__ import annotations

import torch

from fastnst.video.warp import inside_mask, warp


def occlusion_mask(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]``: 1 where frame ``t``'s pixel is *occluded* in frame ``t-1``.

    ``backward`` is ``t -> t-1`` (ŵ), ``forward`` is ``t-1 -> t``. Following ŵ into frame
    ``t-1`` and the forward flow back (w̃ = forward warped by ŵ) must return to the start:
    occluded where |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5.
    """
    returned = warp(forward, backward)
    mismatch = (returned + backward).pow(2).sum(1, keepdim=True)
    scale = returned.pow(2).sum(1, keepdim=True) + backward.pow(2).sum(1, keepdim=True)
    return (mismatch > 0.01 * scale + 0.5).to(backward.dtype)


def motion_boundary_mask(backward: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]``: 1 on motion boundaries of ŵ = (u, v):
    |∇u|² + |∇v|² > 0.01 |ŵ|² + 0.002 (central differences, one-sided at the border)."""
    grad_sq = torch.zeros_like(backward[:, :1])
    for dim in (-1, -2):
        grad = torch.gradient(backward, dim=dim)[0]
        grad_sq = grad_sq + grad.pow(2).sum(1, keepdim=True)
    speed_sq = backward.pow(2).sum(1, keepdim=True)
    return (grad_sq > 0.01 * speed_sq + 0.002).to(backward.dtype)


def consistency_mask(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]``: 1 where ``warp(frame_{t-1}, backward)`` should equal frame ``t``:
    not occluded, not on a motion boundary, and pointing inside the previous frame."""
    trusted = (1 - occlusion_mask(backward, forward)) * (1 - motion_boundary_mask(backward))
    return trusted * inside_mask(backward)
