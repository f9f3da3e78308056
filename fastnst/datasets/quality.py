"""Which film frames are worth keeping as style examples, judged on the pixels alone.

All measures work on ``uint8`` RGB arrays ``[H, W, 3]`` as decoded from a clip. Letterbox
bars are cropped first so that they count neither as darkness nor as a hard edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# Long side at which sharpness is measured, so the threshold means the same for any resolution.
SHARPNESS_SIDE = 512


@dataclass(frozen=True)
class QualityThresholds:
    """A frame is kept only if it passes all three: bright, varied and sharp enough."""

    min_brightness: float = 0.06  # mean luma in [0, 1]; below is a near-black frame
    min_contrast: float = 0.04  # luma standard deviation; below is a near-uniform frame
    min_sharpness: float = 30.0  # variance of the Laplacian at SHARPNESS_SIDE; below is blurry
    bar_level: float = 0.07  # a border row/column darker than this (and flat) is a bar


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in [0, 1], ``[H, W]``."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return rgb.astype(np.float32) @ weights / 255.0


def _content_span(
    profile_mean: np.ndarray, profile_std: np.ndarray, level: float
) -> tuple[int, int]:
    """First and one-past-last index along one axis that is not a dark flat bar."""
    is_bar = (profile_mean < level) & (profile_std < level / 2)
    content = np.flatnonzero(~is_bar)
    if content.size == 0:
        return 0, len(profile_mean)
    return int(content[0]), int(content[-1]) + 1


def letterbox_box(rgb: np.ndarray, bar_level: float = 0.07) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the picture inside black letterbox/pillarbox bars.

    Bars are scanned from the borders inwards only, so a dark band in mid-picture stays.
    Two more pixels go on each cropped side: codecs smear the bar edge into the picture.
    """
    y = luma(rgb)
    height, width = y.shape
    top, bottom = _content_span(y.mean(axis=1), y.std(axis=1), bar_level)
    left, right = _content_span(y.mean(axis=0), y.std(axis=0), bar_level)
    margin = 2
    top, left = (v + margin if v > 0 else 0 for v in (top, left))
    bottom = bottom - margin if bottom < height else height
    right = right - margin if right < width else width
    if bottom - top < height // 4 or right - left < width // 4:
        return 0, 0, width, height  # "bars" covering most of the frame: a dark frame, not bars
    return left, top, right, bottom


def crop_letterbox(rgb: np.ndarray, bar_level: float = 0.07) -> np.ndarray:
    left, top, right, bottom = letterbox_box(rgb, bar_level)
    return rgb[top:bottom, left:right]


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the luma (0-255 scale) at SHARPNESS_SIDE."""
    image = Image.fromarray(rgb)
    scale = SHARPNESS_SIDE / max(image.size)
    if scale < 1:
        size = (max(3, round(image.width * scale)), max(3, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    y = luma(np.asarray(image)) * 255.0
    laplacian = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4.0 * y[1:-1, 1:-1]
    return float(laplacian.var())


def reject_reason(rgb: np.ndarray, thresholds: QualityThresholds) -> str | None:
    """Why a (letterbox-cropped) frame is not a good style example, or None if it is."""
    y = luma(rgb)
    if y.mean() < thresholds.min_brightness:
        return "dark"
    if y.std() < thresholds.min_contrast:
        return "uniform"
    if sharpness(rgb) < thresholds.min_sharpness:
        return "blurry"
    return None
