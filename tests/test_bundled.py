"""Bundled models: name resolution, --list-models, fp16 storage, and the shipped models
themselves (styles, size, provenance, and that they really stylize)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import fastnst.models
from fastnst.errors import UserError
from fastnst.export import ModelInfo, load_model, read_info, save_model
from fastnst.infer import main
from fastnst.model import NetConfig, TransformerNet
from fastnst.models import MODELS_DIR, bundled_models

from conftest import load_tool

CLASSICS_STYLES = [
    "candy",
    "composition_vii",
    "feathers",
    "la_muse",
    "mosaic",
    "starry_night",
    "the_scream",
    "udnie",
    "wave",
]
SHIPPED = ["classics", "classics-lite", "classics-video"]


def _tiny_net() -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.2 * torch.randn_like(param))
    return net.eval()


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in bundled-models folder holding one tiny model, ``tiny``."""
    folder = tmp_path / "bundled"
    save_model(_tiny_net(), folder / "tiny.safetensors", ModelInfo(net={}, style_names=["a", "b"]))
    monkeypatch.setattr(fastnst.models, "MODELS_DIR", folder)
    return folder


def test_a_bundled_name_loads_and_a_path_wins(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, info = load_model("tiny")
    assert info.style_names == ["a", "b"]
    assert load_model("tiny.safetensors")[1].style_names == ["a", "b"]
    own = tmp_path / "work"
    save_model(_tiny_net(), own / "tiny", ModelInfo(net={}, style_names=["x", "y"]))
    monkeypatch.chdir(own)
    assert load_model("tiny")[1].style_names == ["x", "y"]  # the file in the working directory


def test_unknown_model_names_the_bundled_ones(models_dir: Path) -> None:
    with pytest.raises(UserError, match=r"model file not found: nope \(bundled models: tiny\)"):
        load_model("nope")


def test_list_models_and_stylize_by_name(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["--list-models"]) == 0
    assert capsys.readouterr().out.strip() == "tiny: 2 styles: a, b"
    photo = tmp_path / "in.png"
    array = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(array).save(photo)
    out = tmp_path / "out.png"
    args = ["--model", "tiny", "--input", str(photo), "--output", str(out), "--style", "b"]
    assert main([*args, "--quiet", "--device", "cpu"]) == 0
    assert np.abs(np.asarray(Image.open(out), dtype=np.int16) - array).mean() > 5


def test_fp16_storage_halves_the_file_and_loads_as_fp32(tmp_path: Path) -> None:
    net = _tiny_net()
    full = save_model(net, tmp_path / "full.safetensors", ModelInfo(net={}, style_names=["a", "b"]))
    half = save_model(
        net,
        tmp_path / "half.safetensors",
        ModelInfo(net={}, style_names=["a", "b"]),
        dtype=torch.float16,
    )
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(1, 3, 33, 41)
    with torch.no_grad():
        assert (loaded(x, 1) - net(x, 1)).abs().max() < 2e-2


def test_bundle_tool_writes_fp16_with_provenance_where_told(tmp_path: Path) -> None:
    """``--out-dir`` keeps a study's model outside the package: the package is untouched."""
    source = save_model(
        _tiny_net(), tmp_path / "run.safetensors", ModelInfo(net={}, style_names=["a", "b"])
    )
    extra = tmp_path / "extra.json"
    extra.write_text('{"provenance": {"method": "a study"}}')
    before = sorted(MODELS_DIR.iterdir())
    tool = load_tool("bundle_model")
    args = [str(source), "--name", "study", "--extra", str(extra)]
    assert tool.main([*args, "--out-dir", str(tmp_path / "kept")]) == 0
    written = tmp_path / "kept" / "study.safetensors"
    assert sorted(MODELS_DIR.iterdir()) == before
    assert written.stat().st_size < 0.6 * source.stat().st_size  # fp16
    net, info = load_model(written)
    assert info.extra["provenance"]["method"] == "a study"
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert 0 < (net(x, 0) - _tiny_net()(x, 0)).abs().max() < 2e-2


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_small_fp16_and_says_where_it_came_from(name: str) -> None:
    path = bundled_models()[name]
    assert path.parent == MODELS_DIR and path.stat().st_size < 4 * 2**20
    with safe_open(str(path), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}  # noqa: SIM118
    info, _ = read_info(path)
    assert info.style_names == CLASSICS_STYLES
    provenance = info.extra["provenance"]
    for key in ("command", "steps", "content", "date", "machine"):
        assert provenance.get(key), key
    assert set(info.extra["style_sources"]) == set(CLASSICS_STYLES)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_stylizes_a_photo_and_keeps_its_shapes(name: str) -> None:
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    photo = torch.nn.functional.interpolate(photo, size=(192, 192), mode="area")
    net, info = load_model(name)
    with torch.no_grad():
        outputs = {s: net(photo, info.style_names.index(s)) for s in ("starry_night", "candy")}
    for out in outputs.values():
        assert (out - photo).abs().mean() > 0.05  # not a pass-through
        edges_in = _edges(photo)
        edges_out = _edges(out)
        correlation = torch.corrcoef(torch.stack([edges_in, edges_out]))[0, 1]
        assert correlation > 0.3  # the astronaut's outlines survive
    assert (outputs["starry_night"] - outputs["candy"]).abs().mean() > 0.03


def _edges(images: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of a blurred luminance image, flattened."""
    gray = torch.nn.functional.avg_pool2d(images.mean(1, keepdim=True), 4)
    dx = gray[..., :, 1:] - gray[..., :, :-1]
    dy = gray[..., 1:, :] - gray[..., :-1, :]
    return (dx[..., :-1, :].pow(2) + dy[..., :, :-1].pow(2)).sqrt().flatten()
