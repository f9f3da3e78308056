"""ONNX and TorchScript exports agree with PyTorch at sizes other than the traced one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fastnst.export import ModelInfo, load_model, main, save_model
from fastnst.model import NetConfig, TransformerNet

SIZES = [(1, 64, 48), (2, 37, 101)]


@pytest.fixture(
    scope="module",
    params=[{}, {"antialias": True, "upsample": "bilinear"}],
    ids=["plain", "antialiased"],
)
def model_file(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A tiny model; also as an anti-aliased one (its blurs must export too)."""
    torch.manual_seed(3)
    net = TransformerNet(NetConfig(num_styles=3, width=0.25, num_residual=1, **request.param))
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.1 * torch.randn_like(param))
    path = tmp_path_factory.mktemp("runtimes") / "tiny.safetensors"
    return save_model(net, path, ModelInfo(net={}, style_names=["a", "b", "c"]))


def _reference(path: Path, image: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    net, _ = load_model(path)
    with torch.no_grad():
        return net.decode(net.encode(image, weights), weights)


def _inputs(batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(height)
    image = torch.rand(batch, 3, height, width, generator=gen)
    return image, torch.softmax(torch.randn(batch, 3, generator=gen), dim=1)


def test_onnx_matches_pytorch_with_dynamic_size(model_file: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "m.onnx"
    assert main([str(model_file), "--onnx", str(onnx_path)]) == 0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for batch, height, width in SIZES:
        image, weights = _inputs(batch, height, width)
        feeds = {"image": image.numpy(), "style_weights": weights.numpy()}
        out = session.run(None, feeds)[0]
        expected = _reference(model_file, image, weights).numpy()
        assert out.shape == (batch, 3, height, width)
        assert np.abs(out - expected).max() <= 1e-3


def test_torchscript_matches_pytorch_with_dynamic_size(model_file: Path, tmp_path: Path) -> None:
    script_path = tmp_path / "m.pt"
    assert main([str(model_file), "--torchscript", str(script_path)]) == 0
    scripted = torch.jit.load(str(script_path))
    for batch, height, width in SIZES:
        image, weights = _inputs(batch, height, width)
        with torch.no_grad():
            out = scripted(image, weights)
        assert out.shape == (batch, 3, height, width)
        assert (out - _reference(model_file, image, weights)).abs().max() <= 1e-3


def test_style_weights_input_changes_the_output(model_file: Path, tmp_path: Path) -> None:
    script_path = tmp_path / "m.pt"
    assert main([str(model_file), "--torchscript", str(script_path)]) == 0
    scripted = torch.jit.load(str(script_path))
    image = torch.rand(1, 3, 32, 32)
    first = scripted(image, torch.tensor([[1.0, 0.0, 0.0]]))
    second = scripted(image, torch.tensor([[0.0, 1.0, 0.0]]))
    assert (first - second).abs().max() > 1e-3


def test_bad_model_file_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a model")
    assert main([str(bogus), "--onnx"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "bogus.onnx").exists()


def test_model_file_without_runtime_flag_is_refused(model_file: Path) -> None:
    assert main([str(model_file)]) == 1


def test_a_recurrent_model_exports_with_its_guide_input(tmp_path: Path) -> None:
    """ONNX and TorchScript take ``guide`` as a third input and match PyTorch with it."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(4)
    net = TransformerNet(NetConfig(num_styles=3, width=0.25, num_residual=1, recurrent=True))
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.3 * torch.randn_like(param))
    model = save_model(
        net, tmp_path / "rec.safetensors", ModelInfo(net={}, style_names=list("abc"))
    )
    assert (
        main(
            [
                str(model),
                "--onnx",
                str(tmp_path / "m.onnx"),
                "--torchscript",
                str(tmp_path / "m.pt"),
            ]
        )
        == 0
    )
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    image, weights = _inputs(2, 37, 101)
    guide = torch.rand(2, 4, 37, 101, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net.decode(net.encode(image, weights, guide), weights, guide)
        unguided = net.decode(net.encode(image, weights), weights)
        by_script = scripted(image, weights, guide)
    feeds = {"image": image.numpy(), "style_weights": weights.numpy(), "guide": guide.numpy()}
    by_onnx = session.run(None, feeds)[0]
    assert (expected - unguided).abs().mean() > 1e-2  # the guide matters
    assert np.abs(by_onnx - expected.numpy()).max() <= 1e-3
    assert (by_script - expected).abs().max() <= 1e-3
