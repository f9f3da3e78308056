"""Procedural stand-ins for the Spider-Verse looks, one per universe.

They stand in for extracted film frames when ``data/styles/spiderverse/<universe>/`` is
empty, so the first run works on any machine. Each is drawn from the craft it stands for,
at scales that stay visible after a 2x downscale (training's style size): comic print for
miles, watercolour for gwen, zine collage for punk, manga screentone for mumbattan, clean
futurist colour for nueva_york. Flat areas bounded by ink lines matter more than fine
grain: a network copies a texture's finest periodic pattern over every flat area of the
photo (the "mush"), while flat colour and contours let it keep the photo's shapes.
All fields are periodic (FFT blurs, wrapped distances), so the textures tile.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Canvas = np.ndarray  # float32 [H, W, 3] in [0, 1]
Colour = tuple[float, float, float]

PAPER = np.array([0.97, 0.95, 0.89], np.float32)
INK = np.array([0.07, 0.06, 0.09], np.float32)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return ys, xs


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a 2-D (or [H, W, C]) array by FFT; edges wrap around."""
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    if image.ndim == 3:
        kernel = kernel[..., None]
    spectrum = np.fft.rfft2(image, axes=(0, 1)) * kernel
    return np.fft.irfft2(spectrum, s=image.shape[:2], axes=(0, 1)).astype(np.float32)


def _noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Smooth random field with features of about ``sigma`` px, rescaled to [0, 1]."""
    field = _blur(rng.normal(size=(size, size)).astype(np.float32), sigma)
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def _regions(rng: np.random.Generator, size: int, count: int, wobble: float) -> np.ndarray:
    """Label map of irregular shapes: Voronoi cells of ``count`` points on a warped plane."""
    ys, xs = _grid(size)
    ys = ys + (_noise(rng, size, size / 8) - 0.5) * wobble * size
    xs = xs + (_noise(rng, size, size / 8) - 0.5) * wobble * size
    best = np.full((size, size), np.inf, np.float32)
    labels = np.zeros((size, size), np.int64)
    for index, (py, px) in enumerate(rng.uniform(0, size, (count, 2))):
        dy = np.abs(ys - py) % size
        dx = np.abs(xs - px) % size
        dist = np.minimum(dy, size - dy) ** 2 + np.minimum(dx, size - dx) ** 2
        closer = dist < best
        best[closer] = dist[closer]
        labels[closer] = index
    return labels


def _outline(
    rng: np.random.Generator, labels: np.ndarray, width: float, vary: float = 0.5
) -> np.ndarray:
    """Brush contours along the borders of a label map: ``width`` px wide on average, the
    stroke swelling and thinning by ``vary`` like an inked line; soft-edged coverage."""
    edge = (labels != np.roll(labels, 1, 0)) | (labels != np.roll(labels, 1, 1))
    sigma = width / 2
    profile = np.clip(_blur(edge.astype(np.float32), sigma) * np.sqrt(2 * np.pi) * sigma, 0, 1)
    brush = 1 + vary * (2 * _noise(rng, labels.shape[0], 12) - 1)
    threshold = np.exp(-0.5 * np.clip(brush, 0.2, None) ** 2)
    return np.clip((profile - threshold) / 0.12 + 0.5, 0, 1)


def _halftone(tone: np.ndarray, period: float, angle_deg: float) -> np.ndarray:
    """Ben-Day dots (antialiased): ink coverage whose dot area follows ``tone`` (0 = none)."""
    ys, xs = _grid(tone.shape[0])
    a = np.deg2rad(angle_deg)
    u = (xs * np.cos(a) + ys * np.sin(a)) / period
    v = (-xs * np.sin(a) + ys * np.cos(a)) / period
    dist = np.hypot(u - np.round(u), v - np.round(v))
    radius = np.sqrt(np.clip(tone, 0, 1) / np.pi)
    return np.clip((radius - dist) * period + 0.5, 0, 1) * (tone > 0.01)


def _over(canvas: Canvas, coverage: np.ndarray, colour: np.ndarray | Colour) -> Canvas:
    """Opaque paint of ``colour`` where ``coverage`` (0..1) says."""
    alpha = coverage[..., None]
    return canvas * (1 - alpha) + np.asarray(colour, np.float32) * alpha


def miles(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-1610, comic print: flat red/blue/yellow areas and Ben-Day dot tints inside bold
    black contours, dotted shadows, colour plates misregistered against the black plate."""
    labels = _regions(rng, size, int(rng.integers(9, 14)), wobble=0.3)
    count = int(labels.max()) + 1
    # Per region: CMY coverage of its fill and whether it is printed as dots.
    fills = np.array(
        [
            [0.0, 0.0, 0.0, 0],  # paper
            [0.0, 0.95, 0.9, 0],  # red
            [0.95, 0.7, 0.0, 0],  # blue
            [0.0, 0.12, 0.95, 0],  # yellow
            [0.0, 0.45, 0.4, 1],  # red dots: the pink of skin
            [0.55, 0.4, 0.0, 1],  # blue dots
            [0.0, 0.0, 0.0, 2],  # black
        ],
        np.float32,
    )
    # Mostly paper and dot tints, as a printed page is: solid fills everywhere would teach the
    # network to repaint faces in flat primaries.
    weights = np.array([0.22, 0.12, 0.1, 0.1, 0.22, 0.18, 0.06])
    kinds = rng.choice(len(fills), count, p=weights / weights.sum())
    fill = fills[kinds][labels]  # [H, W, 4]
    period = float(rng.uniform(9, 11))
    dotted = fill[..., 3] == 1
    plates = []
    for channel in range(3):  # one screen for all plates: a red tint is red dots
        tone = fill[..., channel]
        plates.append(np.where(dotted, _halftone(tone, period, 15), tone))
    shadow = (_noise(rng, size, size / 12) < 0.3) & (fill[..., 3] == 0)
    black = np.maximum(fill[..., 3] == 2, _halftone(shadow * 0.3, period, 45))
    k = np.maximum(black, _outline(rng, labels, width=size / 70))
    shift = rng.integers(2, 4, 2) * rng.choice([-1, 1], 2)  # colour plates off the black one
    rgb = PAPER * (1 - np.roll(np.stack(plates, -1), tuple(shift), (0, 1)))
    return _over(rgb, k, INK).astype(np.float32)


def gwen(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-65, watercolour: pale paper, glazed pastel pink/cyan/lavender washes with darker
    pooled edges and granulation, loose dark ink lines that do not follow the washes."""
    palette = np.array(
        [[0.97, 0.55, 0.72], [0.45, 0.8, 0.9], [0.72, 0.62, 0.93], [0.98, 0.78, 0.62]], np.float32
    )
    canvas = np.broadcast_to(np.array([0.98, 0.97, 0.94], np.float32), (size, size, 3)).copy()
    grain = _noise(rng, size, 1.2)
    for layer in range(int(rng.integers(4, 6))):
        colour = palette[layer % 2] if layer < 3 else palette[int(rng.integers(0, len(palette)))]
        shape = _noise(rng, size, size / 10) + 0.25 * _noise(rng, size, size / 40)
        mask = np.clip((shape - np.quantile(shape, rng.uniform(0.65, 0.8))) * 40, 0, 1)
        mask = _blur(mask, 1.5)
        pooled = np.clip(mask - _blur(mask, size / 60), 0, 1)  # pigment dries at the rim
        alpha = mask * rng.uniform(0.25, 0.4) * (0.8 + 0.4 * grain) + 1.2 * pooled
        canvas *= 1 - np.clip(alpha, 0, 0.9)[..., None] * (1 - colour)
    lines = _regions(rng, size, int(rng.integers(5, 8)), wobble=0.4)
    ink = _outline(rng, lines, width=size / 160, vary=0.6)
    ink *= _noise(rng, size, size / 20) > 0.3  # a loose hand: lines break off
    canvas = _over(canvas, ink * 0.85, (0.18, 0.14, 0.3))
    return np.clip(canvas, 0, 1).astype(np.float32)


def _text(u: np.ndarray, v: np.ndarray, line: float) -> np.ndarray:
    """Blocky lines of type in a piece's own (u, v) frame: letter cells switched on at random."""
    row = np.floor(v / line)
    cell = np.floor(u / (0.6 * line))
    on = (np.sin(row * 91.7 + cell * 13.3) * 43758.5) % 1 > 0.3
    in_letter = ((u / (0.6 * line)) % 1 < 0.75) & ((v / line) % 1 < 0.55)
    return (on & in_letter).astype(np.float32)


def punk(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-138, zine collage: torn, tilted cut-outs pasted over each other: acid colours,
    photocopied black-and-white, coarse dots, lines of type; white torn rims, xerox specks."""
    ys, xs = _grid(size)
    acid = [
        (0.98, 0.2, 0.58),
        (0.98, 0.9, 0.1),
        (0.45, 0.92, 0.2),
        (0.92, 0.1, 0.12),
        (0.1, 0.5, 0.95),
    ]
    copied = _noise(rng, size, size / 10) * 0.25 + 0.65  # a grey photocopied backing sheet
    canvas = np.repeat(copied[..., None], 3, -1) * PAPER
    for _ in range(int(rng.integers(9, 13))):
        cy, cx = rng.uniform(0, size, 2)
        h, w = rng.uniform(0.18, 0.5, 2) * size
        a = rng.uniform(-0.45, 0.45)
        u = (xs - cx) * np.cos(a) + (ys - cy) * np.sin(a)
        v = -(xs - cx) * np.sin(a) + (ys - cy) * np.cos(a)
        torn = (_noise(rng, size, 1.5) - 0.5) * 8
        outside = np.maximum(np.abs(u) - w / 2, np.abs(v) - h / 2) + torn
        rim = np.clip(0.5 - outside, 0, 1)
        inner = np.clip(0.5 - outside - rng.uniform(2, 5), 0, 1)
        colour = acid[int(rng.integers(0, len(acid)))]
        kind = int(rng.integers(0, 4))
        if kind == 0:  # flat colour paper
            fill = np.broadcast_to(np.array(colour, np.float32), (size, size, 3))
        elif kind == 1:  # coarse dots over colour
            dots = _halftone(np.full((size, size), 0.45, np.float32), rng.uniform(12, 16), a * 57.3)
            fill = _over(
                np.broadcast_to(np.array(colour, np.float32), (size, size, 3)).copy(), dots, INK
            )
        elif kind == 2:  # photocopied photo: hard black and white
            copy = _noise(rng, size, 6) + 0.15 * rng.uniform(0, 1, (size, size))
            fill = np.repeat((copy > np.median(copy))[..., None], 3, -1) * PAPER
        else:  # a cutting of type
            fill = _over(np.broadcast_to(PAPER, (size, size, 3)).copy(), _text(u, v, 9.0), INK)
        canvas = _over(canvas, np.clip(rim - inner, 0, 1), (0.99, 0.99, 0.97))
        canvas = _over(canvas, inner, 0) + fill * inner[..., None]
    specks = rng.uniform(0, 1, (size, size)) > 0.995
    return (
        _over(canvas, _blur(specks.astype(np.float32), 0.6) * 3, INK).clip(0, 1).astype(np.float32)
    )


def mumbattan(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-50101, manga: black linework and screentone on cream paper (flat, graded and
    solid-black areas, focus lines) with flat saffron and magenta ink accents."""
    ys, xs = _grid(size)
    labels = _regions(rng, size, int(rng.integers(8, 12)), wobble=0.35)
    count = int(labels.max()) + 1
    kinds = rng.choice(6, count, p=[0.28, 0.2, 0.18, 0.06, 0.14, 0.14])
    kind = kinds[labels]
    a = rng.uniform(0, 2 * np.pi)
    ramp = ((xs * np.cos(a) + ys * np.sin(a)) / size) % 1
    tone = np.select(
        [kind == 1, kind == 2, kind == 3], [np.full_like(ramp, 0.25), 0.9 * ramp, 1.0], 0.0
    )
    ink = _halftone(np.where(kind == 3, 0.0, tone), float(rng.uniform(7, 8.5)), 45)
    ink = np.maximum(ink, kind == 3)
    cy, cx = rng.uniform(0, size, 2)
    angle = np.arctan2(ys - cy, xs - cx)
    radius = np.hypot(ys - cy, xs - cx)
    spokes = np.abs((angle * 60 / (2 * np.pi)) % 1 - 0.5) * 2  # 0 on a focus line
    focus = (spokes < 0.25 * np.clip(radius / size, 0, 1)) & (radius > size / 6) & (kind == 0)
    ink = np.maximum(ink, focus)
    canvas = np.broadcast_to(PAPER, (size, size, 3)).copy()
    canvas = _over(canvas, (kind == 4).astype(np.float32), (0.97, 0.6, 0.13))
    canvas = _over(canvas, (kind == 5).astype(np.float32), (0.86, 0.18, 0.45))
    ink = np.maximum(ink, _outline(rng, labels, width=size / 90))
    return _over(canvas, ink, INK).astype(np.float32)


def nueva_york(rng: np.random.Generator, size: int) -> Canvas:
    """Earth-928, futurist clean colour: a smooth deep-blue-to-teal gradient, crisp circles
    and diagonal bands in neon cyan, orange, magenta and white, thin glowing rims; no grain."""
    ys, xs = _grid(size)
    a = rng.uniform(0, np.pi)
    t = np.clip((xs * np.cos(a) + ys * np.sin(a)) / size * 0.7 + 0.15, 0, 1)[..., None]
    canvas = (1 - t) * np.array([0.04, 0.06, 0.28], np.float32) + t * np.array([0.0, 0.45, 0.55])
    neon = [(0.1, 0.88, 0.98), (1.0, 0.55, 0.12), (0.95, 0.28, 0.68), (0.95, 0.97, 1.0)]
    rims = np.zeros((size, size), np.float32)
    for index in range(int(rng.integers(5, 8))):
        cy, cx = rng.uniform(0, size, 2)
        if index % 2:  # a disc
            signed = np.hypot(ys - cy, xs - cx) - rng.uniform(0.08, 0.22) * size
        else:  # a diagonal band
            b = rng.uniform(-0.8, 0.8) + np.pi / 4
            signed = (
                np.abs((xs - cx) * np.cos(b) + (ys - cy) * np.sin(b))
                - rng.uniform(0.03, 0.1) * size
            )
        colour = np.array(neon[int(rng.integers(0, len(neon)))], np.float32)
        shade = 0.75 + 0.25 * np.clip((ys - cy) / size + 0.5, 0, 1)[..., None]  # a soft gradient
        canvas = _over(canvas, np.clip(0.5 - signed, 0, 1) * 0.92, 0) + (
            colour * shade * (np.clip(0.5 - signed, 0, 1) * 0.92)[..., None]
        )
        rims = np.maximum(rims, np.clip(1.5 - np.abs(signed + 3), 0, 1))
    glow = _blur(rims, 3.0) * 1.5
    canvas = canvas + (rims[..., None] + glow[..., None]) * np.array([0.5, 0.9, 1.0], np.float32)
    return np.clip(canvas, 0, 1).astype(np.float32)


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
