"""Training callbacks: throughput in images/s, the validation × style image grid, and a
checkpoint when the run is killed."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
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
        if trainer.world_size > 1:
            trainer.save_checkpoint(path)  # every rank must call it; rank zero writes
        else:
            atomic_write(path, lambda tmp: trainer.save_checkpoint(tmp))
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
