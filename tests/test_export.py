"""The model file: self-describing, exact round trip, atomic, and refusing what it is not."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fastnst.export import (
    FORMAT_VERSION,
    ModelFileError,
    ModelInfo,
    load_model,
    read_info,
    save_model,
)
from fastnst.model import NetConfig, TransformerNet
from fastnst.modelfile import NET_FIELDS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformerNet, Path]:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(net, path, ModelInfo(net={}, style_names=["a", "b"], steps=7, image_size=64))
    return net.eval(), path


def test_round_trip_is_exact_and_self_describing(tiny: tuple[TransformerNet, Path]) -> None:
    net, path = tiny
    loaded, info = load_model(path)
    x = torch.rand(2, 3, 29, 31)
    with torch.no_grad():
        assert torch.equal(net(x, torch.tensor([0, 1])), loaded(x, torch.tensor([0, 1])))
    assert info.style_names == ["a", "b"] and info.steps == 7 and info.image_size == 64
    assert info.net == {"num_styles": 2, "width": 0.25, "num_residual": 1}
    assert info.format_version == FORMAT_VERSION and info.created
    assert not list(path.parent.glob(".*.tmp"))  # nothing half-written left behind
    assert path.stat().st_mode & 0o044  # readable by others, as any saved file (not mkstemp's 0600)


def _rewrite(src: Path, dst: Path, header: dict | None) -> None:
    _, state = read_info(src)
    save_file(state, str(dst), metadata=None if header is None else {"fastnst": json.dumps(header)})


def test_refuses_files_that_are_not_models(
    tiny: tuple[TransformerNet, Path], tmp_path: Path
) -> None:
    _, path = tiny
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    plain = tmp_path / "plain.safetensors"
    _rewrite(path, plain, None)
    newer = tmp_path / "newer.safetensors"
    header = json.loads(json.dumps(read_info(path)[0].__dict__))
    _rewrite(path, newer, {**header, "format_version": FORMAT_VERSION + 1})
    newer_option = tmp_path / "newer_option.safetensors"
    _rewrite(path, newer_option, {**header, "net": {**header["net"], "dilation": 2}})
    for bad, reason in [
        (tmp_path / "missing.safetensors", "not found"),
        (truncated, "not a readable"),
        (text, "not a readable"),
        (plain, "not a fastnst model"),
        (newer, "upgrade"),
        (newer_option, r"network option this fastnst does not know \(dilation\)"),
    ]:
        with pytest.raises(ModelFileError, match=reason):
            load_model(bad)


def test_every_network_option_is_one_a_model_file_may_describe() -> None:
    """A new NetConfig field must be added to NET_FIELDS (and so to the onnx backend's
    reading), or files using it would be refused as made by a newer fastnst."""
    assert {f.name for f in dataclasses.fields(NetConfig)} == set(NET_FIELDS)


def test_style_names_must_match_the_network(tmp_path: Path) -> None:
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    with pytest.raises(ValueError):
        save_model(net, tmp_path / "x.safetensors", ModelInfo(net={}, style_names=["only-one"]))
    assert not list(tmp_path.iterdir())


def test_export_cli_refuses_a_non_checkpoint_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastnst.export import main

    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x80\x05not a pickle at all")
    assert main([str(junk)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not list(tmp_path.glob("*.safetensors"))
