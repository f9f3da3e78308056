"""A wheel built from this tree works outside the checkout: installed (not editable) into a
temporary folder and run from another one, ``fastnst`` trains on the packaged configs
extended by a user's config folder, exports a model, and stylizes with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_training import TINY

REPO = Path(__file__).resolve().parents[1]

# The tiny run of the training tests, with this test's own style config.
TINY_TRAINING = [o for o in TINY if not o.startswith("style.")]

# A user's own style config, extending the packaged Spider-Verse one.
MY_STYLE = """\
defaults:
  - spiderverse
  - _self_
name: my_style
sets:
  universes: [miles, gwen]
"""


class Installed:
    """A wheel installed into ``site`` and an empty working directory ``work``."""

    def __init__(self, root: Path) -> None:
        self.site = root / "site"
        self.work = root / "work"
        self.work.mkdir()
        self.env = {**os.environ, "PYTHONPATH": str(self.site)}

    def run(self, *argv: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def fastnst(self, *argv: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "fastnst", *argv, timeout=timeout)


def _pip(*argv: str | Path) -> None:
    command = [sys.executable, "-m", "pip", *map(str, argv), "--no-deps", "--no-index", "-q"]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel from a copy of the tree (the build leaves nothing in the checkout) and
    install it, without its dependencies (this environment has them), into a plain folder."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "fastnst", source / "fastnst", ignore=shutil.ignore_patterns("__pycache__")
    )
    _pip("wheel", "--no-build-isolation", "-w", root / "dist", source)
    (wheel,) = (root / "dist").glob("fastnst-*.whl")
    _pip("install", "--target", root / "site", wheel)
    return Installed(root)


def test_the_installed_package_is_used_not_the_checkout(installed: Installed) -> None:
    proc = installed.run(sys.executable, "-c", "import fastnst; print(fastnst.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(installed.site)
    configs = installed.site / "fastnst" / "conf"
    assert (configs / "train.yaml").is_file() and (configs / "loss" / "default.yaml").is_file()
    assert (installed.site / "fastnst" / "app" / "sample.jpg").is_file()  # the app's gallery


def test_help_lists_every_command(installed: Installed) -> None:
    from fastnst.cli import COMMANDS

    proc = installed.fastnst("--help")
    assert proc.returncode == 0, proc.stderr
    for name, command in COMMANDS.items():
        assert f"  {name:<16}{command.summary}\n" in proc.stdout


def test_console_script(installed: Installed) -> None:
    script = installed.site / "bin" / "fastnst"
    assert script.is_file()
    proc = installed.run(script, "stylize", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: fastnst stylize")


def test_train_with_a_user_config_dir_then_stylize(installed: Installed) -> None:
    my_conf = installed.work / "my_conf" / "style"
    my_conf.mkdir(parents=True)
    (my_conf / "my_style.yaml").write_text(MY_STYLE)
    proc = installed.fastnst("train", "--config-dir", "my_conf", "style=my_style", *TINY_TRAINING)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (model,) = (installed.work / "outputs").rglob("my_style.safetensors")  # ./outputs default
    assert proc.stdout.strip().splitlines()[-1] == f"exported model: {model}"

    photo = installed.work / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    styled = installed.work / "styled.png"
    proc = installed.fastnst(
        "stylize", "--model", model, "--input", photo, "--output", styled, "--style", "gwen"
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(styled) as image:
        result = np.asarray(image.convert("RGB"))
    assert result.shape == pixels.shape
    assert np.abs(result.astype(int) - pixels).mean() > 1


def test_bundled_classics_stylizes_from_the_installed_package(installed: Installed) -> None:
    """The README's first command, outside the checkout: the model comes from the wheel."""
    assert (installed.site / "fastnst" / "models" / "classics.safetensors").is_file()
    photo = installed.work / "photo.png"
    ys, xs = np.mgrid[0:60, 0:80]
    pixels = np.stack([xs * 3, ys * 4, (xs + ys) * 2], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(photo)
    proc = installed.fastnst(
        "stylize",
        "--model",
        "classics",
        "--input",
        photo,
        "--output",
        "out.jpg",
        "--style",
        "starry_night",
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(installed.work / "out.jpg") as image:
        result = np.asarray(image.convert("RGB")).astype(int)
    assert result.shape == pixels.shape and np.abs(result - pixels).mean() > 10
    listing = installed.fastnst("stylize", "--list-models")
    assert "classics: 9 styles: candy, composition_vii" in listing.stdout


def test_optimize_finds_its_default_loss_inside_the_package(installed: Installed) -> None:
    photo = installed.work / "flat.png"
    Image.new("RGB", (32, 32), (120, 80, 40)).save(photo)
    proc = installed.run(
        sys.executable,
        "-m",
        "fastnst.optimize",
        "--content",
        photo,
        "--style",
        photo,
        "--output",
        "optimized.png",
        "--steps",
        "1",
        "--size",
        "32",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert (installed.work / "optimized.png").is_file()
