"""Quality metrics for a trained model: the training losses, SSIM and MSE against the photo,
time per image, and how many Gatys optimisation steps reach the network's loss.

Losses are measured with the loss settings stored in the model file (``ModelInfo.loss``),
so a model is judged by the objective it was trained on, and the Gatys baseline
(:mod:`fastnst.optimize`) is judged by that same objective.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fastnst.files import atomic_write
from fastnst.losses import PerceptualLoss
from fastnst.model import NetConfig, TransformerNet

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
        self.loss_fn = PerceptualLoss(**settings).to(device)
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


def steps_to_reach(history: Sequence[Mapping[str, float]], target: float) -> int | None:
    """The first step count whose total loss is at or below ``target`` (None: never)."""
    for entry in history:
        if entry["total"] <= target:
            return int(entry["step"])
    return None


@dataclass
class PhotoStyleScore:
    """One row of the report: one photo stylized in one style by the network."""

    photo: str
    style: str
    total: float
    content: float
    style_loss: float
    ssim: float
    mse: float
    seconds: float


def score_output(
    meter: LossMeter,
    photo_name: str,
    style_name: str,
    style_index: int,
    photo: torch.Tensor,
    output: torch.Tensor,
    seconds: float,
) -> PhotoStyleScore:
    losses = meter(output, photo, style_index)
    return PhotoStyleScore(
        photo=photo_name,
        style=style_name,
        total=losses["total"],
        content=losses["content"],
        style_loss=losses["style"],
        ssim=ssim(output.cpu(), photo.cpu()),
        mse=mse(output.cpu(), photo.cpu()),
        seconds=seconds,
    )


def per_style_means(scores: Sequence[PhotoStyleScore]) -> dict[str, dict[str, float]]:
    """Mean of each metric over the photos, per style."""
    by_style: dict[str, list[PhotoStyleScore]] = {}
    for score in scores:
        by_style.setdefault(score.style, []).append(score)
    keys = ("total", "content", "style_loss", "ssim", "mse", "seconds")
    return {
        style: {key: statistics.mean(getattr(s, key) for s in rows) for key in keys}
        for style, rows in by_style.items()
    }


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats get 4 significant digits."""

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def scores_table(scores: Sequence[PhotoStyleScore]) -> str:
    header = ["style", "photo", "total loss", "style loss", "content loss", "SSIM", "MSE"]
    header.append("s/image")
    rows = [
        [s.style, s.photo, s.total, s.style_loss, s.content, s.ssim, s.mse, s.seconds]
        for s in scores
    ]
    return markdown_table(header, rows)


def means_table(means: Mapping[str, Mapping[str, float]]) -> str:
    header = ["style", "total loss", "style loss", "content loss", "SSIM", "MSE", "s/image"]
    rows = [
        [style, m["total"], m["style_loss"], m["content"], m["ssim"], m["mse"], m["seconds"]]
        for style, m in means.items()
    ]
    return markdown_table(header, rows)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically, so an interrupted evaluation never leaves half a JSON file."""
    text = json.dumps(data, indent=2, default=_jsonable)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _jsonable(value: Any) -> Any:
    if isinstance(value, PhotoStyleScore):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def compare_reports(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Side by side means of several ``tools/evaluate.py`` reports, keyed by label.

    Loss values only compare when the reports scored the same photos and styles at the same
    sizes with the same loss settings, so anything else is refused rather than tabulated.
    """
    if len(reports) < 2:
        raise ValueError("need at least two reports to compare")
    first = next(iter(reports.values()))

    def setup(report: Mapping[str, Any]) -> tuple:
        pairs = sorted((s["photo"], s["style"]) for s in report["scores"])
        loss = json.dumps(report["model_info"]["loss"], sort_keys=True)
        return report["size"], report["style_size"], loss, pairs

    for label, report in reports.items():
        if setup(report) != setup(first):
            raise ValueError(
                f"report {label!r} scored other photos, styles, sizes or loss settings "
                "than the first one: its losses do not compare"
            )
    keys = ("total", "style_loss", "content", "ssim", "mse", "seconds")
    models = {}
    for label, report in reports.items():
        net = report["model_info"]["net"]
        models[label] = {
            "model": report["model"],
            "net": net,
            "parameters": sum(p.numel() for p in TransformerNet(NetConfig(**net)).parameters()),
            "steps": report["model_info"]["steps"],
            **{key: statistics.mean(s[key] for s in report["scores"]) for key in keys},
            "per_style_total": {s: m["total"] for s, m in report["per_style"].items()},
        }
    return {"size": first["size"], "style_size": first["style_size"], "models": models}


def comparison_markdown(comparison: Mapping[str, Any]) -> str:
    """Means over every photo and style, then each style's total loss per model."""
    models = comparison["models"]
    header = ["model", "width", "parameters", "steps", "total loss", "style loss",
              "content loss", "SSIM", "MSE", "s/image"]
    rows = [
        [label, m["net"].get("width", 1.0), f"{m['parameters'] / 1e6:.2f} M", m["steps"],
         m["total"], m["style_loss"], m["content"], m["ssim"], m["mse"], m["seconds"]]
        for label, m in models.items()
    ]
    styles = list(next(iter(models.values()))["per_style_total"])
    per_style = [[style, *(m["per_style_total"][style] for m in models.values())]
                 for style in styles]
    return "\n".join([
        markdown_table(header, rows),
        "",
        "Total loss per style (mean over the photos):",
        "",
        markdown_table(["style", *models], per_style),
        "",
    ])
