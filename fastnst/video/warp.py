"""Backward warping with ``grid_sample``: pull each pixel from where the flow points."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_grid(
    h: int, w: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Each pixel's own position ``[H, W, 2]`` (x, y)."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack((xs, ys), dim=-1)


def _sample_positions(flow: torch.Tensor) -> torch.Tensor:
    """Absolute pixel positions ``p + flow(p)`` as ``[N, H, W, 2]`` (x, y)."""
    h, w = flow.shape[-2:]
    return pixel_grid(h, w, flow.device, flow.dtype).unsqueeze(0) + flow.permute(0, 2, 3, 1)


def sample_at(
    images: torch.Tensor, positions: torch.Tensor, mode: str = "bilinear"
) -> torch.Tensor:
    """``out(p) = images(positions(p))`` for absolute pixel positions ``[N, H', W', 2]`` (x, y).

    Pixel centres sit at integer positions (``align_corners=True``), so whole-pixel
    positions read pixels exactly, with no resampling blur; outside reads the border.
    """
    h, w = images.shape[-2:]
    scale = torch.tensor(
        [2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=images.device, dtype=images.dtype
    )
    grid = positions.to(images.dtype) * scale - 1.0
    return F.grid_sample(images, grid, mode=mode, padding_mode="border", align_corners=True)


def warp(images: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``out(p) = images(p + flow(p))``: frame ``t-1`` lined up with frame ``t``."""
    if images.shape[0] != flow.shape[0] or images.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and flow {tuple(flow.shape)} do not match")
    return sample_at(images, _sample_positions(flow.to(images.dtype)), mode)


def inside_mask(flow: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]``: 1 where ``p + flow(p)`` lands inside the other frame, else 0."""
    h, w = flow.shape[-2:]
    positions = _sample_positions(flow)
    x, y = positions[..., 0], positions[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return inside.unsqueeze(1).to(flow.dtype)


def downscale_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow for a feature map of ``size``: resampled, and its vectors scaled to the new grid."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    small = F.interpolate(flow, size=size, mode="bilinear", align_corners=True, antialias=True)
    sx = (size[1] - 1) / max(w - 1, 1)
    sy = (size[0] - 1) / max(h - 1, 1)
    return small * torch.tensor([sx, sy], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
