"""Scene-cut detection from colour histograms of consecutive frames.

A cut changes the colour distribution at once; camera moves and animation within a shot
change it slowly. The detector compares each frame to the one before it, so a cut between
two shots of the same palette is missed; min spacing and the duplicate filter still apply.
"""

from __future__ import annotations

import numpy as np

HISTOGRAM_BINS = 16


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Per-channel normalised histograms, ``[3, HISTOGRAM_BINS]``; each row sums to 1."""
    pixels = rgb.reshape(-1, 3) // (256 // HISTOGRAM_BINS)
    counts = np.stack(
        [np.bincount(pixels[:, c], minlength=HISTOGRAM_BINS) for c in range(3)]
    ).astype(np.float64)
    return counts / counts.sum(axis=1, keepdims=True)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance averaged over channels: 0 same colours, 1 disjoint."""
    return float(np.abs(a - b).sum(axis=1).mean() / 2.0)


class SceneCutDetector:
    """Feed frames in order; ``scene`` is the index of the current shot (0 for the first)."""

    def __init__(self, threshold: float = 0.35) -> None:
        self.threshold = threshold
        self.scene = -1
        self._previous: np.ndarray | None = None

    def update(self, thumbnail: np.ndarray) -> bool:
        """Take the next frame (a small RGB array); True when it starts a new scene."""
        histogram = colour_histogram(thumbnail)
        is_cut = (
            self._previous is None or histogram_distance(self._previous, histogram) > self.threshold
        )
        self._previous = histogram
        if is_cut:
            self.scene += 1
        return is_cut
