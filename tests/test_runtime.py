"""The onnxruntime backend: the graph built from a model file matches the torch network
(every bundled model, blends, per-pixel maps, tiling), and the stylize command on it
imports no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.errors import UserError
from fastnst.export import load_model
from fastnst.images import gaussian_taps
from fastnst.infer import main
from fastnst.models import bundled_models
from fastnst.runtime.arrays import STROKE_SIGMA, blur_numpy, gaussian_blur
from fastnst.runtime.backends import choose_backend, load_stylizer
from fastnst.runtime.onnx_backend import OnnxStylizer, layer_sizes

from conftest import perturbed_model

REPO = Path(__file__).resolve().parents[1]
# Largest difference from the torch network seen on the bundled models: about 3e-6 (fp32
# rounding); the bound leaves room for other CPUs' kernels.
TOLERANCE = 5e-5


def _torch(net: torch.nn.Module, images: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        rows = torch.from_numpy(weights)
        if rows.dim() == 1:
            rows = rows.expand(len(images), -1)
        return net(torch.from_numpy(images), rows).numpy()


@pytest.mark.parametrize("name", sorted(bundled_models()))
def test_bundled_models_match_torch(name: str) -> None:
    onnx_net, (net, _) = OnnxStylizer.load(name, "cpu"), load_model(name)
    rng = np.random.default_rng(0)
    images = rng.random((2, 3, 45, 61), dtype=np.float32)
    count = len(onnx_net.style_names)
    blend = onnx_net.styles(f"0:0.6,{count - 1}:0.4")[0][1]
    for weights in (np.eye(count, dtype=np.float32)[1], blend):
        error = np.abs(onnx_net(images, weights) - _torch(net, images, weights)).max()
        assert error < TOLERANCE, error
    other = _torch(net, images, np.eye(count, dtype=np.float32)[0])
    assert np.abs(onnx_net(images, blend) - other).max() > 0.01  # the styles really differ


def test_per_pixel_weights_tiling_and_small_images_match_torch(tmp_path: Path) -> None:
    path = perturbed_model(tmp_path / "m.safetensors", ["a", "b", "c"], 0.5)
    onnx_net, (net, _) = OnnxStylizer.load(path, "cpu"), load_model(path)
    rng = np.random.default_rng(1)
    images = rng.random((1, 3, 37, 53), dtype=np.float32)
    maps = rng.random((1, 3, 37, 53), dtype=np.float32)
    maps /= maps.sum(1, keepdims=True)
    assert np.abs(onnx_net(images, maps) - _torch(net, images, maps)).max() < TOLERANCE
    tiny = rng.random((1, 3, 7, 11), dtype=np.float32)  # under the network's 16 px
    one = np.eye(3, dtype=np.float32)[2]
    assert onnx_net(tiny, one).shape == tiny.shape
    assert np.abs(onnx_net(tiny, one) - _torch(net, tiny, one)).max() < TOLERANCE
    big = rng.random((1, 3, 150, 217), dtype=np.float32)
    tiled = onnx_net(big, one, tile=64)
    assert np.abs(tiled - _torch(net, big, one)).max() < 1e-4


@pytest.mark.parametrize(
    ("option", "shape", "tile"),
    [
        ({"upsample": "bilinear"}, (41, 30), 16),
        ({"padding": "zero"}, (90, 70), 48),
        ({"antialias": True}, (70, 93), 32),
        ({"antialias": True, "upsample": "bilinear"}, (37, 45), 16),
    ],
)
def test_decoder_and_padding_options_match_torch_whole_and_tiled(
    tmp_path: Path, option: dict[str, str | bool], shape: tuple[int, int], tile: int
) -> None:
    """A bilinear decoder, zero padding or the anti-aliasing blur: the row bands build none
    of them, so such a model takes the multi-pass tiler, which must still give the torch
    network's picture (the blur widens the tiles' halo)."""
    from fastnst.export import ModelInfo, save_model
    from fastnst.model import NetConfig, TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1, **option))
    path = save_model(net, tmp_path / "m.safetensors", ModelInfo(net={}, style_names=["a", "b"]))
    images = np.random.default_rng(4).random((1, 3, *shape), dtype=np.float32)
    style = np.eye(2, dtype=np.float32)[1]
    onnx_net = OnnxStylizer.load(path, "cpu")
    expected = _torch(net.eval(), images, style)
    out = onnx_net(images, style)
    assert np.abs(out - expected).max() < TOLERANCE
    assert not onnx_net.streams
    assert np.abs(onnx_net(images, style, tile=tile) - out).max() < 1e-4
    assert np.abs(onnx_net(images, style, tile=tile) - expected).max() < 1e-4


def test_row_bands_match_the_whole_image() -> None:
    """Layer by layer in bands of 8 rows (odd sizes: stride-2 edges, nearest resizes that
    are not exact halvings) gives the whole-image picture: measured max 1.8e-6."""
    onnx_net = OnnxStylizer.load("classics", "cpu")
    assert onnx_net.streams
    images = np.random.default_rng(5).random((1, 3, 67, 45), dtype=np.float32)
    blend = onnx_net.styles("0:0.5,3:0.5")[0][1]
    whole = onnx_net(images, blend)
    banded = onnx_net.stylize_banded(images, blend, tile=4)
    assert np.abs(banded - whole).max() < 2e-5


def test_strength_and_colour() -> None:
    onnx_net = OnnxStylizer.load("classics-lite", "cpu")
    images = np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)
    style = np.eye(len(onnx_net.style_names), dtype=np.float32)[0]
    assert np.array_equal(onnx_net(images, style, strength=0.0), images)
    full, half = onnx_net(images, style), onnx_net(images, style, strength=0.5)
    assert np.allclose(half, (full + images) / 2, atol=1e-6)
    kept = onnx_net(images, style, keep_color=True)
    luma = np.array([0.299, 0.587, 0.114], np.float32)[:, None, None]
    # Its brightness, wherever putting the photo's colours back did not clip a channel.
    inside = ((kept > 0) & (kept < 1)).all(1)
    assert inside.mean() > 0.5  # random photos: saturated colours, so some clip
    assert np.abs((kept * luma).sum(1) - (full * luma).sum(1))[inside].max() < 1e-3
    assert np.abs(kept - full).mean() > 0.01  # with the photo's colours


def test_strength_above_one_makes_the_strokes_bolder_on_both_backends() -> None:
    """Above 1 the picture's detail around a 4-px Gaussian blur is multiplied by the
    strength while its light and colour stay, the same on both backends."""
    images = np.random.default_rng(4).random((1, 3, 40, 56), dtype=np.float32)
    stylizers = [load_stylizer("classics-lite", b, "cpu", "fp32") for b in ("onnx", "torch")]
    style = np.eye(len(stylizers[0].style_names), dtype=np.float32)[2]
    full, bold = (stylizers[0](images, style, strength) for strength in (1.0, 1.5))
    assert np.abs(bold - full).mean() > 0.01  # not the model's own picture
    low = gaussian_blur(full)
    inside = (bold > 0) & (bold < 1)
    assert inside.mean() > 0.9
    assert np.abs(bold - (low + 1.5 * (full - low)))[inside].max() < 1e-5
    colours = bold.mean(axis=(0, 2, 3)) - full.mean(axis=(0, 2, 3))
    assert np.abs(colours).max() < 0.1 * np.abs(bold - full).mean()  # the light level kept
    torch_bold = np.asarray(stylizers[1](images, style, 1.5))
    assert np.abs(torch_bold - bold).max() < 1e-4


def test_gaussian_blur_is_the_separable_gaussian() -> None:
    """An impulse spreads into the outer product of the taps (sigma 4 px, radius 12); a flat
    picture, and its edges, stay flat; with and without OpenCV."""
    taps = gaussian_taps(STROKE_SIGMA)
    assert len(taps) == 25 and taps.sum() == pytest.approx(1.0)
    assert taps[12 + 4] / taps[12] == pytest.approx(np.exp(-0.5), rel=1e-5)
    impulse = np.zeros((1, 1, 41, 41), np.float32)
    impulse[0, 0, 20, 20] = 1.0
    spread = blur_numpy(impulse)[0, 0]
    assert np.allclose(spread[8:33, 8:33], np.outer(taps, taps), atol=1e-7)
    assert spread[:8].max() == 0 and spread[:, 33:].max() == 0
    flat = np.full((1, 3, 9, 5), 0.4, np.float32)  # smaller than the kernel
    assert np.allclose(gaussian_blur(flat), flat, atol=1e-6)
    for shape in ((2, 3, 37, 53), (1, 3, 9, 5)):  # OpenCV's path = the NumPy one
        images = np.random.default_rng(1).random(shape, dtype=np.float32)
        assert np.abs(gaussian_blur(images) - blur_numpy(images)).max() < 1e-6


def test_spin_off_reaches_every_session_and_changes_no_pixel() -> None:
    """``spin=False`` (the app's choice) is set on the whole-image session and on the tiler's,
    and gives the same picture as the default."""
    spinning = OnnxStylizer.load("classics-lite", "cpu", threads=2)
    parked = OnnxStylizer.load("classics-lite", "cpu", threads=2, spin=False)
    images = np.random.default_rng(3).random((1, 3, 40, 52), dtype=np.float32)
    style = np.eye(len(parked.style_names), dtype=np.float32)[1]
    assert np.array_equal(parked(images, style), spinning(images, style))
    parked.stylize_tiled(images, style, tile=32)
    key = "session.intra_op.allow_spinning"
    for session in [parked.session, *parked._tiling.values()]:
        assert session.get_session_options().get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError, match="does not have configuration"):  # the default
        spinning.session.get_session_options().get_session_config_entry(key)


@pytest.mark.parametrize("out_channels", [3, 4])
@pytest.mark.parametrize("size", [(17, 20), (18, 23), (9, 9)])
def test_narrow_conv_on_blocks_is_the_plain_conv(out_channels: int, size: tuple) -> None:
    """The head's conv on 2x2 space-to-depth blocks gives the plain valid conv for odd and
    even sizes (a wrong tap or crop would move or drop pixels), with its nodes named
    apart from the graph's."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from fastnst.runtime.graph import OPSET, conv_nodes

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((out_channels, 8, 9, 9)).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    x = rng.standard_normal((2, 8, *size)).astype(np.float32)
    nodes, inits, out = conv_nodes("x", weight, bias, 1, "head")
    assert len(nodes) > 1 and all(n.output[0].startswith("head_") for n in nodes)
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * 4)  # noqa: E731
    graph = helper.make_graph(nodes, "g", [value("x")], [value(out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x})[0]
    want = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias)
    ).numpy()
    assert got.shape == want.shape == (2, out_channels, size[0] - 8, size[1] - 8)
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()


def test_layer_sizes_follow_the_strides() -> None:
    sizes = layer_sizes((37, 16), 1)
    assert sizes == [(37, 16), (19, 8), (10, 4), (10, 4), (10, 4), (19, 8), (37, 16), (37, 16)]


def test_backend_choice() -> None:
    assert choose_backend("auto", "cpu", "auto") == "onnx"
    assert choose_backend("torch", "cpu", "auto") == "torch"
    with pytest.raises(UserError, match="needs --backend torch"):
        choose_backend("onnx", "cpu", "fp16")


def test_cli_backends_agree(tmp_path: Path, shared_data: Path) -> None:
    photo = shared_data / "content" / "chelsea.png"
    outputs = {}
    for backend in ("onnx", "torch"):
        out = tmp_path / f"{backend}.png"
        args = ["--model", "classics-lite", "--input", str(photo), "--output", str(out)]
        assert main([*args, "--backend", backend, "--style", "1:0.5,2:0.5"]) == 0
        outputs[backend] = np.asarray(Image.open(out), dtype=np.float64)
    mse = np.mean((outputs["onnx"] - outputs["torch"]) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) >= 45


def _run_without_torch(*argv: str) -> None:
    """``fastnst`` in a fresh interpreter; fails if torch was imported."""
    code = (
        "import sys\nfrom fastnst.cli import main\nrc = main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_core_stylize_imports_no_torch(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), np.uint8)).save(photo)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.arange(90, dtype=np.uint8) * 2, (70, 1))).save(mask)
    model = ["stylize", "--model", "classics-lite", "--backend", "onnx", "--input", str(photo)]
    _run_without_torch(*model, "--output", str(tmp_path / "a.png"), "--style", "0:1,3:1")
    _run_without_torch(*model, "--output", str(tmp_path / "b.png"), "--mask", str(mask))
    _run_without_torch(
        *model, "--output", str(tmp_path / "c.png"), "--tile", "64", "--preserve-color"
    )
    for name in ("a", "b", "c"):
        assert Image.open(tmp_path / f"{name}.png").size == (90, 70)


def test_video_on_onnx_imports_no_torch(tmp_path: Path, shared_data: Path) -> None:
    """A video without and with the flow-guided ``--temporal-blend`` (its default; NumPy +
    OpenCV), on onnxruntime without torch; the blend changes the frames after the first."""
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    video = shared_data / "video" / "cockatoo.mp4"
    args = ["stylize", "--model", "classics-lite", "--backend", "onnx", "--video", str(video)]
    args += ["--max-frames", "3", "--quiet", "--crf", "0"]
    _run_without_torch(*args, "--output", str(tmp_path / "out.mp4"), "--temporal-blend", "0")
    _run_without_torch(*args, "--output", str(tmp_path / "blend.mp4"))
    plain, blended = (_frames(tmp_path / f"{name}.mp4") for name in ("out", "blend"))
    assert len(plain) == len(blended) == 3
    assert np.abs(plain[0] - blended[0]).mean() < 0.5  # the first frame has nothing to blend
    assert np.abs(plain[2] - blended[2]).mean() > 2  # 8-bit levels


def _frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float64) for f in container.decode(video=0)]
