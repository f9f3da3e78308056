"""The Lightning module: one multi-style network trained against the perceptual loss."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from fastnst.data.styles import StyleSet
from fastnst.errors import UserError
from fastnst.export import FORMAT_VERSION, ModelInfo
from fastnst.losses import PerceptualLoss
from fastnst.model import ConditionalInstanceNorm2d, NetConfig, TransformerNet
from fastnst.regularizers import CompoundSettings, compound_loss


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite: continuing would only spread it into the weights."""


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float):
    """Linear warm-up, then cosine decay to ``min_ratio`` of the base rate at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def freeze_all_but(net: TransformerNet, trainable: str) -> None:
    """``all`` trains every weight; ``cin`` only the conditional instance norm γ/β tables
    (Dumoulin et al. 2017: a new style costs 2·C numbers per norm layer, the convolutions
    stay shared), so the frozen convolutions are never touched by the optimiser."""
    if trainable not in ("all", "cin"):
        raise UserError(f"model.trainable must be 'all' or 'cin', got {trainable!r}")
    for module in net.modules():
        is_cin = isinstance(module, ConditionalInstanceNorm2d)
        for param in module.parameters(recurse=False):
            param.requires_grad_(trainable == "all" or is_cin)


class StyleTransferModule(L.LightningModule):
    """Trains :class:`TransformerNet` on content crops, each image with a random style.

    ``styles`` (the style images) are not hyper-parameters: they are reloaded from the
    style config on every start, and their Gram targets are recomputed once on the device.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        loss: Mapping[str, Any],
        optim: Mapping[str, Any],
        style_names: Sequence[str],
        style_size: int = 256,
        image_size: int = 256,
        check_finite_every: int = 1,
        trainable: str = "all",
        styles: Sequence[StyleSet] | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["styles"])
        self.net = TransformerNet(NetConfig(num_styles=len(style_names), **net))
        freeze_all_but(self.net, trainable)
        self.loss_fn = PerceptualLoss.from_settings(loss)
        self.compound = CompoundSettings.from_loss(dict(loss))
        self.styles = list(styles or [])
        self.skipped_files = 0
        self.channels_last = False
        # Bound methods, not modules: a compiled copy must not enter the state dict twice.
        self.net_step = self.net.forward
        self.loss_step = self.loss_fn.forward

    @property
    def style_names(self) -> list[str]:
        return list(self.hparams.style_names)

    def on_fit_start(self) -> None:
        if self.device.type == "cuda" or self.hparams.compile:
            self.channels_last = True
            self.net.to(memory_format=torch.channels_last)
            self.loss_fn.to(memory_format=torch.channels_last)
        if self.hparams.compile:  # 1.29x on a 2-core CPU with channels_last (BENCHMARKS.md)
            self.net_step = torch.compile(self.net.forward)
            self.loss_step = torch.compile(self.loss_fn.forward)
        self.prepare_style_targets()

    def prepare_style_targets(self) -> None:
        if not self.styles:
            raise UserError("no style images were given to the training module")
        sets = [style.load(self.hparams.style_size) for style in self.styles]
        coefficients = [style.coefficient for style in self.styles]
        self.loss_fn.to(self.device)
        self.loss_fn.set_style_targets(sets, coefficients)

    def forward(self, images: torch.Tensor, style: torch.Tensor | int) -> torch.Tensor:
        return self.net(images, style)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, skipped = batch
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        indices = torch.randint(self.net.num_styles, (images.shape[0],), device=images.device)
        mix = F.one_hot(indices, self.net.num_styles).float()
        output = self.net_step(images, mix)
        total, parts = self.loss_step(output, images, mix)
        if self.compound.weight > 0:
            reg, reg_parts = compound_loss(self.net_step, images, mix, output, self.compound)
            total = total + self.compound.weight * reg
            parts = {**parts, **reg_parts}
        self.check_finite(total, parts, "the style weight")
        self.skipped_files += int(skipped.sum())
        self.log("loss/total", total, prog_bar=True)
        self.log_dict({f"loss/{name}": value for name, value in parts.items()})
        self.log("data/skipped_files", float(self.skipped_files))
        return total

    def check_finite(
        self, total: torch.Tensor, parts: Mapping[str, torch.Tensor], knob: str
    ) -> None:
        """Stop on a NaN/inf loss (every ``check_finite_every`` steps: each check syncs a GPU)."""
        every = self.hparams.check_finite_every
        if every and self.global_step % every == 0 and not torch.isfinite(total):
            raise NonFiniteLossError(
                f"non-finite loss ({total.item()}) at step {self.global_step}; parts: "
                + ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
                + f". Lower optim.lr or {knob}, or resume from the last checkpoint."
            )

    def configure_optimizers(self) -> dict[str, Any]:
        optim = self.hparams.optim
        optimizer = torch.optim.Adam(
            [p for p in self.net.parameters() if p.requires_grad],
            lr=optim["lr"],
            betas=tuple(optim.get("betas", (0.9, 0.999))),
        )
        total = self.trainer.max_steps if self.trainer.max_steps > 0 else 40000
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            warmup_cosine(
                int(optim.get("warmup_steps", 0)) or 1, total, float(optim.get("min_lr_ratio", 0.1))
            ),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def model_info(self) -> ModelInfo:
        loss = dict(self.hparams.loss)
        return ModelInfo(
            net=self.net.config.to_dict(),
            style_names=self.style_names,
            format_version=FORMAT_VERSION,
            loss=loss,
            vgg_weights=str(loss.get("vgg_weights", "caffe")),
            steps=int(self.global_step),
            image_size=int(self.hparams.image_size),
            extra={"style_sources": {style.name: style.describe() for style in self.styles}},
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A plain-data block so ``fastnst.export`` can rebuild the net without Lightning."""
        info = self.model_info().__dict__
        checkpoint["fastnst"] = {"net": info["net"], "info": info}
