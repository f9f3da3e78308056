"""Shared parts of the bad-input matrix (tests/test_bad_input*.py). Each row is one input
a hostile user tried: what is given, the exit code, the first line of stderr, and which files
exist afterwards (nothing half-written). Rows that succeed check their output too."""

from __future__ import annotations

import json
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

BASE = ("m.safetensors",)


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


def photo(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    array = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def tiny_model(path: Path, names: list[str] | None = None, num_styles: int = 2) -> Path:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=num_styles, width=0.25, num_residual=1))
    return save_model(net, path, ModelInfo(net={}, style_names=names or ["a", "b"]))


def rewrite_header(model: Path, change: Callable[[dict], object]) -> Path:
    with safe_open(str(model), framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        header = json.loads(handle.metadata()["fastnst"])
    save_file(state, str(model), metadata={"fastnst": json.dumps(change(header))})
    return model


def stylize_args(
    t: Path, *extra: str, model: Path | None = None, photo: str = "in.png", output: str = "out.png"
) -> list[str]:
    model = model or tiny_model(t / "m.safetensors")
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


def with_photo(*extra: str, **kwargs: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        photo(t / "in.png")
        return stylize_args(t, *extra, **kwargs)

    return setup


def truncated_checkpoint(t: Path) -> Path:
    """The first 2 kB of a real checkpoint, as a full disk left last.ckpt."""
    whole = t / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.rand(4000)}, "global_step": 3}, whole)
    (t / "last.ckpt").write_bytes(whole.read_bytes()[:2000])
    whole.unlink()
    return t / "last.ckpt"


def check_row(
    row: Row, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the row's command in ``tmp_path``; check exit code, stderr and files left."""
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
