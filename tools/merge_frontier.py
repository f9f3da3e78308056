"""One flicker-against-style frontier from several ``fastnst eval-video --judge --json`` runs.

On two CPU cores each model is judged in its own run as it finishes training; this puts
their rows on one frontier (table, plot, JSON) as ``eval-video --frontier`` would, after
checking that every run judged the same frames the same way.

    python tools/merge_frontier.py docs/video/recipe_*_cockatoo.json ... \
        --reference v1 --label classics_v1=v1 --drop classics --target 2 10 \
        --plot docs/video/f.png --json docs/video/f.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastnst.evaluation.frontier import (
    FrontierPoint,
    Target,
    build_frontier,
    frontier_json,
    print_frontier,
    save_frontier_plot,
)
from fastnst.files import atomic_write

SAME_SETTINGS = ("video", "frames", "size", "frame_step", "flow", "style")


def relabel(source: str, labels: dict[str, str]) -> str:
    """The label of the longest key that is part of ``source`` (so ``rec_v4sw2_512`` is not
    taken for ``rec_v4sw2`` whatever the order given); the source itself otherwise."""
    matching = [key for key in labels if key in source]
    return labels[max(matching, key=len)] if matching else source


def merge_points(
    runs: list[dict[str, Any]], labels: dict[str, str], drop: frozenset[str] = frozenset()
) -> list[FrontierPoint]:
    """Every judged model row of ``runs`` as a point (a source seen twice is kept once),
    but those whose model is in ``drop`` (a bundled name judged when it meant another
    version)."""
    settings = [{key: run.get(key) for key in SAME_SETTINGS} for run in runs]
    if any(s != settings[0] for s in settings):
        raise ValueError(f"the runs judged different frames: {settings}")
    points: dict[tuple[str, float, float, float, str], FrontierPoint] = {}
    for run in runs:
        for row in run["results"]:
            if "model" not in row or row.get("style_distance") is None or row["model"] in drop:
                continue
            model = relabel(row["model"], labels)
            smooth = float(row.get("input_smooth") or 0.0)
            strength = float(row.get("strength", 1.0))
            key = (model, smooth, strength, float(row["blend"]), row["blend_kind"])
            points.setdefault(key, FrontierPoint.from_row(row, model))
    return list(points.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval-video --judge --json files")
    parser.add_argument("--reference", required=True, help="part of the reference's label")
    parser.add_argument("--label", action="append", default=[], metavar="PART=LABEL")
    parser.add_argument("--drop", action="append", default=[], metavar="MODEL")
    parser.add_argument("--target", nargs=2, type=float, metavar=("X_FLOOR", "STYLE_PCT"))
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        labels = dict(item.split("=", 1) for item in args.label)
        runs = [json.loads(path.read_text()) for path in args.runs]
        points = merge_points(runs, labels, frozenset(args.drop))
        target = Target(*args.target) if args.target else None
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    matches = [i for i, p in enumerate(points) if args.reference in p.source and not p.blend]
    if not matches:
        print(f"error: no per-frame source matches --reference {args.reference}", file=sys.stderr)
        return 2
    reference = points[matches[0]]
    points = build_frontier(points, matches[0], target, "style_distance")
    print_frontier(points, reference.source, target, "style_distance")
    first = runs[0]
    if args.plot:
        title = f"{Path(first['video']).name}, {first['frames']} frames, style {first['style']}"
        style = reference.style_distance or 0.0
        save_frontier_plot(args.plot, points, title, style, target, "style_distance")
    if args.json:
        merged = {key: first.get(key) for key in SAME_SETTINGS}
        merged.update(runs=[str(p) for p in args.runs], frontier=frontier_json(points))
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(merged, indent=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
