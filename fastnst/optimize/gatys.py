"""Gatys et al. (2016) style transfer by optimising the pixels of one image.

It is the slow baseline that the feed-forward network replaces, so it uses the very same
VGG-19 and loss modules (:class:`fastnst.losses.PerceptualLoss`) with the same settings: a
loss value here and a loss value of a trained network are the same quantity.

    fastnst optimize --content photo.jpg --style art.jpg --output out.png \\
        --steps 300 --optimizer lbfgs --init content --size 512

One *step* is one loss-and-gradient evaluation for both optimisers (L-BFGS runs one
iteration per step, without line search), so step counts compare across optimisers.
:mod:`fastnst.optimize.video` builds video optimisation on :func:`gatys`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from fastnst import CONF_DIR
from fastnst.errors import UserError
from fastnst.export import read_info
from fastnst.files import atomic_write
from fastnst.images import tensor_to_pil
from fastnst.losses import PerceptualLoss, content_loss, style_loss, total_variation_loss
from fastnst.video.losses import short_term_temporal_loss

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
# Step sizes for pixels in [0, 1]: L-BFGS scales its own steps; Adam moves each pixel by
# about lr per step, and 0.02 (5 grey levels) converges in a few hundred steps without ringing.
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
LOSS_CONF_DIR = CONF_DIR / "loss"
DEFAULT_LOSS_FILE = LOSS_CONF_DIR / "default.yaml"


def loss_choices() -> str:
    names = ", ".join(sorted(path.stem for path in LOSS_CONF_DIR.glob("*.yaml")))
    return f"a packaged loss config ({names}), a .yaml file or a model file"


StepCallback = Callable[[int, torch.Tensor], None]


@dataclass(frozen=True)
class TemporalTarget:
    """The previous frame's result lined up with this frame (``warped``), where that can be
    trusted (``trusted``, ``[1, 1, H, W]``), and the weight of Ruder et al.'s short-term loss."""

    warped: torch.Tensor
    trusted: torch.Tensor
    weight: float


@dataclass
class OptimizationResult:
    """The final image and the loss of the image after each number of steps (0 … steps)."""

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)


def load_loss_settings(source: str | Path | None = None) -> dict[str, Any]:
    """``PerceptualLoss`` keyword arguments from a model file (its training settings), a loss
    config file, or the name of a packaged one (``post_conv``: fastnst/conf/loss/post_conv.yaml);
    ``defaults`` entries are merged like Hydra does."""
    path = Path(source) if source else DEFAULT_LOSS_FILE
    if not path.suffix and len(path.parts) == 1 and (LOSS_CONF_DIR / f"{path}.yaml").is_file():
        path = LOSS_CONF_DIR / f"{path}.yaml"
    if path.suffix == ".safetensors":
        info, _ = read_info(path)
        if not info.loss:
            raise UserError(f"{path} stores no loss settings; pass --loss with {loss_choices()}")
        return dict(info.loss)
    if not path.is_file():
        raise UserError(f"loss settings not found: {path} (pass --loss with {loss_choices()})")
    import yaml  # training-side dependency (Hydra's); optimisation is not the inference path

    raw = yaml.safe_load(path.read_text()) or {}
    merged: dict[str, Any] = {}
    for entry in raw.pop("defaults", []):
        if entry != "_self_":
            merged.update(load_loss_settings(path.with_name(f"{entry}.yaml")))
    merged.update(raw)
    return merged


class GatysObjective:
    """``PerceptualLoss`` for one fixed photo and one style: the photo's VGG features are
    computed once, not on every step. ``style_mix`` ``[1, num_styles]`` picks the loss's
    style target (default: its only one); ``temporal`` adds the short-term video loss."""

    def __init__(
        self,
        loss_fn: PerceptualLoss,
        content: torch.Tensor,
        style_mix: torch.Tensor | None = None,
        temporal: TemporalTarget | None = None,
    ) -> None:
        self.loss_fn = loss_fn
        self.temporal = temporal
        with torch.no_grad():
            self.content_targets = loss_fn.vgg(content)
        mix = torch.ones(1, 1) if style_mix is None else style_mix.reshape(1, -1).float()
        self.mix = mix.to(content.device)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        fn = self.loss_fn
        feats = fn.vgg(image)
        c_total, _ = content_loss(feats, self.content_targets, fn.content_layers)
        s_total, _ = style_loss(
            feats,
            fn.target_grams(),
            fn.style_layers,
            self.mix,
            fn.style_coefficients,
            fn.style_stat,
        )
        tv_total, _ = total_variation_loss(image)
        total = fn.content_weight * c_total + fn.style_weight * s_total + fn.tv_weight * tv_total
        parts = {"content": c_total.item(), "style": s_total.item(), "tv": tv_total.item()}
        if self.temporal is not None:
            t_total, _ = short_term_temporal_loss(
                image, self.temporal.warped, self.temporal.trusted
            )
            total = total + self.temporal.weight * t_total
            parts["temporal"] = t_total.item()
        return total, {"total": total.item(), **parts}


def build_loss(
    settings: Mapping[str, Any], style_images: list[torch.Tensor], device: torch.device
) -> PerceptualLoss:
    """The loss network with one style target: the mean Gram of ``style_images``."""
    loss_fn = PerceptualLoss.from_settings(settings).to(device)
    loss_fn.set_style_targets([style_images])
    return loss_fn


def gatys(
    content: torch.Tensor,
    loss_fn: PerceptualLoss,
    steps: int,
    optimizer: str = "lbfgs",
    init: str = "content",
    lr: float | None = None,
    seed: int = 0,
    style_mix: torch.Tensor | None = None,
    on_step: StepCallback | None = None,
    progress: bool = True,
    start: torch.Tensor | None = None,
    temporal: TemporalTarget | None = None,
) -> OptimizationResult:
    """Optimise an image (``[1, 3, H, W]`` in [0, 1]) for ``steps`` loss evaluations.

    ``on_step(k, image)`` is called with the image after ``k`` steps, for k = 1 … steps.
    Pixels are clamped to [0, 1] after each step, so every recorded loss is that of a
    saveable image. ``style_mix`` picks the style of a multi-style loss (a one-hot row).
    ``start`` replaces ``init`` with a given first image (a video's warped previous result);
    ``temporal`` adds the short-term video loss.
    """
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {optimizer!r}; use {' or '.join(OPTIMIZERS)}")
    if init not in INITS:
        raise UserError(f"unknown init {init!r}; use {' or '.join(INITS)}")
    if steps < 1:
        raise UserError("--steps must be at least 1")
    objective = GatysObjective(loss_fn, content, style_mix, temporal)
    if start is not None:
        start = start.detach().clone(memory_format=torch.contiguous_format)
    elif init == "content":
        # Contiguous: a photo read at its own size is a strided view of the decoded HWC
        # array, and L-BFGS flattens the gradient with .view().
        start = content.detach().clone(memory_format=torch.contiguous_format)
    else:
        noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed))
        start = noise.to(content.device)
    image = start.requires_grad_(True)
    step_size = DEFAULT_LR[optimizer] if lr is None else lr
    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [image], lr=step_size, max_iter=1, history_size=50
        )
    else:
        opt = torch.optim.Adam([image], lr=step_size)
    history: list[dict[str, float]] = []

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        total, parts = objective(image)
        total.backward()
        history.append({"step": float(len(history)), **parts})
        return total

    bar = tqdm(range(1, steps + 1), desc="optimising", unit="step", disable=not progress)
    for step in bar:
        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
        bar.set_postfix(loss=f"{history[-1]['total']:.4g}")
        if on_step is not None:
            on_step(step, image.detach())
    with torch.no_grad():
        _, parts = objective(image)
    history.append({"step": float(steps), **parts})
    return OptimizationResult(image=image.detach(), history=history)


def save_image(image: torch.Tensor, path: Path) -> None:
    """Write atomically, in the format the suffix names."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    pil = tensor_to_pil(image)
    atomic_write(path, lambda tmp: pil.save(tmp, format=fmt, quality=95))
