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

import torch

from fastnst.model import ConditionalInstanceNorm2d, TransformerNet, norm_affine, normalize
from fastnst.runtime.tiles import Span, core_slice, feather_weights, halo, plan_spans


class _StopAtProbe(Exception):
    """Raised from a hook once the probed layer's statistics are taken: no wasted layers."""


def _feather(span: Span, length: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(feather_weights(span, length), device=device)


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
        ys = core_slice(rows, x.shape[-2], height)
        xs = core_slice(cols, x.shape[-1], width)
        core = x[:, :, ys, xs].double()
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
    margin = halo(net.config.num_residual, net.config.antialias)
    row_spans, col_spans = plan_spans(height, tile, margin), plan_spans(width, tile, margin)
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
