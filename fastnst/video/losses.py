"""Losses between consecutive results: how much a stylized frame disagrees with the previous
one moved along the flow, where the flow can be trusted. Ruder et al. 2016's short-term loss
drives video by optimisation (:mod:`fastnst.optimize.video`); ReCoNet's (Gao et al. 2018)
output- and feature-level losses drive the temporal training stage
(:mod:`fastnst.training.temporal`). Every term is computed in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastnst.losses import LossParts
from fastnst.video.warp import downscale_flow, warp


def short_term_temporal_loss(
    images: torch.Tensor, warped_previous: torch.Tensor, trusted: torch.Tensor
) -> tuple[torch.Tensor, LossParts]:
    """Ruder et al. 2016's short-term loss: 1/D Σ c·(x − ω)², D = pixels × channels.

    ``warped_previous`` (ω) is the previous result moved along the flow, ``trusted`` (c,
    ``[N, 1, H, W]``) is 0 where it cannot be trusted (occlusion, motion boundary, outside).
    Dividing by all D, not by the trusted count, keeps one weight meaning the same for a
    frame with much occlusion and one with none."""
    diff = (images.float() - warped_previous.float()).pow(2)
    total = (trusted.float() * diff).sum() / diff.numel()
    return total, {"temporal": total}


# Rec. 709 relative luminance, ReCoNet's measure of the input's own brightness change.
LUMA = (0.2126, 0.7152, 0.0722)


def luminance(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def output_temporal_loss(
    out_previous: torch.Tensor,
    out_current: torch.Tensor,
    in_previous: torch.Tensor,
    in_current: torch.Tensor,
    flow: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Masked ‖(O_t − W(O_{t−1})) − (Y(I_t) − Y(W(I_{t−1})))‖² per trusted pixel (ReCoNet):
    the output may change only as much as the input's luminance does along the motion.
    Computed in fp32: bf16 sampling positions would be off by whole pixels."""
    out_previous, out_current = out_previous.float(), out_current.float()
    out_change = out_current - warp(out_previous, flow)
    in_change = luminance(in_current) - luminance(warp(in_previous, flow))
    per_pixel = (out_change - in_change).pow(2).sum(1, keepdim=True)
    return ((mask * per_pixel).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1.0)).mean()


def feature_temporal_loss(
    feat_previous: torch.Tensor, feat_current: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Masked mean squared difference of encoder features after warping at their own scale;
    a feature cell is trusted only if every pixel it covers is. Computed in fp32."""
    feat_previous, feat_current = feat_previous.float(), feat_current.float()
    size = tuple(feat_current.shape[-2:])
    small_flow = downscale_flow(flow.float(), size)
    small_mask = 1 - F.adaptive_max_pool2d(1 - mask.float(), size)
    per_cell = (feat_current - warp(feat_previous, small_flow)).pow(2).mean(1, keepdim=True)
    return (
        (small_mask * per_cell).sum((1, 2, 3)) / small_mask.sum((1, 2, 3)).clamp_min(1.0)
    ).mean()
