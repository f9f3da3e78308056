"""Single-frame stability: compound regularisation (Wang et al., AAAI 2020).

The network should commute with small motions: stylizing a slightly moved, slightly noisy
photo should give the moved stylization. No flow and no video are needed: the motion is a
random one we make ourselves, so its flow is exact.

Why it matters beyond video: a pattern the network paints on its own pixel grid (the
period-4 hatching that two stride-2 stages and two ×2 upsamplings invite; docs/QUALITY.md)
stays put when the photo moves by one pixel, so the moved output no longer lines up with
the output of the moved photo. Whole-pixel shifts make that error exact (no resampling
blur), and the regulariser then penalises exactly the grid-locked texture.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fastnst.errors import UserError
from fastnst.losses import LossParts
from fastnst.video.warp import inside_mask, pixel_grid, warp


@dataclass(frozen=True)
class CompoundSettings:
    """``loss.compound_*``: weight 0 turns it off (the default: it costs a second forward)."""

    weight: float = 0.0
    max_shift: int = 3  # whole pixels: the grid's period (4) is not a multiple of 1..3
    max_rotation: float = 0.0  # degrees; > 0 adds a resampled rotation (blurs both sides)
    noise: float = 0.02  # std of Gaussian pixel noise on the moved photo

    def __post_init__(self) -> None:
        for name in ("weight", "max_rotation", "noise"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise UserError(f"loss.compound_{name} must be a finite number >= 0, got {value}")
        if self.max_shift < 0:
            raise UserError(f"loss.compound_max_shift must be >= 0, got {self.max_shift}")

    @classmethod
    def from_loss(cls, loss: dict) -> CompoundSettings:
        """The ``compound_*`` keys of a loss config (absent keys keep their defaults)."""
        prefix = "compound_"
        return cls(**{k[len(prefix) :]: v for k, v in loss.items() if k.startswith(prefix)})


def random_small_motion(
    n: int,
    size: tuple[int, int],
    settings: CompoundSettings,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Backward flow ``[N, 2, H, W]`` of a whole-pixel shift (never zero when allowed) plus,
    with ``max_rotation``, a rotation about the centre."""
    h, w = size
    shift = settings.max_shift
    offsets = torch.randint(-shift, shift + 1, (n, 2), generator=generator).float()
    if shift > 0:  # a zero shift would teach nothing about the grid: make it one pixel
        zero = (offsets == 0).all(1)
        offsets[zero, 0] = 1.0
    angles = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(settings.max_rotation)
    grid = pixel_grid(h, w).unsqueeze(0)  # [1, H, W, 2] (x, y)
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2])
    rel = grid - centre
    cos, sin = angles.cos().view(n, 1, 1), angles.sin().view(n, 1, 1)
    rotated = torch.stack(
        (cos * rel[..., 0] - sin * rel[..., 1], sin * rel[..., 0] + cos * rel[..., 1]), -1
    )
    flow = rotated + centre + offsets.view(n, 1, 1, 2) - grid
    return flow.permute(0, 3, 1, 2).to(device)


def compound_loss(
    net_forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    style_mix: torch.Tensor,
    output: torch.Tensor,
    settings: CompoundSettings,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, LossParts]:
    """Mean squared distance, over pixels that stay inside the frame, between the output of
    the moved noisy photo and the moved output. Both branches get gradients (Wang et al.)."""
    flow = random_small_motion(
        images.shape[0], tuple(images.shape[-2:]), settings, images.device, generator
    )
    moved = warp(images.float(), flow)
    if settings.noise > 0:
        noise = torch.randn(moved.shape, generator=generator).to(moved.device)
        moved = (moved + settings.noise * noise).clamp(0, 1)
    moved_output = net_forward(moved.to(images.dtype), style_mix).float()
    target = warp(output.float(), flow)
    mask = inside_mask(flow)
    diff = (moved_output - target).pow(2) * mask
    total = diff.sum() / (mask.sum() * 3).clamp_min(1.0)
    return total, {"compound": total}
