"""fastnst stylize on video files and a (simulated) webcam: frames, rate, size and audio survive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from fastnst.export import ModelInfo, save_model
from fastnst.files import FILE_MODE
from fastnst.infer import main
from fastnst.model import NetConfig, TransformerNet

FRAMES, RATE, SIZE = 12, 15, (64, 48)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(2)
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_model(net, path, ModelInfo(net={}, style_names=["a", "b"]))


def _make_clip(path: Path, frames: int = FRAMES, audio: bool = True) -> Path:
    """A short clip with moving noise and, optionally, an AAC tone track."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        sound = container.add_stream("aac", rate=16000) if audio else None
        for index in range(frames):
            array = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, RATE)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples = 16000 * max(frames, 4) // RATE
            tone = np.sin(np.arange(samples) * 0.1).astype(np.float32)[None]
            chunk = 1024
            for start in range(0, samples, chunk):
                block = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, start : start + chunk]),
                    format="fltp",
                    layout="mono",
                )
                block.sample_rate, block.pts = 16000, start
                container.mux(sound.encode(block))
            container.mux(sound.encode())
    return path


def _describe(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "frames": frames,
            "rate": stream.average_rate,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "audio": len(container.streams.audio),
        }


def _run(model: Path, *args: str) -> int:
    return main(["--model", str(model), "--device", "cpu", "--quiet", *args])


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_video_keeps_frames_rate_size_and_audio(model: Path, tmp_path: Path) -> None:
    clip = _make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mp4"
    assert _run(model, "--video", str(clip), "--output", str(out), "--style", "a:1,b:1") == 0
    assert _describe(out) == _describe(clip)
    assert _describe(out)["audio"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]
    difference = np.abs(_frames(out).astype(np.int16) - _frames(clip)).mean()
    assert difference > 20  # stylized, not passed through (re-encoding alone moves ~2)
    assert out.stat().st_mode & 0o777 == FILE_MODE


@pytest.mark.parametrize(("suffix", "audio"), [(".webm", 1), (".mov", 1), (".mkv", 1), (".gif", 0)])
def test_video_formats_by_suffix(model: Path, tmp_path: Path, suffix: str, audio: int) -> None:
    clip = _make_clip(tmp_path / "in.mp4")
    out = tmp_path / f"out{suffix}"
    assert _run(model, "--video", str(clip), "--output", str(out)) == 0
    described = _describe(out)
    assert described["frames"] == FRAMES and described["size"] == SIZE
    assert described["audio"] == audio
    assert np.abs(_frames(out).astype(np.int16) - _frames(clip)).mean() > 20


def test_video_to_an_image_name_is_refused(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    clip = _make_clip(tmp_path / "in.mp4", audio=False)
    assert _run(model, "--video", str(clip), "--output", str(tmp_path / "out.png")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write video to 'out.png': use one of .mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_video_max_frames(model: Path, tmp_path: Path) -> None:
    clip = _make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mp4"
    assert _run(model, "--video", str(clip), "--output", str(out), "--max-frames", "5") == 0
    assert _describe(out)["frames"] == 5 and _describe(out)["audio"] == 1


def test_truncated_video_warns_with_frame_counts(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """An mp4 whose index is at the front, cut short: it declares more frames than it has."""
    rng = np.random.default_rng(0)
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"crf": "0"}  # big frames: the cut falls well inside the clip
        for index in range(20):
            array = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, RATE)
            container.mux(video.encode(frame))
        container.mux(video.encode())
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "out.mp4"
    assert _run(model, "--video", str(cut), "--output", str(out)) == 0
    warning = capsys.readouterr().err.strip().splitlines()[-1]
    written = _describe(out)["frames"]
    assert 0 < written < 20
    assert warning.startswith(f"warning: {cut} declares 20 frames but only {written} could")


def test_sigterm_during_video_leaves_nothing_behind(model: Path, tmp_path: Path) -> None:
    clip = _make_clip(tmp_path / "in.mp4", frames=600, audio=False)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastnst",
            "stylize",
            "--model",
            str(model),
            "--device",
            "cpu",
            "--quiet",
            "--batch",
            "1",
            "--video",
            str(clip),
            "--output",
            str(out),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: terminated (SIGTERM)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_sigterm_between_stage_starts_stops_every_stage(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race behind the crash on a loaded CPU: SIGTERM right after the decoder thread
    started. Every stage must be stopped before the source and output are closed (a decoder
    still demuxing a closed container crashed the process at exit), and no file is left."""
    from fastnst.errors import Terminated, terminate_on_sigterm
    from fastnst.infer import video as video_module
    from fastnst.infer.stylize import Stylizer

    clip = _make_clip(tmp_path / "in.mp4", frames=60, audio=False)
    stylizer = Stylizer.load(model, "cpu")
    started: list[threading.Thread] = []
    start = video_module._Stage.start

    def start_then_signal(stage: threading.Thread) -> None:
        start(stage)
        started.append(stage)
        if len(started) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(video_module._Stage, "start", start_then_signal)
    previous = signal.getsignal(signal.SIGTERM)
    terminate_on_sigterm()
    try:
        with pytest.raises(Terminated):
            video_module.stylize_video(
                clip,
                tmp_path / "out.mp4",
                lambda frames: stylizer(frames, torch.tensor([1.0, 0.0])),
                torch.device("cpu"),
                batch_size=1,
                show_progress=False,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert started and not any(stage.is_alive() for stage in started)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_video_without_audio(model: Path, tmp_path: Path) -> None:
    clip = _make_clip(tmp_path / "in.mp4", audio=False)
    out = tmp_path / "out.mkv"
    assert _run(model, "--video", str(clip), "--output", str(out), "--batch", "5") == 0
    assert _describe(out) == {"frames": FRAMES, "rate": RATE, "size": SIZE, "audio": 0}


@pytest.mark.parametrize("kind", ["missing", "garbage", "zero_frames"])
def test_bad_video_is_one_line_error(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    clip = tmp_path / ("in.mkv" if kind == "zero_frames" else "in.mp4")
    if kind == "garbage":
        clip.write_bytes(b"\x00not a video" * 100)
    elif kind == "zero_frames":
        _make_clip(clip, frames=0, audio=True)
        assert _describe(clip)["frames"] == 0
    out = tmp_path / "out.mp4"
    assert _run(model, "--video", str(clip), "--output", str(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ([clip.name] if kind != "missing" else [])


def test_webcam_source_records_and_stops(model: Path, tmp_path: Path) -> None:
    """No camera here: a clip stands in for one (same capture path, file instead of v4l2)."""
    clip = _make_clip(tmp_path / "cam.mp4", audio=False)
    out = tmp_path / "live.mp4"
    args = ["--webcam", str(clip), "--output", str(out), "--max-frames", "5"]
    assert _run(model, *args) == 0
    assert _describe(out)["frames"] == 5


def test_cockatoo_first_frames(model: Path, tmp_path: Path, shared_data: Path) -> None:
    """The real 720p clip with its mp3 track: a short cut keeps rate, size and audio."""
    source = shared_data / "video" / "cockatoo.mp4"
    cut = tmp_path / "cut.mp4"
    with av.open(str(source)) as src, av.open(str(cut), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "video" and packet.pts * packet.time_base > 0.4:
                break
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    out = tmp_path / "out.mp4"
    assert _run(model, "--video", str(cut), "--output", str(out)) == 0
    before, after = _describe(cut), _describe(out)
    assert after == before and after["size"] == (1280, 720) and after["audio"] == 1


def test_a_model_failure_stops_every_stage_and_cleans_up(tmp_path: Path) -> None:
    """The model raising mid-clip: the first cause is reported, within a second, and the
    temporary output is gone (the decoder does not read the rest of the file first)."""
    from fastnst.infer.video import stylize_video

    clip = _make_clip(tmp_path / "in.mp4", frames=400, audio=True)
    calls = []

    def failing(frames: torch.Tensor) -> torch.Tensor:
        calls.append(len(frames))
        if len(calls) == 2:
            raise RuntimeError("model broke")
        return frames

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="model broke"):
        stylize_video(clip, tmp_path / "out.mp4", failing, torch.device("cpu"), batch_size=2)
    assert time.monotonic() - started < 5
    assert sum(calls) <= 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize("kind", [None, "flow", "plain"])
def test_video_with_temporal_blend(model: Path, tmp_path: Path, kind: str | None) -> None:
    pytest.importorskip("cv2")
    clip = _make_clip(tmp_path / "in.mp4")
    out, blended = tmp_path / "out.mp4", tmp_path / "blended.mp4"
    lossless = ["--video", str(clip), "--crf", "0"]  # pixels compared, not the encoder's choices
    assert _run(model, *lossless, "--output", str(out), "--temporal-blend", "0") == 0
    args = [*lossless, "--output", str(blended), "--temporal-blend", "0.5"]
    assert _run(model, *args, *(["--blend-kind", kind] if kind else [])) == 0
    assert _describe(blended) == _describe(out)
    per_frame, smoothed = _frames(out).astype(np.int16), _frames(blended).astype(np.int16)
    assert np.abs(per_frame[0] - smoothed[0]).mean() < 2  # the first frame has no past
    assert np.abs(per_frame[1:] - smoothed[1:]).mean() > 2  # the others are blended
