"""Losses between consecutive results: how much a stylized frame disagrees with the previous
one moved along the flow, where the flow can be trusted. Ruder et al. 2016's short-term loss
drives video by optimisation (:mod:`fastnst.optimize.video`); ReCoNet's (Gao et al. 2018)
output- and feature-level losses, Xu et al. 2021's frame-difference loss and the strokes'
placement term (:func:`shape_temporal_loss`) drive the temporal training stage
(:mod:`fastnst.training.temporal`), optionally weighted per style by the trace of its Gram
matrix (Gupta et al. 2017). Every term is computed in fp32.

The stage's losses take ``weights`` (``[N]``, one per pair, e.g. its style's weight from
:func:`style_trace_weights`): the batch mean becomes a weighted mean, so a busier style's
pairs count more.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from fastnst.images import gaussian_blur
from fastnst.losses import LossParts
from fastnst.video.warp import downscale_flow, warp

# What shape_temporal_loss calls the strokes: the detail under a Gaussian of this many px
# (as the inference blend's keep_detail), over its RMS in a Gaussian neighbourhood of
# SHAPE_ENERGY_SIGMA px; SHAPE_FLOOR keeps flat regions (no strokes) from being amplified.
SHAPE_SIGMA = 2.0
SHAPE_ENERGY_SIGMA = 6.0
SHAPE_FLOOR = 1e-3


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


def _trusted_mean(per_pixel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per pair (``[N]``): the mean of ``per_pixel`` (``[N, 1, H, W]``) over the trusted
    pixels of ``mask``."""
    return (mask * per_pixel).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1.0)


def _batch_mean(per_pair: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean over the pairs, each scaled by its weight (plain mean without weights)."""
    return per_pair.mean() if weights is None else (weights.float() * per_pair).mean()


def output_temporal_loss(
    out_previous: torch.Tensor,
    out_current: torch.Tensor,
    in_previous: torch.Tensor,
    in_current: torch.Tensor,
    flow: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Masked ‖(O_t − W(O_{t−1})) − (Y(I_t) − Y(W(I_{t−1})))‖² per trusted pixel (ReCoNet):
    the output may change only as much as the input's luminance does along the motion.
    Computed in fp32: bf16 sampling positions would be off by whole pixels."""
    out_previous, out_current = out_previous.float(), out_current.float()
    out_change = out_current - warp(out_previous, flow)
    in_change = luminance(in_current) - luminance(warp(in_previous, flow))
    per_pixel = (out_change - in_change).pow(2).sum(1, keepdim=True)
    return _batch_mean(_trusted_mean(per_pixel, mask), weights)


def feature_temporal_loss(
    feat_previous: torch.Tensor,
    feat_current: torch.Tensor,
    flow: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Masked mean squared difference of encoder features after warping at their own scale;
    a feature cell is trusted only if every pixel it covers is. Computed in fp32."""
    feat_previous, feat_current = feat_previous.float(), feat_current.float()
    size = tuple(feat_current.shape[-2:])
    small_flow = downscale_flow(flow.float(), size)
    small_mask = 1 - F.adaptive_max_pool2d(1 - mask.float(), size)
    per_cell = (feat_current - warp(feat_previous, small_flow)).pow(2).mean(1, keepdim=True)
    return _batch_mean(_trusted_mean(per_cell, small_mask), weights)


def frame_difference_loss(
    out_previous: torch.Tensor,
    out_current: torch.Tensor,
    in_previous: torch.Tensor,
    in_current: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Xu et al. 2021: ‖(O_t − O_{t−1}) − (I_t − I_{t−1})‖² per pixel (summed over RGB,
    mean over pixels). The output may change between frames only as the input does, in
    place, without flow: no flow error and no occlusion mask to get wrong, and a texture
    that changes where the photo does not (flicker on a still background) pays in full."""
    out_change = out_current.float() - out_previous.float()
    in_change = in_current.float() - in_previous.float()
    per_pair = (out_change - in_change).pow(2).sum(1).mean((1, 2))
    return _batch_mean(per_pair, weights)


def stroke_shape(images: torch.Tensor) -> torch.Tensor:
    """The strokes' placement without their contrast: the detail under a Gaussian of
    :data:`SHAPE_SIGMA` px over its local RMS (summed over channels, Gaussian neighbourhood
    of :data:`SHAPE_ENERGY_SIGMA` px)."""
    detail = images - gaussian_blur(images, SHAPE_SIGMA)
    energy = gaussian_blur(detail.pow(2).sum(1, keepdim=True), SHAPE_ENERGY_SIGMA)
    return detail / (energy + SHAPE_FLOOR).sqrt()


def shape_temporal_loss(
    out_previous: torch.Tensor,
    out_current: torch.Tensor,
    flow: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Masked ‖S(O_t) − S(W(O_{t−1}))‖² per trusted pixel, S = :func:`stroke_shape`: the
    output term asks consecutive frames to agree, and a network can answer it by painting
    fainter strokes (the style it loses is the frontier's curve); this term cannot be
    answered that way, only by putting the strokes where the previous frame had them. In
    fp32."""
    current = stroke_shape(out_current.float())
    carried = stroke_shape(warp(out_previous.float(), flow))
    per_pixel = (current - carried).pow(2).sum(1, keepdim=True)
    return _batch_mean(_trusted_mean(per_pixel, mask), weights)


def style_trace_weights(target_grams: Mapping[str, torch.Tensor], power: float) -> torch.Tensor:
    """One temporal weight per style (``[S]``, mean 1) from its Gram matrices' traces
    (Gupta et al. 2017: the larger the trace, the less stable the stylized video).

    Each layer's traces are divided by their mean over the styles (the layers' raw scales
    differ by orders of magnitude), averaged over the layers, raised to ``power`` (0: all
    1, 1: proportional) and scaled to mean 1, so the temporal weights keep their meaning
    on average and only move between styles."""
    per_layer = [grams.float().diagonal(dim1=1, dim2=2).sum(1) for grams in target_grams.values()]
    relative = torch.stack([t / t.mean().clamp_min(1e-12) for t in per_layer]).mean(0)
    weights = relative.clamp_min(1e-12).pow(power)
    return weights / weights.mean()
