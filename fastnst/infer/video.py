"""Stylize a video file to a video file, streaming: frames are never all in memory.

Library choice, by measurement on this project's 2-core CPU (tools/bench_infer.py, section
``video_io``, on ../shared/data/video/cockatoo.mp4, 1280x720): decoding to RGB runs at
about the same speed with PyAV and OpenCV (94 vs 90 frames/s); OpenCV's writer is faster
(mp4v, 123 frames/s against libx264's 15 at its default preset) but can neither copy the
audio track nor keep the source's timestamps, and its MPEG-4 Part 2 output is poor.
imageio-ffmpeg pipes raw frames through an ``ffmpeg`` executable, which is not on this
machine and is not a core dependency. PyAV is already one (it links FFmpeg in-process), so
it is used for both ends: audio packets are remuxed untouched, every frame keeps its pts,
and x264 runs with a fast preset so that encoding keeps up.

Three stages overlap: a decoder thread, the model on the caller's thread, an encoder
thread, joined by small bounded queues (FFmpeg releases the GIL while it works).
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from tqdm import tqdm

from fastnst.errors import UserError

QUEUE_DEPTH = 4
_END = object()


class VideoReadError(UserError):
    """A video that cannot be opened or holds no frames."""


def open_video(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoReadError(f"no such video: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(f"cannot read video {path}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path} has no video stream")
    return container


def frames_to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """``[N, H, W, 3]`` uint8 → float ``[N, 3, H, W]`` in [0, 1]; converted on the device,
    so only bytes cross the bus."""
    batch = torch.from_numpy(frames)
    if device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_frames(images: torch.Tensor) -> np.ndarray:
    return images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class _Pipe:
    """A bounded queue whose ends give up when another stage has failed."""

    def __init__(self, failed: threading.Event) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self.failed = failed

    def put(self, item: object) -> None:
        while not self.failed.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator:
        while not self.failed.is_set():
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item


class _Stage(threading.Thread):
    """A thread that records its exception and raises the shared failure flag."""

    def __init__(self, work: Callable[[], None], failed: threading.Event) -> None:
        super().__init__(daemon=True)
        self.work, self.failed, self.error = work, failed, None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            self.failed.set()


def _decode(container: av.container.InputContainer, batch_size: int, out: _Pipe) -> None:
    """Demux in file order: video frames go out in batches, audio packets as they come."""
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    audio = container.streams.audio[:1]
    frames, stamps = [], []
    for packet in container.demux(video, *audio):
        if packet.stream.type == "audio":
            if packet.dts is not None:
                out.put(("audio", packet))
            continue
        for frame in packet.decode():
            frames.append(frame.to_ndarray(format="rgb24"))
            stamps.append(frame.pts)
            if len(frames) == batch_size:
                out.put(("video", np.stack(frames), stamps))
                frames, stamps = [], []
    if frames:
        out.put(("video", np.stack(frames), stamps))
    out.put(_END)


def _encoder_stream(
    output: av.container.OutputContainer,
    source: av.video.VideoStream,
    codec: str,
    crf: int,
    preset: str,
) -> av.video.VideoStream:
    rate = source.average_rate or source.guessed_rate or Fraction(30)
    stream = output.add_stream(codec, rate=rate)
    stream.width, stream.height = source.codec_context.width, source.codec_context.height
    even = stream.width % 2 == 0 and stream.height % 2 == 0
    stream.pix_fmt = "yuv420p" if even else "yuv444p"
    stream.time_base = source.time_base
    stream.thread_type = "AUTO"
    if codec == "libx264":
        stream.options = {"crf": str(crf), "preset": preset}
    return stream


def _encode(
    output: av.container.OutputContainer,
    video: av.video.VideoStream,
    audio: av.stream.Stream | None,
    time_base: Fraction,
    pipe: _Pipe,
    progress: tqdm,
) -> None:
    for item in pipe:
        if item[0] == "audio":
            packet = item[1]
            packet.stream = audio
            output.mux(packet)
            continue
        _, frames, stamps = item
        for array, pts in zip(frames, stamps, strict=True):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            output.mux(video.encode(frame))
        progress.update(len(frames))
    output.mux(video.encode())


def stylize_video(
    source: Path,
    target: Path,
    stylize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int = 4,
    codec: str = "libx264",
    crf: int = 18,
    preset: str = "veryfast",
    show_progress: bool = True,
) -> int:
    """Stylize ``source`` into ``target`` with ``stylize`` (float batch → float batch);
    returns the number of frames. The file appears only once complete."""
    container = open_video(Path(source))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    failed = threading.Event()
    decoded, encoded = _Pipe(failed), _Pipe(failed)
    count = 0
    try:
        in_video = container.streams.video[0]
        try:
            output = av.open(str(tmp), "w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise UserError(f"cannot write video {target}: {exc}") from None
        with (
            output,
            tqdm(
                total=in_video.frames or None,
                unit="frame",
                desc=target.name,
                disable=not show_progress,
                dynamic_ncols=True,
            ) as progress,
        ):
            video = _encoder_stream(output, in_video, codec, crf, preset)
            in_audio = container.streams.audio[0] if container.streams.audio else None
            audio = output.add_stream_from_template(in_audio) if in_audio else None
            stages = [
                _Stage(lambda: _decode(container, batch_size, decoded), failed),
                _Stage(
                    lambda: _encode(output, video, audio, in_video.time_base, encoded, progress),
                    failed,
                ),
            ]
            for stage in stages:
                stage.start()
            try:
                for item in decoded:
                    if item[0] == "video":
                        frames = frames_to_tensor(item[1], device)
                        item = ("video", tensor_to_frames(stylize(frames)), item[2])
                        count += len(item[1])
                    encoded.put(item)
                encoded.put(_END)
            except BaseException:
                failed.set()
                raise
            finally:
                for stage in stages:
                    stage.join()
            for stage in stages:
                if stage.error is not None:
                    raise _as_user_error(stage.error, source)
        if count == 0:
            raise VideoReadError(f"{source} has no decodable video frames")
        os.replace(tmp, target)
    finally:
        container.close()
        tmp.unlink(missing_ok=True)
    return count


def _as_user_error(error: BaseException, source: Path) -> BaseException:
    if isinstance(error, av.error.FFmpegError):
        return VideoReadError(f"video {source} failed: {error}")
    return error
