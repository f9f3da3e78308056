"""Training callbacks: throughput in images/s, the validation × style image grid, a
checkpoint when the run is killed, and a progress file that another process can watch."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torchvision.utils import make_grid

from fastnst.files import atomic_write
from fastnst.images import center_square, tensor_to_pil


class Throughput(L.Callback):
    """Logs ``perf/images_per_sec`` and ``perf/steps_per_sec`` averaged over each interval."""

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = every_n_steps
        self._start: float | None = None
        self._images = 0
        self._steps = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        if self._start is None:
            self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        self._images += batch[0].shape[0]
        self._steps += 1
        if self._steps < self.every_n_steps or self._start is None:
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - self._start
        module.log("perf/images_per_sec", self._images / elapsed, prog_bar=True)
        module.log("perf/steps_per_sec", self._steps / elapsed)
        self._start, self._images, self._steps = time.perf_counter(), 0, 0


@torch.no_grad()
def stylization_grid(module: L.LightningModule, photos: torch.Tensor) -> torch.Tensor:
    """Rows: a style thumbnail row, then each photo followed by its stylization in every style."""
    net = module.net
    was_training = net.training
    net.eval()
    size = photos.shape[-1]
    rows = [torch.ones(3, size, size)]
    for style in module.styles:
        rows.append(center_square(style.load(size)[0], size).cpu())
    for photo in photos:
        rows.append(photo.cpu())
        batch = photo.unsqueeze(0).expand(net.num_styles, -1, -1, -1).to(module.device)
        out = net(batch, torch.arange(net.num_styles, device=module.device)).float().cpu()
        rows.extend(out)
    net.train(was_training)
    return make_grid(torch.stack(rows), nrow=net.num_styles + 1, padding=2, pad_value=1.0)


class EveryNSteps(L.Callback):
    """Calls ``_log`` every ``every_n_steps`` training steps and once at the end."""

    def __init__(self, every_n_steps: int = 500) -> None:
        self.every_n_steps = every_n_steps

    def _log(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        raise NotImplementedError

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._log(trainer, module)


class SampleGrid(EveryNSteps):
    """Every ``every_n_steps`` (and at the end) log the validation × style grid to TensorBoard."""

    def _log(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        photos = getattr(trainer.datamodule, "val_images", None)
        if photos is None or not trainer.is_global_zero:
            return
        grid = stylization_grid(module, photos)
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image("samples", grid, trainer.global_step)


class ProgressFile(EveryNSteps):
    """Every ``every_n_steps`` (and at the end) write ``progress.json`` (step, steps, loss,
    the loss so far, seconds) and ``preview.jpg`` (the first validation photo in each style)
    to ``dir``, atomically: a process that started the training (the web app) reads them
    while it runs, without a TensorBoard reader or the trainer's own objects."""

    def __init__(self, dir: str | Path, every_n_steps: int = 10) -> None:  # noqa: A002
        super().__init__(every_n_steps)
        self.dir = Path(dir)
        self._start = time.monotonic()
        self._losses: list[tuple[int, float]] = []

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.monotonic()
        self._log(trainer, module)

    def _log(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        loss = trainer.callback_metrics.get("loss/total")
        step = int(trainer.global_step)
        if loss is not None and (not self._losses or self._losses[-1][0] != step):
            self._losses.append((step, round(float(loss), 5)))
        photos = getattr(trainer.datamodule, "val_images", None)
        if photos is not None:
            atomic_write(self.dir / "preview.jpg", lambda tmp: _preview(module, photos[0], tmp))
        state = {
            "step": step,
            "steps": int(trainer.max_steps),
            "loss": self._losses[-1][1] if self._losses else None,
            "losses": self._losses,
            "seconds": round(time.monotonic() - self._start, 1),
        }
        atomic_write(self.dir / "progress.json", lambda tmp: tmp.write_text(json.dumps(state)))


@torch.no_grad()
def _preview(module: L.LightningModule, photo: torch.Tensor, path: Path) -> None:
    """``photo`` in every style of ``module``, side by side, as a JPEG."""
    net = module.net
    was_training = net.training
    net.eval()
    batch = photo.unsqueeze(0).expand(net.num_styles, -1, -1, -1).to(module.device)
    out = net(batch, torch.arange(net.num_styles, device=module.device)).float().cpu()
    net.train(was_training)
    row = make_grid(out, nrow=net.num_styles, padding=0)
    tensor_to_pil(row).save(path, format="JPEG", quality=90)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside their place, then renamed over it.
    Lightning's own atomic save goes through the system's temporary folder and is then
    moved across filesystems: on a full disk that left a truncated ``last.ckpt``. Here a
    failed write leaves the previous checkpoint as it was."""

    def save_checkpoint(
        self, checkpoint: dict, path: str | Path, storage_options: object = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))


class CheckpointOnInterrupt(L.Callback):
    """On SIGTERM (a scheduler's pre-emption) or Ctrl-C, write ``last.ckpt`` at the current
    step, so at most the step in flight is lost (interval checkpoints lose up to an interval).

    ``saved`` is the path written, for the caller's resume message."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self.saved: Path | None = None

    def on_exception(
        self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            return
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path)  # every rank calls it; rank zero writes (atomically)
        self.saved = path


def write_samples(module: L.LightningModule, photos: torch.Tensor, folder: Path) -> list[Path]:
    """Save each validation photo in every style, and the whole grid, as JPEG files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    net = module.net.eval()
    with torch.no_grad():
        for i, photo in enumerate(photos):
            batch = photo.unsqueeze(0).expand(net.num_styles, -1, -1, -1).to(module.device)
            out = net(batch, torch.arange(net.num_styles, device=module.device)).float().cpu()
            for name, image in zip(module.style_names, out, strict=True):
                path = folder / f"photo{i}_{name}.jpg"
                tensor_to_pil(image).save(path, quality=92)
                written.append(path)
    grid_path = folder / "grid.jpg"
    tensor_to_pil(stylization_grid(module, photos)).save(grid_path, quality=92)
    written.append(grid_path)
    return written
