"""Content batches for training and the fixed validation photos shown in TensorBoard."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

import lightning as L
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset

from fastnst.data.content import ContentDataset, ContentItem, validation_images
from fastnst.errors import UserError


def start_worker(worker_id: int) -> None:
    """A data-loader worker takes SIGTERM as it takes Ctrl-C: it stops quietly and leaves
    the trainer to save its step. A terminal's Ctrl-C and ``kill -- -PGID`` signal the whole
    process group; a worker killed by SIGTERM would make the trainer raise "DataLoader worker
    killed" in place of the resume message. Seeds the worker as Lightning would have."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if os.environ.get("PL_SEED_WORKERS") == "1":  # seed_everything(workers=True)
        pl_worker_init_function(worker_id)


class ContentDataModule(L.LightningDataModule):
    """Random crops of ``source`` (a list of paths or images built by a ``data`` config).

    ``samples_per_epoch`` sets the epoch length: training is counted in steps, and small
    sets (the embedded photos) are simply revisited with new random crops.
    """

    def __init__(
        self,
        source: Sequence[ContentItem],
        image_size: int = 256,
        batch_size: int = 4,
        num_workers: int = 2,
        num_val: int = 3,
        val_size: int = 256,
        samples_per_epoch: int | None = None,
        **source_options: object,
    ) -> None:
        # ``source_options`` are a data config's own keys (data.dir, data.name,
        # data.max_samples): they only feed ``source`` through interpolation.
        super().__init__()
        self.source = list(source)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_val = num_val
        self.val_size = val_size
        self.samples_per_epoch = samples_per_epoch
        # Too few for one batch: Lightning would run no step ("No training batches") and the
        # untrained network would be exported as a model.
        if samples_per_epoch is not None and samples_per_epoch < batch_size:
            raise UserError(
                f"data.samples_per_epoch={samples_per_epoch} is less than one batch "
                f"(data.batch_size={batch_size})"
            )
        if samples_per_epoch is None and len(self.source) < batch_size:
            raise UserError(
                f"{len(self.source)} content photo(s) make no training batch: "
                f"data.batch_size={batch_size} needs at least {batch_size} photos "
                "(or set data.samples_per_epoch to revisit the few there are)"
            )
        self.val_images: torch.Tensor = validation_images(self.source, num_val, val_size)

    def train_dataloader(self) -> DataLoader:
        return self.loader(
            ContentDataset(self.source, self.image_size, length=self.samples_per_epoch)
        )

    def loader(self, dataset: Dataset) -> DataLoader:
        """Shuffled, full batches only (every batch mixes styles evenly), worker-fed."""
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=start_worker,
            pin_memory=torch.cuda.is_available(),
        )
