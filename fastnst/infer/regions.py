"""Styles by region (seed project 002 used CycleGAN for this; the CIN network does it in one
pass): a mask keeps the style inside it, and a regions map gives each region its own style.

The network mixes its γ/β tables per pixel (:func:`fastnst.model.norm_affine`), so regions
are stylized together with shared instance-norm statistics and no seams; what no region
covers stays the photo. Edges are feathered by blurring the maps (``feather`` px, a Gaussian
sigma) so a style fades out instead of ending on a hard line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fastnst.errors import UserError
from fastnst.images import ImageReadError
from fastnst.runtime.arrays import resize_bilinear

BLACK = (0, 0, 0)


def feathered(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blur ``[1, K, H, W]`` maps (repeating the border pixels)."""
    if sigma <= 0:
        return maps
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    for axis in (-1, -2):
        pad = [(0, 0)] * maps.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(maps, pad, mode="edge")
        length = maps.shape[axis]
        maps = sum(
            weight * np.take(padded, range(i, i + length), axis=axis)
            for i, weight in enumerate(kernel)
        )
    return maps.astype(np.float32)


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read map {path}: {exc}") from None


def _resize(maps: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    """``[K, h, w]`` float maps → ``[1, K, H, W]`` at the photo's size. A map of another
    aspect ratio (beyond a pixel or 2 %) is refused: stretched, it would style the wrong places."""
    (h, w), (height, width) = maps.shape[-2:], size
    if abs(h * width / w - height) > max(1.0, 0.02 * height):
        raise UserError(
            f"{path} is {w}x{h} but the photo is {width}x{height}: a map must have the "
            "photo's aspect ratio (it is scaled to the photo's size)"
        )
    return resize_bilinear(maps.astype(np.float32)[None], size)


def load_mask(path: Path, size: tuple[int, int], feather: float) -> np.ndarray:
    """A mask image (white = styled, black = photo; grey = partly) as ``[1, 1, H, W]``."""
    gray = np.asarray(_open(path).convert("L"), dtype=np.float32) / 255.0
    return np.clip(feathered(_resize(gray[None], size, path), feather), 0, 1)


def load_regions(path: Path, size: tuple[int, int], count: int, feather: float) -> np.ndarray:
    """Per-region weights ``[1, count, H, W]`` (each pixel's weights sum to at most 1).

    A ``.npy`` file is a weight map: ``[count, h, w]``, channel k the share of the k-th
    listed style. An image is a label map: black is "no style" and the other colours,
    sorted by their RGB value, are regions 1..count in the order the styles are listed.
    """
    if path.suffix.lower() == ".npy":
        try:
            maps = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            # numpy's message for a text or pickled file advises loading it unsafely
            reason = "not a numeric .npy array (save one with numpy.save)"
            raise UserError(f"cannot read weight map {path}: {reason}") from exc
        if maps.ndim != 3 or maps.shape[0] != count:
            raise UserError(
                f"{path} holds an array of shape {maps.shape}; expected ({count}, H, W) "
                f"for the {count} listed styles"
            )
        if not np.isfinite(maps).all() or maps.min() < 0:
            raise UserError(f"{path}: weights must be finite and non-negative")
        weights = _resize(maps, size, path)
    else:
        rgb = np.asarray(_open(path).convert("RGB"))
        colours = sorted(
            {tuple(c) for c in np.unique(rgb.reshape(-1, 3), axis=0).tolist()} - {BLACK}
        )
        if len(colours) != count:
            raise UserError(
                f"{path} has {len(colours)} region colour(s) besides black, but {count} "
                f"style(s) were listed: give one style per colour"
            )
        labels = np.stack([(rgb == np.array(c, dtype=rgb.dtype)).all(-1) for c in colours])
        weights = _resize(labels.astype(np.float32), size, path)
    weights = feathered(weights, feather)
    total = weights.sum(1, keepdims=True)
    return np.where(total > 1, weights / np.maximum(total, 1e-6), weights)


def per_pixel_styles(regions: np.ndarray, styles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Region weights ``[1, K, H, W]`` and the regions' style rows ``[K, S]`` → the network's
    per-pixel style weights ``[1, S, H, W]`` (summing to 1) and the covered share
    ``[1, 1, H, W]`` (0 = the photo). Uncovered pixels get the mean of the listed styles:
    the network sees smooth tables there, and the photo replaces its output anyway."""
    styles = styles.astype(np.float32)
    coverage = np.clip(regions.sum(1, keepdims=True), 0, 1)
    mix = np.einsum("nkhw,ks->nshw", regions, styles)
    fallback = styles.mean(0).reshape(1, -1, 1, 1)
    total = mix.sum(1, keepdims=True)
    weights = np.where(total > 1e-6, mix / np.maximum(total, 1e-6), fallback)
    return weights.astype(np.float32), coverage.astype(np.float32)


class RegionStylizer:
    """``--mask`` / ``--regions`` around a stylizer of either backend (NumPy in and out,
    :mod:`fastnst.runtime.backends`): a batch of photos in, the styled regions over the photo
    out. The maps are read once per photo size (a video's frames share one)."""

    def __init__(
        self,
        stylizer: Any,
        path: Path,
        styles: np.ndarray,
        regions: bool,
        feather: float = 4.0,
        strength: float = 1.0,
        keep_color: bool = False,
    ) -> None:
        self.stylizer, self.path, self.styles, self.regions = stylizer, Path(path), styles, regions
        self.feather, self.strength, self.keep_color = feather, strength, keep_color
        self._maps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        if not self.path.is_file():
            raise UserError(f"no such {'regions map' if regions else 'mask'}: {self.path}")

    def maps(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Style weights (``[S]`` or per pixel ``[1, S, H, W]``) and coverage ``[1, 1, H, W]``."""
        if size not in self._maps:
            if self.regions:
                found = load_regions(self.path, size, len(self.styles), self.feather)
                self._maps[size] = per_pixel_styles(found, self.styles)
            else:
                self._maps[size] = (self.styles[0], load_mask(self.path, size, self.feather))
        return self._maps[size]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        weights, coverage = self.maps(tuple(images.shape[-2:]))
        out = self.stylizer(images, weights, self.strength, self.keep_color)
        return images + (out - images) * coverage
