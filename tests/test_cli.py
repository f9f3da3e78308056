"""The ``fastnst`` dispatcher: help, missing extras as one line, and what each layer imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fastnst.cli import COMMANDS, main
from fastnst.errors import EXTRA_NAMES, EXTRA_OF_MODULE
from fastnst.export import ModelInfo, save_model
from fastnst.model import NetConfig, TransformerNet

REPO = Path(__file__).resolve().parents[1]


def imported_after(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after ``statement``."""
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return set(proc.stdout.split())


def test_help_and_dispatch_need_no_heavy_imports() -> None:
    loaded = imported_after("from fastnst.cli import build_parser; build_parser().format_help()")
    assert not {"torch", "hydra", "lightning"} & loaded


def test_frame_extraction_and_runtime_export_do_not_import_the_network() -> None:
    loaded = imported_after("import fastnst.datasets.extract, fastnst.datasets.manifest")
    assert "fastnst.model" not in loaded and "fastnst.export" not in loaded
    assert "fastnst.export" not in imported_after("import fastnst.export_runtimes")  # no circle


def test_help_lists_each_command_on_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for name, command in COMMANDS.items():
        assert f"  {name:<16}{command.summary}" in lines
        assert len(f"  {name:<16}{command.summary}") <= 80


def test_unknown_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["stylise"])
    assert stop.value.code == 2
    assert "invalid choice: 'stylise'" in capsys.readouterr().err


def test_every_needed_module_belongs_to_an_extra() -> None:
    for command in COMMANDS.values():
        assert {EXTRA_OF_MODULE[module] for module in command.needs} <= set(EXTRA_NAMES)


def test_missing_training_extras_is_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "lightning", None)  # as if not installed
    assert main(["train", "trainer.max_steps=1"]) == 1
    assert capsys.readouterr().err == (
        "error: fastnst train needs the training extras: pip install 'fastnst[train]'\n"
    )


def test_missing_video_extras_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    net = TransformerNet(NetConfig(num_styles=1, width=0.25, num_residual=1))
    model = save_model(net, tmp_path / "m.safetensors", ModelInfo(net={}, style_names=["a"]))
    (tmp_path / "in.mp4").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "av", None)
    for module in ("fastnst.infer.video", "fastnst.infer.webcam"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    argv = ["--model", str(model), "--video", str(tmp_path / "in.mp4")]
    assert main(["stylize", *argv, "--output", str(tmp_path / "out.mp4")]) == 1
    assert capsys.readouterr().err == (
        "error: fastnst stylize needs the video extras: pip install 'fastnst[video]'\n"
    )
    assert not (tmp_path / "out.mp4").exists()


def test_a_missing_module_outside_the_extras_is_not_hidden(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "fastnst.commands.compare", None)
    with pytest.raises(ModuleNotFoundError):
        main(["compare", "a.json", "b.json"])


def test_checkout_shims_are_the_commands() -> None:
    for script, usage in (("infer.py", "usage: fastnst stylize"), ("train.py", "fastnst train:")):
        proc = subprocess.run(
            [sys.executable, script, "--help"], capture_output=True, text=True, cwd=REPO
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(usage)
