"""Distillation: a narrow network learns a trained model's stylizations (classics ->
classics-lite). The teacher's output is the target, so no VGG runs in the loop and a step
costs one teacher forward plus the small student's forward and backward."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from fastnst.errors import UserError
from fastnst.export import ModelInfo, load_model
from fastnst.losses import distillation_loss
from fastnst.training.module import StyleTransferModule


class DistillModule(StyleTransferModule):
    """:class:`StyleTransferModule` whose loss is the teacher's output, not VGG features.

    ``distill`` holds ``teacher`` (a bundled model name or a file, with the config's styles
    in the same order) and ``edge_weight``. The teacher is frozen and never saved."""

    def __init__(self, *args: Any, distill: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = dict(distill or {})
        if not settings.get("teacher"):
            raise UserError("stage=distill needs distill.teacher=MODEL (a bundled name or a file)")
        teacher, info = load_model(settings["teacher"])
        if info.style_names != self.style_names:
            raise UserError(
                f"the teacher's styles are {info.style_names}, the config's {self.style_names}"
            )
        self.teacher_info = info
        self.edge_weight = float(settings.get("edge_weight", 1.0))
        # A plain attribute, not a submodule: it stays out of checkpoints and the optimiser.
        self.teacher = [teacher.requires_grad_(False)]

    def on_fit_start(self) -> None:
        self.teacher[0].to(self.device)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, skipped = batch
        indices = torch.randint(self.net.num_styles, (images.shape[0],), device=images.device)
        mix = F.one_hot(indices, self.net.num_styles).float()
        with torch.no_grad():
            target = self.teacher[0](images, mix)
        total, parts = distillation_loss(self.net(images, mix), target, self.edge_weight)
        self.check_finite(total, parts, "optim.lr")
        self.skipped_files += int(skipped.sum())
        self.log("loss/total", total, prog_bar=True)
        self.log_dict({f"loss/{name}": value for name, value in parts.items()})
        return total

    def model_info(self) -> ModelInfo:
        """The student is judged by the teacher's loss and inherits its style sources."""
        info = super().model_info()
        info.loss = dict(self.teacher_info.loss)
        info.vgg_weights = self.teacher_info.vgg_weights
        info.extra["style_sources"] = dict(self.teacher_info.extra.get("style_sources", {}))
        info.extra["distilled_from"] = str(self.hparams.distill["teacher"])
        return info
