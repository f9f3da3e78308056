"""The bad-input matrix for images, model files, options and export: every input a hostile
user tried, one row each (tests/bad_input.py checks a row; video and training rows are in
test_bad_input_video.py and test_bad_input_train.py)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from bad_input import (
    BASE,
    Row,
    check_row,
    photo,
    rewrite_header,
    stylize_args,
    tiny_model,
    truncated_checkpoint,
    with_photo,
)


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


def _tiny(t: Path) -> list[str]:
    photo(t / "in.png", (4, 3))
    return stylize_args(t)


def _readonly(t: Path) -> list[str]:
    photo(t / "in.png")
    photo(t / "out.png").chmod(0o444)
    return stylize_args(t)


def _folder_with_tiny(t: Path) -> list[str]:
    (t / "photos").mkdir()
    photo(t / "photos" / "big.png")
    photo(t / "photos" / "tiny.png", (3, 2))
    model = tiny_model(t / "m.safetensors")
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


def _with_file(name: str, content: bytes, *extra: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        (t / name).write_bytes(content)
        return stylize_args(t, *extra, photo=name)

    return setup


def _with_model(change: Callable[[dict], object], *extra: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        photo(t / "in.png")
        model = rewrite_header(tiny_model(t / "m.safetensors"), change)
        return stylize_args(t, *extra, model=model)

    return setup


def _model_file(content: bytes) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        photo(t / "in.png")
        (t / "m.safetensors").write_bytes(content)
        return stylize_args(t, model=t / "m.safetensors")

    return setup


def _info(change: Callable[[dict], object]) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        model = rewrite_header(tiny_model(t / "m.safetensors"), change)
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
    model = tiny_model(t / "m.safetensors")
    with safe_open(str(model), framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        metadata = handle.metadata()
    state["head.conv.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(model), metadata=metadata)
    return model


def _with_nan_model(t: Path) -> list[str]:
    photo(t / "in.png")
    return stylize_args(t, model=_nan_weights(t))


def _newer_option(header: dict) -> dict:
    return {**header, "net": {**header["net"], "dilation": 2}}


def _wide(header: dict) -> dict:
    """A header claiming width 1000: built as described, the network would take ~74 GB."""
    return {**header, "net": {**header["net"], "width": 1000}}


def _deep(header: dict) -> dict:
    return {**header, "net": {**header["net"], "num_residual": 10**9}}


def _export_model(change: Callable[[dict], object]) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        model = rewrite_header(tiny_model(t / "m.safetensors"), change)
        return [str(model), "--onnx"]

    return setup


def _map(t: Path, size: tuple[int, int], *extra: str) -> list[str]:
    photo(t / "in.png")
    Image.new("L", size, 255).save(t / "mask.png")
    return stylize_args(t, "--mask", str(t / "mask.png"), *extra)


def _animated(t: Path) -> list[str]:
    frames = [Image.new("RGB", (40, 30), (40 * i, 90, 200)) for i in range(3)]
    frames[0].save(t / "in.gif", save_all=True, append_images=frames[1:], duration=100)
    return stylize_args(t, photo="in.gif")


def _heic(t: Path) -> list[str]:
    """The start of an iPhone photo: an ISO media box of brand heic (Pillow reads none)."""
    (t / "in.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    return stylize_args(t, photo="in.heic")


def _text_npy(t: Path) -> list[str]:
    photo(t / "in.png")
    (t / "map.npy").write_text("1 0\n0 1\n")
    return stylize_args(t, "--regions", str(t / "map.npy"), "--style", "a")


ROWS: dict[str, Row | None] = {
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
        with_photo("--max-size", "1"), 0, "", ("in.png", "out.png", *BASE)
    ),
    "folder with a tiny image": Row(_folder_with_tiny, 0, "", ("photos", "out", *BASE)),
    "decompression bomb": Row(
        lambda t: (_bomb(t / "in.png"), stylize_args(t))[1], 1, "error: ", ("in.png", *BASE)
    ),
    "--tile 1": Row(with_photo("--tile", "1"), 1, "error: --tile must be", ("in.png", *BASE)),
    "--tile 3": Row(with_photo("--tile", "3"), 1, "error: --tile must be", ("in.png", *BASE)),
    "--batch -1": Row(with_photo("--batch", "-1"), 1, "error: --batch", ("in.png", *BASE)),
    "--device meta": Row(
        with_photo("--device", "meta"), 1, "error: unsupported device 'meta'", ("in.png", *BASE)
    ),
    "--device cuda without a GPU": Row(
        with_photo("--device", "cuda"), 1, "error: --device cuda was asked for", ("in.png", *BASE)
    )
    if not torch.cuda.is_available()
    else None,
    "--precision fp8": Row(
        with_photo("--precision", "fp8"), 1, "error: unknown precision", ("in.png", *BASE)
    ),
    "--strength 2.5": Row(
        with_photo("--strength", "2.5"), 1, "error: --strength", ("in.png", *BASE)
    ),
    "unknown style": Row(
        with_photo("--style", "nope"), 1, "error: unknown style 'nope'", ("in.png", *BASE)
    ),
    "negative blend": Row(
        with_photo("--style", "a:-1"), 1, "error: style weights must be", ("in.png", *BASE)
    ),
    "unknown output format": Row(
        with_photo(output="out.xyz"), 1, "error: unknown image format", ("in.png", *BASE)
    ),
    "missing input": Row(lambda t: stylize_args(t), 1, "error: no such file or folder", BASE),
    "empty folder": Row(
        lambda t: ((t / "in.png").mkdir(), stylize_args(t))[1],
        1,
        "error: no images found",
        ("in.png", *BASE),
    ),
    # outputs
    "output is the input": Row(
        with_photo(output="in.png"), 1, "error: --output is the input", ("in.png", *BASE)
    ),
    "write-protected output": Row(_readonly, 1, "error: ", ("in.png", "out.png", *BASE)),
    # model files
    "model is not safetensors": Row(
        _model_file(b"\x80\x05 a pickle payload"), 1, "error: ", ("in.png", *BASE)
    ),
    "model name unknown": Row(
        lambda t: (photo(t / "in.png"), stylize_args(t, model=Path("no_such_model")))[1],
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
    "header has a network option of a newer fastnst": Row(
        _with_model(_newer_option),
        1,
        "error: ",
        ("in.png", *BASE),
        contains="network option this fastnst does not know (dilation)",
    ),
    "newer network option, onnx backend": Row(
        _with_model(_newer_option, "--backend", "onnx"),
        1,
        "error: ",
        ("in.png", *BASE),
        contains="made by a newer fastnst",
    ),
    "--info of a newer network option": Row(
        _info(_newer_option), 1, "error: ", BASE, contains="made by a newer fastnst"
    ),
    "export --onnx of a newer network option": Row(
        _export_model(_newer_option), 1, "error: ", BASE, command="export", contains="Upgrade"
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
        lambda t: [str(truncated_checkpoint(t)), "-o", str(t / "m.safetensors")],
        1,
        "error: ",
        ("last.ckpt",),
        command="export",
        contains="not a PyTorch checkpoint",
    ),
    # numbers: NaN passes `x < 0`, infinity passes `x > 0`
    "--feather nan": Row(
        with_photo("--feather", "nan"), 1, "error: --feather must be a finite", ("in.png", *BASE)
    ),
    "--max-megapixels inf": Row(
        with_photo("--max-megapixels", "inf"),
        1,
        "error: --max-megapixels must be a finite",
        ("in.png", *BASE),
    ),
    "--strength nan": Row(with_photo("--strength", "nan"), 1, "error: --", ("in.png", *BASE)),
    # silent acceptance
    "--temporal-blend on an image": Row(
        with_photo("--temporal-blend", "0.5"),
        1,
        "error: --temporal-blend applies to video",
        ("in.png", *BASE),
    ),
    "--input-smooth on an image": Row(
        with_photo("--input-smooth", "0.5"),
        1,
        "error: --input-smooth applies to video",
        ("in.png", *BASE),
    ),
    "--blend-kind on an image": Row(
        with_photo("--blend-kind", "flow"),
        1,
        "error: --blend-kind changes the temporal blend",
        ("in.png", *BASE),
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
}


@pytest.mark.parametrize("name", [name for name, row in ROWS.items() if row is not None])
def test_bad_input_row(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_row(ROWS[name], tmp_path, capsys, monkeypatch)
