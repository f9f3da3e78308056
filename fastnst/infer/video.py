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
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from tqdm import tqdm

from fastnst.errors import UserError, sigterm_deferred
from fastnst.files import FILE_MODE, check_replaceable, temp_beside
from fastnst.runtime.arrays import array_to_frames, frames_to_array

if TYPE_CHECKING:  # tensors only with a torch device: the onnx path runs on NumPy
    import torch

QUEUE_DEPTH = 4
_END = object()


@dataclass(frozen=True)
class OutputFormat:
    """How a video of one file type is written: its video codec, and its audio codec when
    the source's audio cannot simply be copied (None: no audio in this format)."""

    video_codec: str
    audio_codec: str | None = "copy"


# By output suffix. WebM holds only VP8/VP9/AV1 with Opus/Vorbis audio, so AAC or MP3 audio
# is transcoded to Opus there; a GIF has no audio.
OUTPUT_FORMATS = {
    ".mp4": OutputFormat("libx264"),
    ".m4v": OutputFormat("libx264"),
    ".mov": OutputFormat("libx264"),
    ".mkv": OutputFormat("libx264"),
    ".webm": OutputFormat("libvpx-vp9", "libopus"),
    ".gif": OutputFormat("gif", None),
}
WEBM_AUDIO = {"opus", "vorbis"}


def output_format(target: Path) -> OutputFormat:
    """The format for ``target``'s suffix, or a user error naming the ones there are."""
    fmt = OUTPUT_FORMATS.get(target.suffix.lower())
    if fmt is None:
        names = ", ".join(OUTPUT_FORMATS)
        raise UserError(f"cannot write video to {target.name!r}: use one of {names}")
    return fmt


class VideoReadError(UserError):
    """A video that cannot be opened or holds no frames."""


def open_video(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoReadError(f"no such video: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(f"cannot read video {path}: {_reason(exc)}") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path} has no video stream")
    return container


def frames_to_tensor(frames: np.ndarray, device: torch.device | None) -> Any:
    """``[N, H, W, 3]`` uint8 → float ``[N, 3, H, W]`` in [0, 1]; converted on the device,
    so only bytes cross the bus. ``device`` None: a NumPy array (the onnx backend)."""
    if device is None:
        return frames_to_array(frames)
    import torch

    batch = torch.from_numpy(frames)
    if device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_frames(images: Any) -> np.ndarray:
    """Float ``[N, 3, H, W]`` (a tensor or a NumPy array) → ``[N, H, W, 3]`` uint8."""
    if isinstance(images, np.ndarray):
        return array_to_frames(images)
    import torch

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


def _decode(
    container: av.container.InputContainer, batch_size: int, out: _Pipe, max_frames: int = 0
) -> None:
    """Demux in file order: video frames go out in batches, audio packets as they come.
    Stops at once when another stage failed, and after ``max_frames`` frames if set (audio
    past the last frame is dropped then)."""
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    audio = container.streams.audio[:1]
    frames, stamps = [], []
    decoded = 0
    last_time: float | None = None
    for packet in container.demux(video, *audio):
        if out.failed.is_set():
            return
        if packet.stream.type == "audio":
            too_late = (
                last_time is not None
                and packet.pts is not None
                and (float(packet.pts * packet.time_base) > last_time)
            )
            if packet.dts is not None and not too_late:
                out.put(("audio", packet))
            continue
        if max_frames and decoded >= max_frames:
            continue  # keep demuxing the audio up to the last frame's time
        for frame in packet.decode():
            frames.append(frame.to_ndarray(format="rgb24"))
            stamps.append(frame.pts)
            decoded += 1
            if max_frames and decoded >= max_frames:
                last_time = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            if len(frames) == batch_size:
                out.put(("video", np.stack(frames), stamps))
                frames, stamps = [], []
            if max_frames and decoded >= max_frames:
                break
    if frames:
        out.put(("video", np.stack(frames), stamps))
    out.put(_END)


def _encoder_stream(
    output: av.container.OutputContainer,
    source: av.video.VideoStream,
    codec: str,
    crf: int,
    preset: str,
    frame_size: tuple[int, int] | None = None,
) -> av.video.VideoStream:
    rate = source.average_rate or source.guessed_rate or Fraction(30)
    stream = output.add_stream(codec, rate=rate)
    width, height = frame_size or (source.codec_context.width, source.codec_context.height)
    stream.width, stream.height = width, height
    even = stream.width % 2 == 0 and stream.height % 2 == 0
    if codec == "gif":
        stream.pix_fmt = "rgb8"
    else:
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
    stream.time_base = source.time_base
    stream.thread_type = "AUTO"
    if codec == "libx264":
        stream.options = {"crf": str(crf), "preset": preset}
    elif codec == "libvpx-vp9":
        stream.options = {"crf": str(crf + 13), "b": "0", "deadline": "realtime", "cpu-used": "8"}
    return stream


def _encode(
    output: av.container.OutputContainer,
    video: av.video.VideoStream,
    audio: av.stream.Stream | None,
    copy_audio: bool,
    time_base: Fraction,
    pipe: _Pipe,
    progress: tqdm,
) -> None:
    """Encode stylized frames; audio packets are remuxed untouched (``copy_audio``) or
    decoded and re-encoded for the output's codec, or dropped when ``audio`` is None."""
    for item in pipe:
        if item[0] == "audio":
            packet = item[1]
            if audio is None:
                continue
            if copy_audio:
                packet.stream = audio
                output.mux(packet)
                continue
            for frame in packet.decode():
                frame.pts = None  # the encoder counts samples itself
                output.mux(audio.encode(frame))
            continue
        _, frames, stamps = item
        for array, pts in zip(frames, stamps, strict=True):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            output.mux(video.encode(frame))
        progress.update(len(frames))
    output.mux(video.encode())
    if audio is not None and not copy_audio:
        output.mux(audio.encode(None))


def _audio_stream(
    output: av.container.OutputContainer,
    source: av.audio.AudioStream | None,
    fmt: OutputFormat,
) -> tuple[av.stream.Stream | None, bool]:
    """The output's audio stream and whether packets are copied, or (None, False)."""
    if source is None or fmt.audio_codec is None:
        return None, False
    if fmt.audio_codec == "copy" or source.codec_context.name in WEBM_AUDIO:
        return output.add_stream_from_template(source), True
    stream = output.add_stream(fmt.audio_codec, rate=48000)
    stream.layout = "stereo" if source.codec_context.layout.nb_channels > 1 else "mono"
    return stream, False


def stylize_video(
    source: Path,
    target: Path,
    stylize: Callable[[Any], Any],
    device: torch.device | None,
    batch_size: int = 4,
    codec: str = "",
    crf: int = 18,
    preset: str = "veryfast",
    show_progress: bool = True,
    max_frames: int = 0,
    frame_size: tuple[int, int] | None = None,
) -> int:
    """Stylize ``source`` into ``target`` with ``stylize`` (float batch → float batch);
    returns the number of frames. The file appears only once complete. ``codec`` defaults
    to the one for ``target``'s suffix (:data:`OUTPUT_FORMATS`); ``max_frames`` > 0 stops
    after that many frames. ``frame_size`` ``(width, height)``: the size ``stylize``
    returns when it is not the source's (pixel optimisation works at a reduced size)."""
    target = Path(target)
    fmt = output_format(target)
    check_replaceable(target)
    container = open_video(Path(source))
    failed = threading.Event()
    decoded, encoded = _Pipe(failed), _Pipe(failed)
    count = 0
    stack = ExitStack()
    try:
        tmp = stack.enter_context(temp_beside(target, target.suffix))
        in_video = container.streams.video[0]
        try:
            output = av.open(str(tmp), "w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise UserError(f"cannot write video {target}: {exc}") from None
        with (
            output,
            tqdm(
                total=min(filter(None, (in_video.frames, max_frames)), default=None),
                unit="frame",
                desc=target.name,
                disable=not show_progress,
                dynamic_ncols=True,
            ) as progress,
        ):
            video = _encoder_stream(
                output, in_video, codec or fmt.video_codec, crf, preset, frame_size
            )
            in_audio = container.streams.audio[0] if container.streams.audio else None
            audio, copy_audio = _audio_stream(output, in_audio, fmt)
            stages = [
                _Stage(lambda: _decode(container, batch_size, decoded, max_frames), failed),
                _Stage(
                    lambda: _encode(
                        output, video, audio, copy_audio, in_video.time_base, encoded, progress
                    ),
                    failed,
                ),
            ]
            try:
                # Started with SIGTERM held back: a signal between two starts would leave a
                # decoder demuxing the container closed below (the process then crashes).
                with sigterm_deferred():
                    for stage in stages:
                        stage.start()
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
        declared = in_video.frames
        wanted = min(declared, max_frames) if max_frames else declared
        if declared and count < wanted:
            print(
                f"warning: {source} declares {declared} frames but only {count} could be "
                "decoded (a truncated or damaged file); the output has those",
                file=sys.stderr,
            )
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, target)
    finally:
        stack.close()
        container.close()
    return count


def _reason(error: BaseException) -> str:
    """FFmpeg's words for an error, without PyAV's ``[Errno 1094995529]`` and the path."""
    return getattr(error, "strerror", None) or str(error)


def _as_user_error(error: BaseException, source: Path) -> BaseException:
    if isinstance(error, av.error.FFmpegError):
        return VideoReadError(f"video {source} failed: {_reason(error)}")
    return error
