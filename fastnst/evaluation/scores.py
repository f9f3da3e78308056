"""What is measured on each stylized output: the model's training loss, the scale-free style and
content distances (:mod:`fastnst.distances`), the fine-texture ratio (:mod:`fastnst.artifacts`),
SSIM and MSE against the photo, and the time of a forward pass; one :class:`PhotoStyleScore`
per photo and style, their per-style means and tables.

A new per-output metric goes here: a field of :class:`PhotoStyleScore` computed in
:func:`score_output`, and an entry of :data:`METRICS`; the report's tables, the per-style
means and ``fastnst compare`` take their columns from :data:`METRICS`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fastnst.artifacts import high_frequency_ratio
from fastnst.distances import Distances
from fastnst.evaluation.report import markdown_table
from fastnst.losses import PerceptualLoss
from fastnst.model import TransformerNet

# Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_window(channels: int, size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel_1d = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel_1d /= kernel_1d.sum()
    kernel_2d = torch.outer(kernel_1d, kernel_1d)
    return kernel_2d.expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two RGB images in [0, 1] (``[3, H, W]`` or ``[1, 3, H, W]``).

    Gaussian-window SSIM per channel over the positions where the window fits entirely
    inside the image, averaged over channels: scikit-image's ``structural_similarity``
    with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``.
    """
    x = (a if a.dim() == 4 else a.unsqueeze(0)).double()
    y = (b if b.dim() == 4 else b.unsqueeze(0)).double()
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    channels = x.shape[1]
    window = _gaussian_window(channels, SSIM_WINDOW, SSIM_SIGMA).to(x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(score.mean())


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared error in [0, 1] units (the seeds' "distance from the photo")."""
    return float(F.mse_loss(a.double(), b.double()))


class LossMeter:
    """The training loss of a model, measured per image and style, without gradients."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        style_sets: Sequence[Sequence[torch.Tensor]],
        device: torch.device,
    ) -> None:
        self.loss_fn = PerceptualLoss.from_settings(settings).to(device)
        self.loss_fn.set_style_targets(style_sets)
        self.num_styles = len(style_sets)
        self.device = device

    @torch.no_grad()
    def __call__(self, output: torch.Tensor, photo: torch.Tensor, style: int) -> dict[str, float]:
        mix = F.one_hot(torch.tensor([style]), self.num_styles).float().to(self.device)
        total, parts = self.loss_fn(output.to(self.device), photo.to(self.device), mix)
        return {
            "total": total.item(),
            "content": parts["content"].item(),
            "style": parts["style"].item(),
            "tv": parts["tv"].item(),
        }


@torch.no_grad()
def time_forward(net: TransformerNet, photo: torch.Tensor, style: int, repeats: int = 3) -> float:
    """Median seconds of one forward pass, after one warm-up pass (allocator, kernels)."""
    net(photo, style)
    times = []
    for _ in range(max(1, repeats)):
        if photo.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        net(photo, style)
        if photo.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# The per-output metrics, in report order: a field of PhotoStyleScore and its column title.
METRICS: tuple[tuple[str, str], ...] = (
    ("total", "total loss"),
    ("style_loss", "style loss"),
    ("content", "content loss"),
    ("style_distance", "style distance"),
    ("content_distance", "content distance"),
    ("hf_ratio", "HF ratio"),
    ("ssim", "SSIM"),
    ("mse", "MSE"),
    ("seconds", "s/image"),
)


@dataclass
class PhotoStyleScore:
    """One row of the report: one photo stylized in one style by the network."""

    photo: str
    style: str
    total: float
    content: float
    style_loss: float
    style_distance: float
    content_distance: float
    hf_ratio: float
    ssim: float
    mse: float
    seconds: float


def as_array(image: torch.Tensor) -> np.ndarray:
    """``[1, 3, H, W]`` or ``[3, H, W]`` tensor → ``[3, H, W]`` float array in [0, 1]."""
    return image.detach().float().cpu().reshape(-1, *image.shape[-2:]).clamp(0, 1).numpy()


def score_output(
    meter: LossMeter,
    judge: Distances,
    photo_name: str,
    style_name: str,
    style_index: int,
    photo: torch.Tensor,
    output: torch.Tensor,
    seconds: float,
) -> PhotoStyleScore:
    losses = meter(output, photo, style_index)
    distances = judge(output, photo, style_index)
    return PhotoStyleScore(
        photo=photo_name,
        style=style_name,
        total=losses["total"],
        content=losses["content"],
        style_loss=losses["style"],
        style_distance=distances["style"],
        content_distance=distances["content"],
        hf_ratio=high_frequency_ratio(as_array(output), as_array(photo)),
        ssim=ssim(output.cpu(), photo.cpu()),
        mse=mse(output.cpu(), photo.cpu()),
        seconds=seconds,
    )


def per_style_means(scores: Sequence[PhotoStyleScore]) -> dict[str, dict[str, float]]:
    """Mean of each metric over the photos, per style."""
    by_style: dict[str, list[PhotoStyleScore]] = {}
    for score in scores:
        by_style.setdefault(score.style, []).append(score)
    return {
        style: {key: statistics.mean(getattr(s, key) for s in rows) for key, _ in METRICS}
        for style, rows in by_style.items()
    }


def scores_table(scores: Sequence[PhotoStyleScore]) -> str:
    header = ["style", "photo", *(title for _, title in METRICS)]
    rows = [[s.style, s.photo, *(getattr(s, key) for key, _ in METRICS)] for s in scores]
    return markdown_table(header, rows)


def means_table(means: Mapping[str, Mapping[str, float]]) -> str:
    header = ["style", *(title for _, title in METRICS)]
    rows = [[style, *(m[key] for key, _ in METRICS)] for style, m in means.items()]
    return markdown_table(header, rows)
