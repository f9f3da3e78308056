"""A relaxed style loss (ReReVST: Wang et al., TIP 2020), with the warps drawn once.

Why: a fixed style target asks every frame for the same texture statistics, so a frame that
moved a little must repaint its strokes to meet them again; that repainting is flicker. The
paper lets the target move: the style image is warped by the smooth flow that brings its
statistics nearest to the output's (a flow fitted to each output, 16 extra VGG passes a
step). Here each style's image gets ``warps`` smooth random warps when its targets are
computed, and each output is compared with the nearest of the original and its warped
copies: the same relaxation in kind, at no extra VGG pass a step (a 2-core CPU could not
afford sixteen).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from fastnst.video.warp import warp

# The coarse grid the random displacements are drawn on: 3 x 3 knots over the whole image
# make a flow that stretches and shears regions, never one that tears the texture.
KNOTS = 3


def smooth_flows(
    count: int, size: tuple[int, int], displacement: float, generator: torch.Generator
) -> torch.Tensor:
    """``[count, 2, H, W]`` smooth backward flows, each pixel moved by at most
    ``displacement`` pixels (bicubic between random knots, clipped)."""
    knots = torch.randn(count, 2, KNOTS, KNOTS, generator=generator) * (displacement / 2)
    flow = F.interpolate(knots, size=size, mode="bicubic", align_corners=True)
    return flow.clamp(-displacement, displacement)


def warped_copies(image: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    """``image`` ``[3, H, W]`` warped by each flow: ``[count, 3, H, W]``. Nearest-neighbour:
    a bilinear warp would blur the copies, and the relaxed loss would then accept blur."""
    copies = image.unsqueeze(0).expand(flows.shape[0], -1, -1, -1)
    return warp(copies, flows.to(image.device), mode="nearest")


def nearest_targets(
    grams: Mapping[str, torch.Tensor],
    bank: Mapping[str, torch.Tensor],
    layers: Mapping[str, float],
    style_mix: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per image, the bank entry (the original target or a warped copy's) nearest to its own
    statistics over all layers, as ``[N, C, C]`` per layer.

    ``grams[layer]`` is ``[N, C, C]``, ``bank[layer]`` ``[num_styles, K, C, C]``;
    ``style_mix`` ``[N, num_styles]`` blends the styles' entries as the plain loss does.
    """
    mix = style_mix.float()
    with torch.no_grad():
        distance = sum(
            weight
            * (
                grams[name].float().unsqueeze(1)
                - torch.einsum("ns,skcd->nkcd", mix, bank[name].float())
            )
            .pow(2)
            .mean(dim=(2, 3))
            for name, weight in layers.items()
        )
        nearest = distance.argmin(dim=1)  # [N]
    return {name: _pick(mix, bank[name].float(), nearest) for name in layers}


def _pick(mix: torch.Tensor, bank: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
    """``[N, C, C]``: image ``i``'s blend of every style's entry ``nearest[i]``."""
    chosen = bank[:, nearest]  # [num_styles, N, C, C]
    return torch.einsum("ns,sncd->ncd", mix, chosen)
