"""The bad-input matrix for video: one row per hostile input (tests/bad_input.py checks a row)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bad_input import BASE, Row, check_row, tiny_model

TO_MP4 = ("--output", "o.mp4")  # relative: the matrix runs in its temporary folder


def _video(t: Path, *extra: str) -> list[str]:
    import av

    with av.open(str(t / "in.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), "rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    model = tiny_model(t / "m.safetensors")
    return [
        "--model",
        str(model),
        "--device",
        "cpu",
        "--quiet",
        "--video",
        str(t / "in.mp4"),
        *extra,
    ]


def _truncated_video(t: Path) -> list[str]:
    """An mp4 whose index is at the front (20 frames declared), cut to half its bytes."""
    import av

    whole = t / "whole.mp4"
    noise = np.random.default_rng(0)
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = {"crf": "0"}
        for i in range(20):
            array = noise.integers(0, 256, (64, 96, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(array, "rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    (t / "in.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    model = tiny_model(t / "m.safetensors")
    return [
        "--model",
        str(model),
        "--quiet",
        "--video",
        str(t / "in.mp4"),
        "--output",
        str(t / "o.mp4"),
    ]


def _junk_video(t: Path) -> list[str]:
    (t / "in.mp4").write_bytes(b"junk" * 100)
    model = tiny_model(t / "m.safetensors")
    return [
        "--model",
        str(model),
        "--quiet",
        "--video",
        str(t / "in.mp4"),
        "--output",
        str(t / "o.mp4"),
    ]


ROWS: dict[str, Row] = {
    # video
    "video to .png": Row(
        lambda t: _video(t, "--output", str(t / "out.png")),
        1,
        "error: cannot write video to 'out.png'",
        ("in.mp4", *BASE),
    ),
    "video with --max-size": Row(
        lambda t: _video(t, *TO_MP4, "--max-size", "8"),
        1,
        "error: --max-size applies to images",
        ("in.mp4", *BASE),
    ),
    "video --max-frames 2": Row(
        lambda t: _video(t, *TO_MP4, "--max-frames", "2"),
        0,
        "",
        ("in.mp4", "o.mp4", *BASE),
    ),
    "video --temporal-blend 1.5": Row(
        lambda t: _video(t, *TO_MP4, "--temporal-blend", "1.5"),
        1,
        "error: --temporal-blend must be in [0, 1)",
        ("in.mp4", *BASE),
    ),
    "video --input-smooth 1": Row(
        lambda t: _video(t, *TO_MP4, "--input-smooth", "1"),
        1,
        "error: --input-smooth must be in [0, 1)",
        ("in.mp4", *BASE),
    ),
    "video --batch -1": Row(
        lambda t: _video(t, *TO_MP4, "--batch", "-1"),
        1,
        "error: --batch",
        ("in.mp4", *BASE),
    ),
    "truncated video": Row(_truncated_video, 0, "warning: ", ("in.mp4", "o.mp4", *BASE)),
    "unreadable video": Row(
        _junk_video,
        1,
        "error: cannot read video",
        ("in.mp4", *BASE),
        contains="Invalid data found when processing input",
    ),
    "--blend-kind without a blend": Row(
        lambda t: _video(t, *TO_MP4, "--temporal-blend", "0", "--blend-kind", "flow"),
        1,
        "error: --blend-kind changes the temporal blend",
        ("in.mp4", *BASE),
    ),
}


@pytest.mark.parametrize("name", [name for name, row in ROWS.items() if row is not None])
def test_bad_input_row(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_row(ROWS[name], tmp_path, capsys, monkeypatch)
