"""Procedural comic-print textures, one look per Spider-Verse universe.

They stand in for extracted film frames when ``data/styles/spiderverse/<universe>/`` is
empty, so the first run works on any machine. Each look is built from print artefacts:
Ben-Day halftone dots, CMYK plate misregistration, hatching, xerox grain, scanlines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Canvas = np.ndarray  # float32 [H, W, 3] in [0, 1]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return ys, xs


def _blobs(rng: np.random.Generator, size: int, count: int, scale: float) -> np.ndarray:
    """Smooth random field in [0, 1] made of Gaussian blobs: the large shapes of a panel."""
    ys, xs = _grid(size)
    field = np.zeros((size, size), np.float32)
    for _ in range(count):
        cy, cx = rng.uniform(0, size, 2)
        radius = rng.uniform(0.5, 1.5) * scale * size
        field += rng.uniform(-1, 1) * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * radius**2))
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def _halftone(tone: np.ndarray, period: float, angle_deg: float) -> np.ndarray:
    """Ben-Day dots: 1 where ink lands, dot area following ``tone`` (0 = no ink)."""
    size = tone.shape[0]
    ys, xs = _grid(size)
    a = np.deg2rad(angle_deg)
    u = (xs * np.cos(a) + ys * np.sin(a)) / period
    v = (-xs * np.sin(a) + ys * np.cos(a)) / period
    dist = np.hypot(u - np.round(u), v - np.round(v))
    return (dist < np.sqrt(np.clip(tone, 0, 1) / np.pi)).astype(np.float32)


def _hatching(size: int, period: float, angle_deg: float, width: float = 0.35) -> np.ndarray:
    ys, xs = _grid(size)
    a = np.deg2rad(angle_deg)
    phase = (xs * np.cos(a) + ys * np.sin(a)) / period
    return (np.abs(phase - np.round(phase)) < width / 2).astype(np.float32)


def _ink_lines(rng: np.random.Generator, field: np.ndarray, levels: int = 5) -> np.ndarray:
    """Black contour lines along iso-levels of a field: the inked outlines of shapes."""
    bands = np.floor(field * levels + rng.uniform(0, 1))
    edge = (np.abs(np.diff(bands, axis=0, prepend=bands[:1])) > 0) | (
        np.abs(np.diff(bands, axis=1, prepend=bands[:, :1])) > 0
    )
    thick = edge | np.roll(edge, 1, 0) | np.roll(edge, 1, 1)
    return thick.astype(np.float32)


def _cmyk_print(c: np.ndarray, m: np.ndarray, y: np.ndarray, k: np.ndarray, shift: int) -> Canvas:
    """Subtractive print of four plates; ``shift`` pixels of plate misregistration."""
    c = np.roll(c, (shift, 0), (0, 1))
    m = np.roll(m, (0, shift), (0, 1))
    y = np.roll(y, (-shift, -shift), (0, 1))
    paper = np.array([0.97, 0.94, 0.86], np.float32)
    rgb = paper * np.stack([1 - c, 1 - m, 1 - y], -1)
    return rgb * (1 - k[..., None])


def miles(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-1610: bold red/blue Ben-Day dots, offset CMYK plates, heavy black ink."""
    field = _blobs(rng, size, 12, 0.18)
    period = rng.uniform(6, 9)
    c = _halftone(_blobs(rng, size, 8, 0.2) * 0.9, period, 15)
    m = _halftone(field * 0.95, period, 75)
    y = _halftone(_blobs(rng, size, 6, 0.25) * 0.6, period, 0)
    k = np.clip(_ink_lines(rng, field, 4) + 0.8 * _hatching(size, 5, 45) * (field < 0.15), 0, 1)
    return _cmyk_print(c, m, y, k, shift=int(rng.integers(2, 5)))


def gwen(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-65: pastel watercolour washes bleeding into each other, pale paper, soft pencil."""
    palette = np.array(
        [[0.98, 0.72, 0.82], [0.55, 0.85, 0.88], [0.78, 0.66, 0.92], [0.98, 0.93, 0.78]], np.float32
    )
    weights = np.stack([_blobs(rng, size, 6, 0.3) ** 2 for _ in palette], -1) + 1e-3
    weights /= weights.sum(-1, keepdims=True)
    wash = weights @ palette
    grain = rng.normal(0, 0.03, (size, size, 1)).astype(np.float32)
    pencil = (
        0.25 * _hatching(size, 7, rng.uniform(20, 70), 0.15)[..., None] * (weights[..., 2:3] > 0.45)
    )
    return np.clip(wash + grain - pencil, 0, 1)


def punk(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-138: xerox collage: torn black-and-white cut-outs, acid red/yellow, coarse dots."""
    base = (_blobs(rng, size, 20, 0.08) > 0.5).astype(np.float32)
    noise = rng.uniform(0, 1, (size, size)).astype(np.float32)
    xerox = np.clip(base + (noise > 0.93) - (noise < 0.05), 0, 1)
    canvas = np.repeat((1 - xerox)[..., None] * 0.95, 3, -1)
    for colour in ([0.93, 0.12, 0.18], [0.99, 0.85, 0.1], [0.1, 0.55, 0.95]):
        y0, x0 = rng.integers(0, size * 3 // 4, 2)
        h, w = rng.integers(size // 6, size // 2, 2)
        mask = np.zeros((size, size), bool)
        mask[y0 : y0 + h, x0 : x0 + w] = True
        dots = _halftone(np.full((size, size), 0.55), rng.uniform(10, 16), 45) > 0
        canvas[mask & dots] = colour
    return canvas.astype(np.float32)


def mumbattan(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-50101: warm saturated inks, ornamental rings and dense cross-hatched shade."""
    ys, xs = _grid(size)
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    rings = 0.5 + 0.5 * np.sin(np.hypot(ys - cy, xs - cx) / rng.uniform(4, 8))
    field = _blobs(rng, size, 10, 0.2)
    palette = np.array([[0.98, 0.55, 0.1], [0.9, 0.1, 0.45], [1.0, 0.82, 0.2], [0.35, 0.1, 0.45]])
    index = np.clip((field * len(palette)).astype(int), 0, len(palette) - 1)
    canvas = palette[index].astype(np.float32) * (0.75 + 0.25 * rings[..., None])
    shade = (field < 0.35) * np.maximum(_hatching(size, 5, 30), _hatching(size, 5, -30))
    return np.clip(canvas * (1 - 0.7 * shade[..., None]), 0, 1).astype(np.float32)


def nueva_york(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-928: futurist neon cyan and orange on deep blue, glowing grids, CRT scanlines."""
    ys, xs = _grid(size)
    period = rng.uniform(18, 30)
    grid = np.maximum(np.cos(np.pi * xs / period) ** 40, np.cos(np.pi * ys / period) ** 40)
    glow = _blobs(rng, size, 8, 0.15)
    canvas = np.stack([0.05 + 0.1 * glow, 0.05 + 0.15 * glow, 0.2 + 0.25 * glow], -1)
    canvas += grid[..., None] * np.array([0.1, 0.9, 1.0]) * (glow[..., None] > 0.4)
    canvas += (glow > 0.75)[..., None] * np.array([1.0, 0.45, 0.1])
    scan = 0.85 + 0.15 * (np.floor(ys) % 3 == 0)
    return np.clip(canvas * scan[..., None], 0, 1).astype(np.float32)


UNIVERSES: dict[str, Callable[[np.random.Generator, int], Canvas]] = {
    "miles": miles,
    "gwen": gwen,
    "punk": punk,
    "mumbattan": mumbattan,
    "nueva_york": nueva_york,
}


def universe_textures(
    name: str, count: int = 3, size: int = 384, seed: int = 0
) -> list[torch.Tensor]:
    """``count`` textures of one universe as ``[3, size, size]`` tensors; deterministic."""
    if name not in UNIVERSES:
        raise KeyError(f"no built-in texture for universe {name!r}; known: {', '.join(UNIVERSES)}")
    offset = sum(map(ord, name))
    images = []
    for i in range(count):
        rng = np.random.default_rng(seed * 1000 + offset + i)
        images.append(torch.from_numpy(UNIVERSES[name](rng, size)).permute(2, 0, 1).contiguous())
    return images
