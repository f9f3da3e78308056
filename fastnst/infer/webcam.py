"""Live stylization of a camera with an fps readout.

Capture goes through PyAV (a core dependency): ``v4l2`` on Linux, ``avfoundation`` on macOS;
any other source string (a file, an RTSP URL) is opened as it is. Showing a window needs an
OpenCV build with GUI support (``opencv-python``, not the headless wheel); without one, pass
``--output`` to record the stylized stream instead. ``q``/Esc in the window, Ctrl-C, the end
of the source or ``--max-frames`` all stop it cleanly.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from fastnst.errors import UserError
from fastnst.infer.fps import FpsMeter
from fastnst.infer.video import frames_to_tensor, tensor_to_frames

if TYPE_CHECKING:
    import torch

RECORD_CLOCK = Fraction(1, 1000)  # recorded frames carry wall-clock milliseconds
WINDOW = "fastnst (q to quit)"


def open_camera(source: str) -> av.container.InputContainer:
    """A camera index (``0``) or any source FFmpeg can open."""
    try:
        if source.isdigit():
            if sys.platform.startswith("linux"):
                return av.open(f"/dev/video{source}", format="v4l2")
            if sys.platform == "darwin":
                return av.open(source, format="avfoundation")
            raise UserError('on this system give the camera as a device name, e.g. video="…"')
        return av.open(source)
    except (av.error.FFmpegError, OSError) as exc:
        raise UserError(f"cannot open camera {source}: {exc}") from None


def camera_frames(container: av.container.InputContainer) -> Iterator[np.ndarray]:
    stream = container.streams.video[0]
    for frame in container.decode(stream):
        yield frame.to_ndarray(format="rgb24")


def _window() -> object | None:
    """OpenCV's HighGUI module when this build has one, else ``None``."""
    try:
        import cv2

        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        return cv2
    except Exception:  # noqa: BLE001 - no cv2, or a headless build
        return None


def run_webcam(
    source: str,
    stylize: Callable[[Any], Any],
    device: torch.device | None,
    record: Path | None = None,
    max_frames: int = 0,
) -> int:
    """Show (or record) the stylized camera until told to stop; returns frames shown."""
    gui = _window()
    if gui is None and record is None:
        raise UserError(
            "no window can be shown (OpenCV without GUI support): pass --output FILE to record"
        )
    container = open_camera(source)
    writer = stream = None
    meter, shown = FpsMeter(), 0
    started, last_pts = time.perf_counter(), -1
    try:
        for array in camera_frames(container):
            frame = tensor_to_frames(stylize(frames_to_tensor(array[None], device)))[0]
            fps = meter.tick()
            print(f"\r{fps:6.1f} frames/s", end="", file=sys.stderr, flush=True)
            if record is not None:
                if writer is None:
                    writer = av.open(str(record), "w")
                    stream = writer.add_stream("libx264", rate=30)
                    stream.width, stream.height, stream.pix_fmt = (
                        frame.shape[1],
                        frame.shape[0],
                        "yuv444p",
                    )
                    stream.time_base = RECORD_CLOCK
                    stream.codec_context.time_base = RECORD_CLOCK  # no two frames on one tick
                    started = time.perf_counter()
                # Stamped by the wall clock: the recording plays at the speed it was shown,
                # whatever rate the camera and the model reached (not an assumed 30 fps).
                pts = max(last_pts + 1, round((time.perf_counter() - started) / RECORD_CLOCK))
                packet_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                packet_frame.pts, packet_frame.time_base, last_pts = pts, RECORD_CLOCK, pts
                writer.mux(stream.encode(packet_frame))
            shown += 1
            if gui is not None:
                bgr = np.ascontiguousarray(frame[:, :, ::-1])
                gui.putText(
                    bgr, f"{fps:.1f} fps", (10, 30), gui.FONT_HERSHEY_SIMPLEX, 1, (0, 255, 0), 2
                )
                gui.imshow(WINDOW, bgr)
                if gui.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            if max_frames and shown >= max_frames:
                break
    except KeyboardInterrupt:
        pass
    finally:
        print(file=sys.stderr)
        if writer is not None:
            writer.mux(stream.encode())
            writer.close()
        container.close()
        if gui is not None:
            gui.destroyAllWindows()
    return shown
