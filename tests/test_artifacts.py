"""The artifact measure: a pattern painted on every image scores, photos and noise do not."""

from __future__ import annotations

import numpy as np
import pytest

from fastnst.artifacts import (
    high_frequency_ratio,
    periodic_score,
    tile_spectra,
)


def smooth_photo(seed: int, size: int = 256) -> np.ndarray:
    """A photo-like image: random smooth shapes (1/f-ish spectrum), different per seed."""
    rng = np.random.default_rng(seed)
    spectrum = rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    spectrum /= np.maximum(np.hypot(fy, fx), 1 / size) ** 1.5
    grey = np.real(np.fft.ifft2(spectrum))
    grey = (grey - grey.min()) / (grey.max() - grey.min())
    return np.stack([grey, grey * 0.9, 1 - grey], 0)


def hatched(image: np.ndarray, amplitude: float = 0.05, period: int = 4) -> np.ndarray:
    """The image with a diagonal stripe of ``period`` pixels laid over it, as a network's grid
    would paint it."""
    h, w = image.shape[-2:]
    ys, xs = np.mgrid[0:h, 0:w]
    stripe = amplitude * np.sin(2 * np.pi * (xs + ys) / period)
    return np.clip(image + stripe, 0, 1)


def test_a_shared_stripe_scores_far_above_the_photos() -> None:
    photos = [smooth_photo(seed) for seed in range(6)]
    clean = periodic_score(photos)
    striped = periodic_score([hatched(p) for p in photos])
    assert clean.periodic < 0.002
    assert striped.periodic > 10 * clean.periodic
    assert striped.peak > 10 * clean.peak
    assert clean.tiles == 6 * 4


def test_fainter_stripes_score_lower() -> None:
    photos = [smooth_photo(seed) for seed in range(4)]
    faint = periodic_score([hatched(p, 0.01) for p in photos])
    strong = periodic_score([hatched(p, 0.05) for p in photos])
    assert faint.periodic < strong.periodic


def test_white_noise_is_texture_not_a_pattern() -> None:
    rng = np.random.default_rng(0)
    noisy = [np.clip(smooth_photo(s) + rng.normal(0, 0.1, (3, 256, 256)), 0, 1) for s in range(4)]
    assert periodic_score(noisy).periodic < 0.002


def test_high_frequency_ratio_sees_added_fine_texture() -> None:
    photo = smooth_photo(1)
    assert high_frequency_ratio(photo, photo) == pytest.approx(1.0)
    assert high_frequency_ratio(hatched(photo, period=3), photo) > 2.0


def test_flat_tiles_are_skipped_and_small_images_refused() -> None:
    assert len(tile_spectra(np.full((3, 256, 256), 0.5))) == 0
    with pytest.raises(ValueError, match="at least"):
        tile_spectra(np.zeros((3, 64, 64)))
    with pytest.raises(ValueError, match="no tiles"):
        periodic_score([np.full((3, 128, 128), 0.2)])
