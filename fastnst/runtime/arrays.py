"""Image arithmetic in NumPy for the torch-free path: float RGB ``[N, 3, H, W]`` in [0, 1],
as the torch path holds them, so both backends share one CLI."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from fastnst.images import gaussian_taps, long_side_shape

MIN_SIDE = 16  # the network's smallest side (fastnst.model.MIN_SIDE, which needs torch)


def pil_to_array(image: Image.Image) -> np.ndarray:
    """8-bit RGB PIL image → float32 ``[3, H, W]`` in [0, 1]. One float copy (channels
    reordered while still 8-bit): at 4K each float copy is 100 MB."""
    planes = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
    array = planes.astype(np.float32)  # a new C-contiguous array
    return np.divide(array, np.float32(255.0), out=array)


def array_to_pil(image: np.ndarray) -> Image.Image:
    """Float ``[3, H, W]`` (or ``[1, 3, H, W]``) in [0, 1] → 8-bit RGB PIL image."""
    if image.ndim == 4:
        image = image[0]
    array = np.clip(image, 0, 1)  # the one float copy; the rest happens in place
    array *= np.float32(255.0)
    np.round(array, out=array)
    return Image.fromarray(np.ascontiguousarray(array.astype(np.uint8).transpose(1, 2, 0)), "RGB")


def frames_to_array(frames: np.ndarray) -> np.ndarray:
    """``[N, H, W, 3]`` uint8 → float32 ``[N, 3, H, W]`` in [0, 1]."""
    return frames.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)


def array_to_frames(images: np.ndarray) -> np.ndarray:
    """Float ``[N, 3, H, W]`` in [0, 1] → ``[N, H, W, 3]`` uint8."""
    return np.round(np.clip(images, 0, 1) * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)


def pad_to_min_side(images: np.ndarray) -> np.ndarray:
    """Edge-pad sides under :data:`MIN_SIDE` at the bottom and right (crop the output back)."""
    h, w = images.shape[-2:]
    if min(h, w) >= MIN_SIDE:
        return images
    pad = ((0, 0), (0, 0), (0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)))
    return np.pad(images, pad, mode="edge")


def _linear_axis(length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a linear resize along one axis, as torch's
    ``interpolate(mode="bilinear", align_corners=False)`` computes them."""
    src = np.maximum((np.arange(size, dtype=np.float64) + 0.5) * (length / size) - 0.5, 0.0)
    low = np.minimum(src.astype(np.int64), length - 1)
    high = np.minimum(low + 1, length - 1)
    return low, high, (src - low).astype(np.float32)


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``[..., H, W]`` to ``size`` without antialiasing (weight maps)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    low, high, frac = _linear_axis(maps.shape[-2], size[0])
    rows = maps[..., low, :] * (1 - frac)[:, None] + maps[..., high, :] * frac[:, None]
    low, high, frac = _linear_axis(maps.shape[-1], size[1])
    return (rows[..., low] * (1 - frac) + rows[..., high] * frac).astype(np.float32)


def resize_long_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resize ``[3, H, W]`` so that its long side is ``size`` (antialiased, Pillow's bilinear
    per channel in float), keeping the aspect."""
    h, w = image.shape[-2:]
    new_h, new_w = long_side_shape(h, w, size)
    if (new_h, new_w) == (h, w):
        return image
    channels = [
        np.asarray(Image.fromarray(channel, "F").resize((new_w, new_h), Image.Resampling.BILINEAR))
        for channel in image.astype(np.float32)
    ]
    return np.stack(channels)


def preserve_color(stylized: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """Luminance-only transfer (BT.601, as :func:`fastnst.infer.stylize.preserve_color`):
    the stylized brightness with the photo's chroma."""
    r, g, b = stylized[:, 0], stylized[:, 1], stylized[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    pr, pg, pb = photo[:, 0], photo[:, 1], photo[:, 2]
    py = 0.299 * pr + 0.587 * pg + 0.114 * pb
    cb = (pb - py) * 0.564
    cr = (pr - py) * 0.713
    red = y + cr / 0.713
    blue = y + cb / 0.564
    green = (y - 0.299 * red - 0.114 * blue) / 0.587
    return np.clip(np.stack((red, green, blue), axis=1), 0, 1).astype(np.float32)


# ``strength`` above 1 makes the strokes bolder rather than mixing in the photo: the output's
# detail around a Gaussian blur of this sigma (px) is multiplied by the strength. 4 px holds a
# stroke of the bundled models (their 4-px lattice, 9x9 heads). Up to MAX_STRENGTH: beyond
# it the detail clips. Measured on video in docs/VIDEO.md, "Bolder strokes".
STROKE_SIGMA = 4.0
MAX_STRENGTH = 2.0


def gaussian_blur(images: np.ndarray, sigma: float = STROKE_SIGMA) -> np.ndarray:
    """``[..., H, W]`` blurred in y then x, the border repeated (any size of image): with
    OpenCV when it is installed (the video extra; several times faster), else in NumPy."""
    try:
        import cv2
    except ImportError:
        return blur_numpy(images, sigma)
    taps = gaussian_taps(sigma)
    planes = np.ascontiguousarray(images, dtype=np.float32).reshape(-1, *images.shape[-2:])
    out = [cv2.sepFilter2D(p, -1, taps, taps, borderType=cv2.BORDER_REPLICATE) for p in planes]
    return np.stack(out).reshape(images.shape)


def blur_numpy(images: np.ndarray, sigma: float = STROKE_SIGMA) -> np.ndarray:
    """:func:`gaussian_blur` without OpenCV: the taps summed over shifted copies."""
    taps = gaussian_taps(sigma)
    radius = len(taps) // 2
    out = images.astype(np.float32)
    for axis in (out.ndim - 2, out.ndim - 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        length = out.shape[axis]
        window = [slice(None)] * out.ndim
        out = np.zeros_like(out)
        for k, tap in enumerate(taps):
            window[axis] = slice(k, k + length)
            out += tap * padded[tuple(window)]
    return out


def bolder_strokes(
    images: np.ndarray, strength: float, blur: Callable[[np.ndarray], np.ndarray] = gaussian_blur
) -> np.ndarray:
    """``[N, 3, H, W]`` with the detail around ``blur`` times ``strength`` (≥ 1), clipped to
    [0, 1]: a ``--strength`` above 1."""
    low = blur(images)
    return np.clip(low + np.float32(strength) * (images - low), 0, 1).astype(np.float32)
