"""A frame-rate readout shared by the command-line webcam and the app's live tab (no PyAV,
no torch here, so the app's tab does not need the video extra)."""

from __future__ import annotations

import time


class FpsMeter:
    """Frames per second smoothed over the last second or so."""

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing, self.fps, self.last = smoothing, 0.0, time.perf_counter()

    def tick(self) -> float:
        now = time.perf_counter()
        instant = 1.0 / max(now - self.last, 1e-6)
        self.fps = (
            instant if self.fps == 0 else self.smoothing * self.fps + (1 - self.smoothing) * instant
        )
        self.last = now
        return self.fps
