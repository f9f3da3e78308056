"""The bad-input matrix: every input a hostile user tried, as one row each: what is given,
the exit code, the first line of stderr, and which files exist afterwards (nothing
half-written). Rows that succeed check their output too."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from fastnst.cli import main
from fastnst.export import ModelInfo, save_model
from fastnst.model import NetConfig, TransformerNet


@dataclass(frozen=True)
class Row:
    """``setup(tmp)`` makes the inputs and returns the command's arguments (after the
    subcommand); ``files`` are the names in ``tmp`` afterwards (inputs included)."""

    setup: Callable[[Path], list[str]]
    code: int
    stderr: str  # expected start of stderr's first line ("" = stderr empty)
    files: tuple[str, ...]
    command: str = "stylize"


def _photo(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    array = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def _model(path: Path, names: list[str] | None = None, num_styles: int = 2) -> Path:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=num_styles, width=0.25, num_residual=1))
    return save_model(net, path, ModelInfo(net={}, style_names=names or ["a", "b"]))


def _rewrite_header(model: Path, change: Callable[[dict], object]) -> Path:
    with safe_open(str(model), framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        header = json.loads(handle.metadata()["fastnst"])
    save_file(state, str(model), metadata={"fastnst": json.dumps(change(header))})
    return model


def _bomb(path: Path) -> Path:
    """A valid PNG header claiming 20000x20000 pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1000)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def _stylize(
    t: Path, *extra: str, model: Path | None = None, photo: str = "in.png", output: str = "out.png"
) -> list[str]:
    model = model or _model(t / "m.safetensors")
    return [
        "--model",
        str(model),
        "--device",
        "cpu",
        "--quiet",
        "--input",
        str(t / photo),
        "--output",
        str(t / output),
        *extra,
    ]


def _tiny(t: Path) -> list[str]:
    _photo(t / "in.png", (4, 3))
    return _stylize(t)


def _readonly(t: Path) -> list[str]:
    _photo(t / "in.png")
    _photo(t / "out.png").chmod(0o444)
    return _stylize(t)


def _folder_with_tiny(t: Path) -> list[str]:
    (t / "photos").mkdir()
    _photo(t / "photos" / "big.png")
    _photo(t / "photos" / "tiny.png", (3, 2))
    model = _model(t / "m.safetensors")
    return [
        "--model",
        str(model),
        "--device",
        "cpu",
        "--quiet",
        "--input",
        str(t / "photos"),
        "--output",
        str(t / "out"),
    ]


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
    model = _model(t / "m.safetensors")
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
    model = _model(t / "m.safetensors")
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
    model = _model(t / "m.safetensors")
    return [
        "--model",
        str(model),
        "--quiet",
        "--video",
        str(t / "in.mp4"),
        "--output",
        str(t / "o.mp4"),
    ]


def _with_photo(*extra: str, **kwargs: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        _photo(t / "in.png")
        return _stylize(t, *extra, **kwargs)

    return setup


def _with_file(name: str, content: bytes, *extra: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        (t / name).write_bytes(content)
        return _stylize(t, *extra, photo=name)

    return setup


def _with_model(change: Callable[[dict], object], *extra: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        _photo(t / "in.png")
        model = _rewrite_header(_model(t / "m.safetensors"), change)
        return _stylize(t, *extra, model=model)

    return setup


def _model_file(content: bytes) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        _photo(t / "in.png")
        (t / "m.safetensors").write_bytes(content)
        return _stylize(t, model=t / "m.safetensors")

    return setup


def _info(change: Callable[[dict], object]) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        model = _rewrite_header(_model(t / "m.safetensors"), change)
        return ["--model", str(model), "--info"]

    return setup


def _png_bytes() -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="PNG")
    return buffer.getvalue()


def _wrong_names(header: dict) -> dict:
    return {**header, "style_names": ["a", "b", "c"]}


def _train(t: Path, *overrides: str) -> list[str]:
    return [*overrides, f"hydra.run.dir={t / 'run'}", "trainer.max_steps=1"]


BASE = ("m.safetensors",)
ROWS: dict[str, Row] = {
    # images
    "corrupt image": Row(
        _with_file("in.png", b"\x89PNG garbage" * 50),
        1,
        "error: cannot read image",
        ("in.png", *BASE),
    ),
    "truncated image": Row(
        _with_file("in.png", _png_bytes()[:2000]), 1, "error: cannot read image", ("in.png", *BASE)
    ),
    "empty image": Row(_with_file("in.png", b""), 1, "error: empty file", ("in.png", *BASE)),
    "tiny image is stylized": Row(_tiny, 0, "", ("in.png", "out.png", *BASE)),
    "--max-size 1 is stylized": Row(
        _with_photo("--max-size", "1"), 0, "", ("in.png", "out.png", *BASE)
    ),
    "folder with a tiny image": Row(_folder_with_tiny, 0, "", ("photos", "out", *BASE)),
    "decompression bomb": Row(
        lambda t: (_bomb(t / "in.png"), _stylize(t))[1], 1, "error: ", ("in.png", *BASE)
    ),
    "--tile 1": Row(_with_photo("--tile", "1"), 1, "error: --tile must be", ("in.png", *BASE)),
    "--tile 3": Row(_with_photo("--tile", "3"), 1, "error: --tile must be", ("in.png", *BASE)),
    "--batch -1": Row(_with_photo("--batch", "-1"), 1, "error: --batch", ("in.png", *BASE)),
    "--device meta": Row(
        _with_photo("--device", "meta"), 1, "error: unsupported device 'meta'", ("in.png", *BASE)
    ),
    "--device cuda without a GPU": Row(
        _with_photo("--device", "cuda"), 1, "error: --device cuda was asked for", ("in.png", *BASE)
    )
    if not torch.cuda.is_available()
    else None,
    "--precision fp8": Row(
        _with_photo("--precision", "fp8"), 1, "error: unknown precision", ("in.png", *BASE)
    ),
    "--strength 2": Row(_with_photo("--strength", "2"), 1, "error: --strength", ("in.png", *BASE)),
    "unknown style": Row(
        _with_photo("--style", "nope"), 1, "error: unknown style 'nope'", ("in.png", *BASE)
    ),
    "negative blend": Row(
        _with_photo("--style", "a:-1"), 1, "error: style weights must be", ("in.png", *BASE)
    ),
    "unknown output format": Row(
        _with_photo(output="out.xyz"), 1, "error: unknown image format", ("in.png", *BASE)
    ),
    "missing input": Row(lambda t: _stylize(t), 1, "error: no such file or folder", BASE),
    "empty folder": Row(
        lambda t: ((t / "in.png").mkdir(), _stylize(t))[1],
        1,
        "error: no images found",
        ("in.png", *BASE),
    ),
    # outputs
    "output is the input": Row(
        _with_photo(output="in.png"), 1, "error: --output is the input", ("in.png", *BASE)
    ),
    "write-protected output": Row(_readonly, 1, "error: ", ("in.png", "out.png", *BASE)),
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
    "video --batch -1": Row(
        lambda t: _video(t, *TO_MP4, "--batch", "-1"),
        1,
        "error: --batch",
        ("in.mp4", *BASE),
    ),
    "truncated video": Row(_truncated_video, 0, "warning: ", ("in.mp4", "o.mp4", *BASE)),
    "unreadable video": Row(_junk_video, 1, "error: cannot read video", ("in.mp4", *BASE)),
    # model files
    "model is not safetensors": Row(
        _model_file(b"\x80\x05 a pickle payload"), 1, "error: ", ("in.png", *BASE)
    ),
    "model name unknown": Row(
        lambda t: (_photo(t / "in.png"), _stylize(t, model=Path("no_such_model")))[1],
        1,
        "error: model file not found: no_such_model (bundled models:",
        ("in.png",),
    ),
    "style names vs style count": Row(_with_model(_wrong_names), 1, "error: ", ("in.png", *BASE)),
    "style names vs style count, --info": Row(_info(_wrong_names), 1, "error: ", BASE),
    "header is a JSON list": Row(_with_model(lambda h: [h]), 1, "error: ", ("in.png", *BASE)),
    "num_styles differs from weights": Row(
        _with_model(
            lambda h: {**h, "net": {**h["net"], "num_styles": 3}, "style_names": ["a", "b", "c"]}
        ),
        1,
        "error: ",
        ("in.png", *BASE),
    ),
    # training
    "negative style weight": Row(
        lambda t: _train(t, "loss.style_weight=-1"),
        1,
        "error: loss.style_weight must be a finite weight >= 0",
        (),
        command="train",
    ),
    "missing style folder": Row(
        lambda t: _train(t, "style=folder", f"style.dir={t / 'none'}"),
        1,
        "error: style folder not found",
        (),
        command="train",
    ),
    "empty data folder": Row(
        lambda t: ((t / "photos").mkdir(), _train(t, "data=folder", f"data.dir={t / 'photos'}"))[1],
        1,
        "error: ",
        (),
        command="train",
    ),
    "empty style folder": Row(
        lambda t: ((t / "art").mkdir(), _train(t, "style=folder", f"style.dir={t / 'art'}"))[1],
        1,
        "error: no style images",
        (),
        command="train",
    ),
    "finetune without a model": Row(
        lambda t: _train(t, "finetune=cin"),
        1,
        "error: finetune=cin trains only the style tables",
        (),
        command="train",
    ),
}


@pytest.mark.parametrize("name", [name for name, row in ROWS.items() if row is not None])
def test_bad_input_row(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = ROWS[name]
    monkeypatch.chdir(tmp_path)
    args = row.setup(tmp_path)
    capsys.readouterr()
    try:
        code = main([row.command, *args])
    except SystemExit as exc:  # the Hydra entry exits instead of returning
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == row.code, err[-2000:]
    assert "Traceback" not in err
    if row.stderr:
        assert lines and lines[0].startswith(row.stderr), err[-2000:]
        assert len(lines) == 1, err  # one line, no listing after it
    else:
        assert not any(line.startswith(("error:", "warning:")) for line in lines), err
    if row.command == "stylize":
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(row.files)
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.glob(".out.*"))
