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
    contains: str = ""  # also somewhere in that first line


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


def _nan_weights(t: Path) -> Path:
    model = _model(t / "m.safetensors")
    with safe_open(str(model), framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        metadata = handle.metadata()
    state["head.conv.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(model), metadata=metadata)
    return model


def _with_nan_model(t: Path) -> list[str]:
    _photo(t / "in.png")
    return _stylize(t, model=_nan_weights(t))


def _wide(header: dict) -> dict:
    """A header claiming width 1000: built as described, the network would take ~74 GB."""
    return {**header, "net": {**header["net"], "width": 1000}}


def _deep(header: dict) -> dict:
    return {**header, "net": {**header["net"], "num_residual": 10**9}}


def _export_model(change: Callable[[dict], object]) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        model = _rewrite_header(_model(t / "m.safetensors"), change)
        return [str(model), "--onnx"]

    return setup


def _map(t: Path, size: tuple[int, int], *extra: str) -> list[str]:
    _photo(t / "in.png")
    Image.new("L", size, 255).save(t / "mask.png")
    return _stylize(t, "--mask", str(t / "mask.png"), *extra)


def _animated(t: Path) -> list[str]:
    frames = [Image.new("RGB", (40, 30), (40 * i, 90, 200)) for i in range(3)]
    frames[0].save(t / "in.gif", save_all=True, append_images=frames[1:], duration=100)
    return _stylize(t, photo="in.gif")


def _heic(t: Path) -> list[str]:
    """The start of an iPhone photo: an ISO media box of brand heic (Pillow reads none)."""
    (t / "in.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    return _stylize(t, photo="in.heic")


def _text_npy(t: Path) -> list[str]:
    _photo(t / "in.png")
    (t / "map.npy").write_text("1 0\n0 1\n")
    return _stylize(t, "--regions", str(t / "map.npy"), "--style", "a")


def _few_photos(count: int, *overrides: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        (t / "photos").mkdir()
        for i in range(count):
            _photo(t / "photos" / f"p{i}.png", (64, 64))
        return _train(t, "data=folder", f"data.dir={t / 'photos'}", *overrides)

    return setup


def _bad_yaml(t: Path) -> list[str]:
    (t / "conf" / "style").mkdir(parents=True)
    (t / "conf" / "style" / "mine.yaml").write_text("name: mine\nsets: [unclosed\n")
    return ["--config-dir", str(t / "conf"), *_train(t, "style=mine")]


def _truncated_checkpoint(t: Path) -> Path:
    """The first 2 kB of a real checkpoint, as a full disk left last.ckpt."""
    whole = t / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.rand(4000)}, "global_step": 3}, whole)
    (t / "last.ckpt").write_bytes(whole.read_bytes()[:2000])
    whole.unlink()
    return t / "last.ckpt"


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
    "--strength 2.5": Row(
        _with_photo("--strength", "2.5"), 1, "error: --strength", ("in.png", *BASE)
    ),
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
    "header claims width 1000": Row(
        _with_model(_wide), 1, "error: ", ("in.png", *BASE), contains="do not match"
    ),
    "header claims 10**9 residual blocks": Row(
        _with_model(_deep), 1, "error: ", ("in.png", *BASE), contains="residual blocks"
    ),
    "model with a NaN weight": Row(
        _with_nan_model, 1, "error: ", ("in.png", *BASE), contains="NaN or infinite weights"
    ),
    "export --onnx of a NaN model": Row(
        lambda t: [str(_nan_weights(t)), "--onnx"],
        1,
        "error: ",
        BASE,
        command="export",
        contains="NaN or infinite weights",
    ),
    "export --onnx of a width-1000 header": Row(
        _export_model(_wide), 1, "error: ", BASE, command="export", contains="do not match"
    ),
    "export a truncated checkpoint": Row(
        lambda t: [str(_truncated_checkpoint(t)), "-o", str(t / "m.safetensors")],
        1,
        "error: ",
        ("last.ckpt",),
        command="export",
        contains="not a PyTorch checkpoint",
    ),
    # numbers: NaN passes `x < 0`, infinity passes `x > 0`
    "--feather nan": Row(
        _with_photo("--feather", "nan"), 1, "error: --feather must be a finite", ("in.png", *BASE)
    ),
    "--max-megapixels inf": Row(
        _with_photo("--max-megapixels", "inf"),
        1,
        "error: --max-megapixels must be a finite",
        ("in.png", *BASE),
    ),
    "--strength nan": Row(_with_photo("--strength", "nan"), 1, "error: --", ("in.png", *BASE)),
    # silent acceptance
    "--temporal-blend on an image": Row(
        _with_photo("--temporal-blend", "0.5"),
        1,
        "error: --temporal-blend applies to video",
        ("in.png", *BASE),
    ),
    "--input-smooth on an image": Row(
        _with_photo("--input-smooth", "0.5"),
        1,
        "error: --input-smooth applies to video",
        ("in.png", *BASE),
    ),
    "--blend-kind on an image": Row(
        _with_photo("--blend-kind", "flow"),
        1,
        "error: --blend-kind changes the temporal blend",
        ("in.png", *BASE),
    ),
    "--blend-kind without a blend": Row(
        lambda t: _video(t, *TO_MP4, "--temporal-blend", "0", "--blend-kind", "flow"),
        1,
        "error: --blend-kind changes the temporal blend",
        ("in.mp4", *BASE),
    ),
    "mask of another aspect": Row(
        lambda t: _map(t, (40, 60)),
        1,
        "error: ",
        ("in.png", "mask.png", *BASE),
        contains="is 40x60 but the photo is 40x30",
    ),
    "mask of the same aspect, twice the size": Row(
        lambda t: _map(t, (80, 60)), 0, "", ("in.png", "mask.png", "out.png", *BASE)
    ),
    "animated image": Row(
        _animated, 0, "warning: ", ("in.gif", "out.png", *BASE), contains="animated (3 frames)"
    ),
    "HEIC photo": Row(
        _heic, 1, "error: cannot read image", ("in.heic", *BASE), contains="HEIC images are not"
    ),
    "text .npy regions": Row(
        _text_npy,
        1,
        "error: cannot read weight map",
        ("in.png", "map.npy", *BASE),
        contains="not a numeric .npy array",
    ),
    # app
    "app --port 70000": Row(
        lambda t: ["--port", "70000"], 1, "error: --port must be in 1..65535", (), command="app"
    ),
    "app --max-upload-mb nan": Row(
        lambda t: ["--max-upload-mb", "nan"],
        1,
        "error: --max-upload-mb must be a finite number",
        (),
        command="app",
    ),
    # training
    "3 photos, batch of 4": Row(
        _few_photos(3),
        1,
        "error: 3 content photo(s) make no training batch: data.batch_size=4 needs at least 4",
        (),
        command="train",
    ),
    "1 photo, num_val=1": Row(
        _few_photos(1, "data.num_val=1"),
        1,
        "error: 1 content photo(s) make no training batch",
        (),
        command="train",
    ),
    "stage=distill without a teacher": Row(
        lambda t: _train(t, "stage=distill"),
        1,
        "error: distill.teacher is required",
        (),
        command="train",
    ),
    "data=folder without data.dir": Row(
        lambda t: _train(t, "data=folder"), 1, "error: data.dir is required", (), command="train"
    ),
    "malformed YAML under --config-dir": Row(
        _bad_yaml, 1, "error: malformed YAML in", (), command="train", contains="mine.yaml line 3"
    ),
    "NaN learning rate": Row(
        lambda t: _train(t, "model.optim.lr=nan"),
        1,
        "error: model.optim.lr must be a finite number, got nan",
        (),
        command="train",
    ),
    "inf style weight": Row(
        lambda t: _train(t, "loss.style_weight=inf"),
        1,
        "error: loss.style_weight must be a finite",
        (),
        command="train",
    ),
    "truncated ckpt_path": Row(
        lambda t: _train(t, f"ckpt_path={_truncated_checkpoint(t)}"),
        1,
        "error: ckpt_path: ",
        (),
        command="train",
        contains="truncated or not a checkpoint",
    ),
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
    if row.contains:
        assert row.contains in lines[0], lines[0]
    if row.command in ("stylize", "export"):
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(row.files)
    if row.command == "train" and row.code:
        assert not (tmp_path / "run").exists()  # a start that failed leaves no run folder
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.glob(".out.*"))
