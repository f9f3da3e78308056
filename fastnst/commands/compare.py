"""Compare trained models side by side from their ``fastnst evaluate`` reports.

Each report must have scored the same photos and styles at the same sizes with the same
loss settings (train the variants with the same command, evaluate them with the same
flags); reports whose losses do not compare are refused. Prints a Markdown table of the
means (total, style and content loss, SSIM, MSE, seconds per image) and each style's total
loss per model, and writes it with a JSON copy.

    fastnst compare full=docs/quality/evaluation.json \\
        slim=docs/quality/slim/evaluation.json lite=docs/quality/lite/evaluation.json \\
        --out docs/quality/variants.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fastnst.errors import UserError, run_report_tool
from fastnst.evaluation.compare import compare_reports, comparison_markdown
from fastnst.evaluation.report import write_json, write_text

REPORT_KEYS = {"scores", "per_style", "model_info", "size"}


def read_reports(specs: list[str]) -> dict[str, dict[str, Any]]:
    """``label=path`` (or a bare path, labelled by its folder) → the parsed report."""
    reports = {}
    for spec in specs:
        label, sep, path_text = spec.partition("=")
        path = Path(path_text if sep else spec)
        label = label if sep else path.parent.name
        if label in reports:
            raise UserError(f"two reports are labelled {label!r}: name them label=path")
        try:
            reports[label] = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"no such report: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{path} is not an evaluation report (not JSON)") from None
        report = reports[label]
        if not isinstance(report, dict) or not report.keys() >= REPORT_KEYS:
            raise UserError(f"{path} is not a fastnst evaluate report")
    return reports


def run(args: argparse.Namespace) -> Path:
    try:
        comparison = compare_reports(read_reports(args.reports))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    table = comparison_markdown(comparison)
    print(table)
    out = Path(args.out)
    write_text(out, f"Written by `{args.command}`.\n\n{table}")
    write_json(out.with_suffix(".json"), {"command": args.command, **comparison})
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reports", nargs="+", help="evaluation.json files, as label=path")
    parser.add_argument(
        "--out",
        default="outputs/compare_models.md",
        help="Markdown file to write (and a .json beside it)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_report_tool(build_parser(), run, argv)
