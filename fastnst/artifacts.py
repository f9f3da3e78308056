"""Artifact measures for stylized outputs: patterns the network paints everywhere.

A pattern that a network stamps on every image (diagonal hatching, a stripe of a few pixels'
period, a checkerboard) sits at the same spatial frequency in every output, whatever the
photo; the photos' own content does not. So the mean power spectrum of many output tiles
shows the pattern as a sharp peak above the smooth, nearly radially symmetric fall-off that
natural images share, while content averages out. Two numbers come from it:

- ``periodic``: the fraction of the mean spectrum's energy (above ``LOW_CUTOFF``) that lies
  in sharp peaks: bins more than ``PEAK_FACTOR`` times the median of their 5x5 neighbourhood.
  Near 0 for photos (4e-4 on the development photos); a painted pattern raises it.
- ``peak``: the largest bin's ratio to its neighbourhood's median (the sharpest peak).

A third, per image, compares the output with its photo: ``hf_ratio``, the share of
energy above ``HF_CUTOFF`` cycles/pixel in the output over the same share in the photo
(fine texture added by the style, or grain).

Everything is numpy: images are float RGB in [0, 1], ``[3, H, W]`` or ``[H, W, 3]`` arrays,
converted to luminance first (hatching shows in brightness, not only in one channel).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

TILE = 128
# Frequencies (cycles/pixel, Nyquist 0.5) below this are content and layout, not pattern.
LOW_CUTOFF = 1 / 32
HF_CUTOFF = 0.25
PEAK_FACTOR = 3.0
NEIGHBOURHOOD = 5
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


@dataclass(frozen=True)
class SpectrumScore:
    """The periodic-pattern score of a set of images, and how many tiles it rests on."""

    periodic: float
    peak: float
    tiles: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def luminance(image: np.ndarray) -> np.ndarray:
    """``[H, W]`` luminance of a ``[3, H, W]`` or ``[H, W, 3]`` RGB array (or a grey one)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        return image
    if image.shape[0] == 3 and image.shape[-1] != 3:
        image = np.moveaxis(image, 0, -1)
    return image @ _LUMA


def _window(size: int) -> np.ndarray:
    hann = np.hanning(size)
    return np.outer(hann, hann)


def tile_spectra(image: np.ndarray, tile: int = TILE) -> np.ndarray:
    """Power spectra (``[n, tile, tile]``, DC at the centre) of the image's non-overlapping
    tiles, each mean-removed, Hann-windowed and scaled to unit total power, so bright or
    busy tiles do not outweigh the others."""
    grey = luminance(image)
    h, w = grey.shape
    if min(h, w) < tile:
        raise ValueError(f"images need a side of at least {tile} px, got {w}x{h}")
    window = _window(tile)
    spectra = []
    for top in range(0, h - tile + 1, tile):
        for left in range(0, w - tile + 1, tile):
            patch = grey[top : top + tile, left : left + tile]
            patch = (patch - patch.mean()) * window
            power = np.abs(np.fft.fftshift(np.fft.fft2(patch))) ** 2
            total = power.sum()
            if total > 1e-12:  # a flat tile has no pattern to show
                spectra.append(power / total)
    return np.asarray(spectra).reshape(-1, tile, tile)


def _radius(tile: int) -> np.ndarray:
    freqs = np.fft.fftshift(np.fft.fftfreq(tile))
    fy, fx = np.meshgrid(freqs, freqs, indexing="ij")
    return np.hypot(fy, fx)


def _local_median(spectrum: np.ndarray, size: int = NEIGHBOURHOOD) -> np.ndarray:
    """Median of each bin's ``size``x``size`` neighbourhood (in log power: the spectrum spans
    decades). Content spreads over neighbouring bins (edges make ridges, not points); a
    pattern repeated with one period is a point, so it stands far above this."""
    pad = size // 2
    logs = np.pad(np.log(np.maximum(spectrum, 1e-30)), pad, mode="reflect")
    windows = sliding_window_view(logs, (size, size)).reshape(*spectrum.shape, -1)
    return np.exp(np.median(windows, axis=-1))


def spectrum_peaks(mean_spectrum: np.ndarray) -> tuple[float, float]:
    """``(periodic, peak)`` of a mean power spectrum (see the module docstring)."""
    band = _radius(mean_spectrum.shape[0]) >= LOW_CUTOFF
    local = _local_median(mean_spectrum)
    excess = np.clip(mean_spectrum - PEAK_FACTOR * local, 0, None)
    band_energy = float(mean_spectrum[band].sum())
    periodic = float(excess[band].sum()) / band_energy if band_energy > 0 else 0.0
    return periodic, float((mean_spectrum / local)[band].max())


def periodic_score(images: Iterable[np.ndarray], tile: int = TILE) -> SpectrumScore:
    """Score a set of images (ideally many photos through one model): a pattern common to
    all of them peaks in their mean spectrum."""
    total = None
    count = 0
    for image in images:
        spectra = tile_spectra(image, tile)
        if len(spectra) == 0:
            continue
        total = spectra.sum(0) if total is None else total + spectra.sum(0)
        count += len(spectra)
    if total is None:
        raise ValueError("no tiles with any contrast to score")
    periodic, peak = spectrum_peaks(total / count)
    return SpectrumScore(periodic=periodic, peak=peak, tiles=count)


def high_frequency_share(image: np.ndarray, cutoff: float = HF_CUTOFF) -> float:
    """Share of the (mean-removed, windowed) image's power above ``cutoff`` cycles/pixel."""
    grey = luminance(image)
    grey = (grey - grey.mean()) * np.outer(np.hanning(grey.shape[0]), np.hanning(grey.shape[1]))
    power = np.abs(np.fft.fft2(grey)) ** 2
    fy = np.fft.fftfreq(grey.shape[0])[:, None]
    fx = np.fft.fftfreq(grey.shape[1])[None, :]
    high = np.hypot(fy, fx) > cutoff
    total = power.sum()
    return float(power[high].sum() / total) if total > 0 else 0.0


def high_frequency_ratio(output: np.ndarray, photo: np.ndarray) -> float:
    """How much more of its energy the output has at fine scales than its photo (1 = same)."""
    return high_frequency_share(output) / max(high_frequency_share(photo), 1e-9)
