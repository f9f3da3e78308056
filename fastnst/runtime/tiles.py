"""Tile geometry shared by the torch and onnxruntime tilers (no torch here): cores that
start on multiples of the network's stride, a halo wider than its receptive field, and
where a full-resolution boundary falls in a strided activation."""

from __future__ import annotations

import math
from dataclasses import dataclass

STRIDE = 4
FEATHER = 16


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the core it owns and the larger crop it reads."""

    core: tuple[int, int]
    crop: tuple[int, int]


def receptive_radius(num_residual: int, antialias: bool = False) -> int:
    """Full-resolution pixels an output pixel can see on each side (9x9 ends, 3x3 at stride
    2 and 4, one pixel of slack per nearest-neighbour upsampling; an anti-aliased network's
    blurs add 1 + 2 before the strided convs and 2 + 1 after the upsamplings)."""
    encoder = 4 + 1 + 2 + (3 if antialias else 0)
    trunk = 2 * num_residual * STRIDE
    decoder = (2 + 2) + (1 + 1) + 4 + (3 if antialias else 0)
    return encoder + trunk + decoder


def halo(num_residual: int, antialias: bool = False) -> int:
    """The margin each tile reads around its core: the receptive radius plus half the
    feather, rounded up to the stride."""
    reach = receptive_radius(num_residual, antialias) + FEATHER // 2
    return -(-reach // STRIDE) * STRIDE


def plan_spans(length: int, tile: int, halo: int) -> list[Span]:
    """Cores of ``tile`` pixels (a multiple of 4) covering ``length``, each read with ``halo``."""
    step = max(STRIDE, tile // STRIDE * STRIDE)
    spans = []
    for start in range(0, length, step):
        end = min(start + step, length)
        spans.append(Span((start, end), (max(0, start - halo), min(length, end + halo))))
    return spans


def at_scale(position: int, factor: int, length: int) -> int:
    """Index at 1/``factor`` resolution of a full-resolution tile boundary (4-aligned, or the
    image end, whose size the stride-2 convolutions round up)."""
    if position == length:
        for _ in range(int(math.log2(factor))):
            position = -(-position // 2)
        return position
    return position // factor


def scale_factor(local: int, crop: int) -> int:
    """1, 2 or 4: how much smaller an activation of side ``local`` is than its ``crop``."""
    for factor in (1, 2, 4):
        if at_scale(crop, factor, crop) == local:
            return factor
    raise RuntimeError(f"activation size {local} does not match a crop of {crop}")


def core_slice(span: Span, local: int, length: int) -> slice:
    """The part of an activation (side ``local``, from ``span``'s crop) that the core owns."""
    factor = scale_factor(local, span.crop[1] - span.crop[0])
    offset = span.crop[0] // factor
    return slice(
        at_scale(span.core[0], factor, length) - offset,
        at_scale(span.core[1], factor, length) - offset,
    )


def feather_weights(span: Span, length: int) -> list[float]:
    """Weights along one axis of a crop: 1 inside the core, ramps of width FEATHER centred on
    core edges shared with a neighbour; neighbouring ramps sum to one."""
    weights = []
    for index in range(span.crop[0], span.crop[1]):
        pos, weight = index + 0.5, 1.0
        if span.core[0] > 0:
            weight *= min(1.0, max(0.0, 0.5 + (pos - span.core[0]) / FEATHER))
        if span.core[1] < length:
            weight *= min(1.0, max(0.0, 0.5 + (span.core[1] - pos) / FEATHER))
        weights.append(weight)
    return weights
