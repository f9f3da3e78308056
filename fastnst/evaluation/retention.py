"""Content retention (seed 002): does an ImageNet classifier still see the photo's class in
the stylized image, for the network and for Gatys optimisation; and the report's section."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fastnst.classifier import ImageNetClassifier, class_names
from fastnst.evaluation.report import markdown_table
from fastnst.evaluation.scores import LossMeter
from fastnst.images import resize_long_side
from fastnst.model import TransformerNet
from fastnst.optimize.gatys import gatys


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
        return {
            "photo_class": expected,
            "output_class": top5[0],
            "top1": top5[0] == expected,
            "top5": expected in top5,
        }


def retention_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per style, the share of photos with top-1 and with top-5 agreement, plus ``mean``
    over every row (so over every photo and style)."""
    by_style: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_style.setdefault(row["style"], []).append(row)
    by_style["mean"] = list(rows)
    return {
        style: {
            "top1": statistics.mean(float(r["top1"]) for r in group),
            "top5": statistics.mean(float(r["top5"]) for r in group),
            "count": len(group),
        }
        for style, group in by_style.items()
    }


def retention_against_gatys(
    photos: Mapping[str, torch.Tensor],
    net: TransformerNet,
    style_names: list[str],
    names: Sequence[str],
    meter: LossMeter,
    retention: RetentionMeter,
    device: torch.device,
    size: int,
    steps: int,
) -> dict[str, Any]:
    """Content retention of the network and of Gatys optimisation side by side, on every
    photo and scored style at ``size`` px (the Gatys size): L-BFGS from the photo for
    ``steps`` steps with the network's own loss module and style targets."""
    rows: dict[str, list[dict[str, Any]]] = {"network": [], "gatys": []}
    print(
        f"retention vs Gatys: {len(photos)} photos x {len(names)} styles, "
        f"{steps} L-BFGS steps at {size} px"
    )
    for photo_name, full in photos.items():
        photo = resize_long_side(full, size).unsqueeze(0).to(device)
        for name in names:
            index = style_names.index(name)
            mix = F.one_hot(torch.tensor([index]), len(style_names))
            with torch.no_grad():
                outputs = {"network": net(photo, index)}
            outputs["gatys"] = gatys(
                photo,
                meter.loss_fn,
                steps,
                optimizer="lbfgs",
                init="content",
                style_mix=mix,
                progress=False,
            ).image
            for method, output in outputs.items():
                kept = retention(photo_name, photo, output)
                rows[method].append({"photo": photo_name, "style": name, **kept})
            print(
                f"{name:>16} x {photo_name:<12} top-1 kept: network "
                f"{rows['network'][-1]['top1']}, Gatys {rows['gatys'][-1]['top1']}"
            )
    return {
        "size": size,
        "steps": steps,
        **{method: {"rows": r, "rates": retention_rates(r)} for method, r in rows.items()},
    }


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
        header += [
            f"network top-1 ({size} px)",
            "network top-5",
            f"Gatys {steps} steps top-1 ({size} px)",
            "Gatys top-5",
        ]
    rows = []
    for style, rate in network["rates"].items():
        row = [
            f"**{style}**" if style == "mean" else style,
            _percent(rate["top1"]),
            _percent(rate["top5"]),
        ]
        if gatys_part:
            for method in ("network", "gatys"):
                other = gatys_part[method]["rates"][style]
                row += [_percent(other["top1"]), _percent(other["top5"])]
        rows.append(row)
    names = class_names()
    photo_classes = {r["photo"]: r["photo_class"] for r in network["rows"]}
    photo_count = len(photo_classes)
    classes = ", ".join(f"{photo} → {names[c]}" for photo, c in photo_classes.items())
    return "\n".join(
        [
            "## Content retention (ImageNet class kept)",
            "",
            f"{retention['classifier']} classifies each photo and each stylized image. The photo's "
            "class is the classifier's top-1 on the photo itself; **top-1** is the share of "
            "stylized images whose top-1 is that class, **top-5** the share whose five most "
            f"probable classes include it. {photo_count} photos per style"
            + (
                f"; the Gatys columns optimise each photo and style for {gatys_part['steps']} "
                "L-BFGS steps from the photo with the model's own loss, at "
                f"{gatys_part['size']} px like the network column beside them"
                if gatys_part
                else ""
            )
            + ".",
            "",
            markdown_table(header, rows),
            "",
            f"The photos' classes at {network['size']} px: {classes}.",
            "",
        ]
    )
