"""The procedural Spider-Verse stand-ins: each must read as the craft it stands for.

Measured on the three 256-px textures of each look (what training downsizes them towards):
ink share, flat-area share, the period of a dot screen, lightness and palette.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from fastnst.data.textures import UNIVERSES, universe_textures


def _looks(name: str) -> list[np.ndarray]:
    return [t.numpy() for t in universe_textures(name, count=3, size=256)]


def _luminance(image: np.ndarray) -> np.ndarray:
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


def _ink_share(image: np.ndarray) -> float:
    """Share of near-black pixels (every channel dark: ink, not a dark colour)."""
    return float((image.max(0) < 0.2).mean())


def _flat_share(image: np.ndarray) -> float:
    """Share of pixels whose 5x5 neighbourhood is one flat colour."""
    spread = sliding_window_view(image, (5, 5), axis=(1, 2)).std(axis=(-1, -2)).max(0)
    return float((spread < 0.02).mean())


def _saturated_share(image: np.ndarray) -> float:
    return float((image.max(0) - image.min(0) > 0.5).mean())


def _screen(image: np.ndarray) -> tuple[float, float]:
    """Period (px) of the strongest repeat between 5 and 16 px, and its height over the band's
    median: a dot screen is one sharp peak, drawn shapes are a broad slope."""
    grey = _luminance(image)
    spectrum = np.abs(np.fft.fft2(grey - grey.mean()))
    radius = np.hypot(np.fft.fftfreq(grey.shape[0])[:, None], np.fft.fftfreq(grey.shape[1]))
    band = (radius > 1 / 16) & (radius < 1 / 5)
    peak = np.argmax(np.where(band, spectrum, 0))
    return float(1 / radius.flat[peak]), float(spectrum.flat[peak] / np.median(spectrum[band]))


def test_textures_are_deterministic_distinct_and_in_range() -> None:
    means = []
    for name in UNIVERSES:
        a, b = universe_textures(name, count=2, size=64)
        again = universe_textures(name, count=1, size=64)[0]
        assert a.shape == (3, 64, 64) and a.dtype == torch.float32
        assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.05
        assert torch.equal(a, again) and not torch.equal(a, b)
        means.append(a.mean(dim=(1, 2)))
    # The five looks differ in colour, not only in pattern.
    spread = torch.cdist(torch.stack(means), torch.stack(means))
    assert spread[~torch.eye(len(means), dtype=bool)].min() > 0.02


def test_unknown_universe_is_refused() -> None:
    with pytest.raises(KeyError, match="known: miles"):
        universe_textures("earth-42")


def test_miles_is_comic_print() -> None:
    """Bold black contours around flat colour areas, and Ben-Day dots on a regular screen."""
    for image in _looks("miles"):
        assert 0.05 < _ink_share(image) < 0.45
        assert _flat_share(image) > 0.3  # flat colour, not dots everywhere
        period, height = _screen(image)
        assert 8 < period < 12 and height > 8
        assert _saturated_share(image) > 0.15  # printed red, blue and yellow


def test_gwen_is_light_watercolour_with_ink_lines() -> None:
    for image in _looks("gwen"):
        r, g, b = image
        assert _luminance(image).mean() > 0.75  # pale paper and pastel washes
        assert _saturated_share(image) < 0.02
        lines = float((_luminance(image) < 0.35).mean())
        assert 0.005 < lines < 0.08  # thin dark lines, not areas
        assert ((r > b + 0.05) & (r > g)).mean() > 0.2  # pinks
        assert (b > r + 0.05).mean() > 0.2  # cyans
        assert _flat_share(image) > 0.3  # washes, not grain


def test_punk_is_a_collage_of_paper_ink_and_acid_colour() -> None:
    for image in _looks("punk"):
        assert _ink_share(image) > 0.1
        assert _saturated_share(image) > 0.08
        assert (_luminance(image) > 0.85).mean() > 0.15  # white paper and torn rims
        assert _flat_share(image) > 0.28  # pasted pieces, not noise


def test_mumbattan_is_manga_screentone_and_linework() -> None:
    for image in _looks("mumbattan"):
        period, height = _screen(image)
        assert 6.5 < period < 9 and height > 15  # a fine, regular dot screen
        assert _ink_share(image) > 0.2
        r, _, b = image
        warm = (image.max(0) - image.min(0) > 0.5) & (r > b)
        assert warm.mean() > 0.05  # saffron and magenta accents


def test_nueva_york_is_clean_neon_on_deep_blue() -> None:
    for image in _looks("nueva_york"):
        grey = _luminance(image)
        laplacian = 4 * grey - sum(np.roll(grey, s, a) for s in (1, -1) for a in (0, 1))
        assert np.abs(laplacian).mean() < 0.06  # clean: no grain, no scanlines
        assert _flat_share(image) > 0.5
        assert _saturated_share(image) > 0.15
        assert image[2].mean() > image[0].mean()  # a blue world
