"""The live webcam tab without the page: each camera frame the browser streams is shrunk to
the tab's size and run through the model, and the tab shows the rate it keeps.

The default size keeps ``classics-lite`` in real time with a browser on the same 2-core CPU
(18-19 frames/s displayed in headless chromium; 400 px is 18 frames/s for the server alone,
not measured with the browser: docs/BENCHMARKS.md, "Live webcam").
Gradio-free, like :mod:`fastnst.app.core`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from fastnst.images import long_side_shape
from fastnst.infer.fps import FpsMeter
from fastnst.infer.temporal_blend import VideoStream
from fastnst.runtime.arrays import array_to_frames, frames_to_array

# The tab's own model: the page's default (`classics`) manages about 3 frames/s on a 2-core
# CPU, the small network 15-19 at the default size (docs/BENCHMARKS.md, "Live webcam").
LIVE_MODEL = "classics-lite"
LIVE_SIZES = (240, 320, 400, 480, 640)
DEFAULT_LIVE_SIZE = 320
CAMERA_SHAPE = (640, 480)  # (width, height) asked of the camera: the largest size's frame
RESTART_S = 1.0  # a longer gap between frames is a new stream: its rate starts afresh
# The readout is re-sent at most this often: each update re-renders a Markdown block in the
# page, work that the browser would otherwise do for every frame beside the camera's.
READOUT_EVERY_S = 0.5


def shrink_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """A camera frame (uint8 ``[H, W, 3]``) with its long side cut to ``size`` px; never
    enlarged (a small camera is stylized at its own size)."""
    height, width = frame.shape[:2]
    if max(height, width) <= size:
        return frame
    new_h, new_w = long_side_shape(height, width, size)
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]), "RGB")
    return np.asarray(image.resize((new_w, new_h), Image.Resampling.BILINEAR))


def stylize_frame(
    stylizer: Any,
    frame: np.ndarray,
    weights: np.ndarray,
    size: int,
    strength: float = 1.0,
    keep_color: bool = False,
    stream: VideoStream | None = None,
) -> np.ndarray:
    """One camera frame (uint8 ``[H, W, 3]``) at ``size`` px on its long side, stylized
    (uint8, the shrunk frame's size). With this viewer's ``stream`` it is shown as
    ``fastnst stylize --webcam`` shows it: the frames smoothed as the model sees them, a
    recurrent model's guided by its previous output and blended (docs/VIDEO.md)."""
    small = frames_to_array(shrink_frame(frame, size)[None])
    if stream is None:
        return array_to_frames(stylizer(small, weights, strength, keep_color))[0]
    return array_to_frames(stream(stylizer, small, weights, strength, keep_color))[0]


@dataclass
class LiveStats:
    """One viewer's stream: the stylized frames per second it receives and the model's time
    per frame (what the CPU could reach without the browser's round trip)."""

    meter: FpsMeter = field(default_factory=FpsMeter)
    model_s: float = 0.0
    frames: int = 0
    shown_at: float = 0.0
    stream: VideoStream | None = None  # the previous frame and output, for the key's
    # model, steadiness, style, strength, keep colour: what the stream was started for
    stream_key: tuple[str, float, str, float, bool] = ("", 0.0, "", 1.0, False)

    def record(self, model_seconds: float, shape: tuple[int, ...], engine: str) -> str | None:
        """Count one frame served; returns the tab's readout when it is due (the first
        frame of a stream, then every :data:`READOUT_EVERY_S`), else None."""
        now = time.perf_counter()
        if not self.frames or now - self.meter.last > RESTART_S:
            self.meter, self.model_s, self.frames = FpsMeter(), model_seconds, 0
            shown = "starting"
        else:
            shown = f"**{self.meter.tick():.1f} frames/s**"
            self.model_s = 0.9 * self.model_s + 0.1 * model_seconds
        self.frames += 1
        if self.frames > 1 and now - self.shown_at < READOUT_EVERY_S:
            return None
        self.shown_at = now
        return (
            f"{shown} · model {self.model_s * 1000:.0f} ms a frame at "
            f"{shape[1]}×{shape[0]} px ({engine})"
        )
