"""``fastnst compare``'s tables: several ``fastnst evaluate`` reports side by side."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from typing import Any

from fastnst.evaluation.report import markdown_table
from fastnst.evaluation.scores import METRICS
from fastnst.model import NetConfig, TransformerNet


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
    # A metric added after some of the reports were written is left out of the comparison.
    keys = [
        key
        for key, _ in METRICS
        if all(key in s for report in reports.values() for s in report["scores"])
    ]
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
    metrics = [(key, title) for key, title in METRICS if key in next(iter(models.values()))]
    header = ["model", "width", "parameters", "steps", *(title for _, title in metrics)]
    rows = [
        [
            label,
            m["net"].get("width", 1.0),
            f"{m['parameters'] / 1e6:.2f} M",
            m["steps"],
            *(m[key] for key, _ in metrics),
        ]
        for label, m in models.items()
    ]
    styles = list(next(iter(models.values()))["per_style_total"])
    per_style = [
        [style, *(m["per_style_total"][style] for m in models.values())] for style in styles
    ]
    return "\n".join(
        [
            markdown_table(header, rows),
            "",
            "Total loss per style (mean over the photos):",
            "",
            markdown_table(["style", *models], per_style),
            "",
        ]
    )
