"""Tiled inference for photos too large to run whole (4K, 8K), without seams.

Instance norm is the catch: a tile's own statistics differ from the whole image's, which
shows as a patchwork. So the statistics are computed exactly over the whole image, one
norm layer at a time: pass *k* runs every tile up to norm layer *k* (earlier layers use the
whole-image statistics already found), sums the pre-norm activations of the tile's core,
and stops. A last pass runs every tile through the whole network with all statistics fixed
and blends overlapping outputs with feathered weights. Tiles carry a halo wider than the
network's receptive field and start on multiples of 4 (the network's total stride), so each
core is computed exactly as in a whole-image run; memory is bounded by the tile size.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from fastnst.model import ConditionalInstanceNorm2d, TransformerNet, norm_affine, normalize

STRIDE = 4
FEATHER = 16


class _StopAtProbe(Exception):
    """Raised from a hook once the probed layer's statistics are taken: no wasted layers."""


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the core it owns and the larger crop it reads."""

    core: tuple[int, int]
    crop: tuple[int, int]


def receptive_radius(net: TransformerNet) -> int:
    """Full-resolution pixels an output pixel can see on each side (9x9 ends, 3x3 at stride
    2 and 4, one pixel of slack per nearest-neighbour upsampling)."""
    encoder = 4 + 1 + 2
    trunk = 2 * net.config.num_residual * STRIDE
    decoder = (2 + 2) + (1 + 1) + 4
    return encoder + trunk + decoder


def plan_spans(length: int, tile: int, halo: int) -> list[Span]:
    """Cores of ``tile`` pixels (a multiple of 4) covering ``length``, each read with ``halo``."""
    step = max(STRIDE, tile // STRIDE * STRIDE)
    spans = []
    for start in range(0, length, step):
        end = min(start + step, length)
        spans.append(Span((start, end), (max(0, start - halo), min(length, end + halo))))
    return spans


def _at_scale(position: int, factor: int, length: int) -> int:
    """Index at 1/``factor`` resolution of a full-resolution tile boundary (4-aligned, or the
    image end, whose size the stride-2 convolutions round up)."""
    if position == length:
        for _ in range(int(math.log2(factor))):
            position = -(-position // 2)
        return position
    return position // factor


def _scale_factor(local: int, crop: int) -> int:
    for factor in (1, 2, 4):
        if _at_scale(crop, factor, crop) == local:
            return factor
    raise RuntimeError(f"activation size {local} does not match a crop of {crop}")


def _feather(span: Span, length: int, device: torch.device) -> torch.Tensor:
    """Weights along one axis of a crop: 1 inside the core, ramps of width FEATHER centred on
    core edges shared with a neighbour; neighbouring ramps sum to one."""
    pos = torch.arange(span.crop[0], span.crop[1], device=device, dtype=torch.float32) + 0.5
    weight = torch.ones_like(pos)
    if span.core[0] > 0:
        weight *= (0.5 + (pos - span.core[0]) / FEATHER).clamp(0, 1)
    if span.core[1] < length:
        weight *= (0.5 + (span.core[1] - pos) / FEATHER).clamp(0, 1)
    return weight


class _NormHooks:
    """While active, every norm layer uses whole-image statistics instead of its own, and one
    probed layer sums its input over the tile core instead. The layers' ``forward`` is
    replaced on the instances (and restored on exit) rather than hooked, so that no per-tile
    statistics are computed only to be thrown away."""

    def __init__(self, net: TransformerNet) -> None:
        self.norms = [m for m in net.modules() if isinstance(m, ConditionalInstanceNorm2d)]
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.probe: int | None = None
        self.core: tuple[Span, Span] | None = None
        self.sums: torch.Tensor | None = None
        self.count = 0
        self.size: tuple[int, int] = (0, 0)

    def __enter__(self) -> _NormHooks:
        for index, norm in enumerate(self.norms):
            norm.forward = self._make_forward(index, norm)
        return self

    def __exit__(self, *exc: object) -> None:
        for norm in self.norms:
            del norm.forward

    def _make_forward(self, index: int, module: ConditionalInstanceNorm2d):  # noqa: ANN202
        def forward(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
            if index == self.probe:
                self._accumulate(x)
                raise _StopAtProbe
            mean, var = self.stats[index]
            gamma, beta = norm_affine(weights, module.gamma, module.beta, tuple(x.shape[-2:]))
            return normalize(x, mean, var, gamma, beta, module.eps)

        return forward

    def _accumulate(self, x: torch.Tensor) -> None:
        rows, cols = self.core  # type: ignore[misc]
        height, width = self.size
        fy = _scale_factor(x.shape[-2], rows.crop[1] - rows.crop[0])
        fx = _scale_factor(x.shape[-1], cols.crop[1] - cols.crop[0])
        y0 = _at_scale(rows.core[0], fy, height) - rows.crop[0] // fy
        y1 = _at_scale(rows.core[1], fy, height) - rows.crop[0] // fy
        x0 = _at_scale(cols.core[0], fx, width) - cols.crop[0] // fx
        x1 = _at_scale(cols.core[1], fx, width) - cols.crop[0] // fx
        core = x[:, :, y0:y1, x0:x1].double()
        part = torch.stack((core.sum(dim=(0, 2, 3)), core.square().sum(dim=(0, 2, 3))))
        self.sums = part if self.sums is None else self.sums + part
        self.count += core.shape[-2] * core.shape[-1]


def _crop(image: torch.Tensor, rows: Span, cols: Span) -> torch.Tensor:
    return image[:, :, rows.crop[0] : rows.crop[1], cols.crop[0] : cols.crop[1]]


@torch.inference_mode()
def stylize_tiled(
    net: TransformerNet, image: torch.Tensor, weights: torch.Tensor, tile: int = 1024
) -> torch.Tensor:
    """Stylize one ``[1, 3, H, W]`` image tile by tile; matches a whole-image run."""
    height, width = image.shape[-2:]
    halo = -(-(receptive_radius(net) + FEATHER // 2) // STRIDE) * STRIDE
    row_spans, col_spans = plan_spans(height, tile, halo), plan_spans(width, tile, halo)
    tiles = [(rows, cols) for rows in row_spans for cols in col_spans]
    with _NormHooks(net) as hooks:
        hooks.size = (height, width)
        for index in range(len(hooks.norms)):
            hooks.probe, hooks.sums, hooks.count = index, None, 0
            for rows, cols in tiles:
                hooks.core = (rows, cols)
                with contextlib.suppress(_StopAtProbe):
                    net.decode(net.encode(_crop(image, rows, cols), weights), weights)
            mean = hooks.sums[0] / hooks.count  # type: ignore[index]
            var = (hooks.sums[1] / hooks.count - mean.square()).clamp_min(0)  # type: ignore[index]
            hooks.stats.append(
                (mean.float()[None, :, None, None], var.float()[None, :, None, None])
            )
        hooks.probe = None
        total = torch.zeros(1, 3, height, width, device=image.device)
        weight_sum = torch.zeros(1, 1, height, width, device=image.device)
        for rows, cols in tiles:
            out = net.decode(net.encode(_crop(image, rows, cols), weights), weights).float()
            feather = _feather(rows, height, image.device)[:, None] * _feather(
                cols, width, image.device
            )
            (y0, y1), (x0, x1) = rows.crop, cols.crop
            total[:, :, y0:y1, x0:x1] += out * feather
            weight_sum[:, :, y0:y1, x0:x1] += feather
    return (total / weight_sum).to(image.dtype)
