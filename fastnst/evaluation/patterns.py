"""The report's painted-pattern section: per style, the periodic-pattern score of all its
outputs together (a pattern the network paints on every photo adds up in their mean
spectrum; :mod:`fastnst.artifacts`), with the photos' own score as the floor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fastnst.artifacts import TILE, periodic_score
from fastnst.evaluation.report import markdown_table


def pattern_scores(
    outputs: Mapping[str, Sequence[np.ndarray]], photos: Sequence[np.ndarray]
) -> dict[str, Any] | None:
    """``{"photos": …, "styles": {name: …}, "mean": …}`` or None when the photos are too small
    for one spectrum tile (:data:`fastnst.artifacts.TILE` px on their short side)."""
    if not photos or min(min(p.shape[-2:]) for p in photos) < TILE:
        return None
    styles = {name: periodic_score(images).to_dict() for name, images in outputs.items()}
    mean = {key: float(np.mean([s[key] for s in styles.values()])) for key in ("periodic", "peak")}
    return {"photos": periodic_score(photos).to_dict(), "styles": styles, "mean": mean}


def pattern_section(patterns: Mapping[str, Any] | None) -> str:
    if patterns is None:
        return (
            f"## Painted patterns\n\nNot measured: the photos need a short side of {TILE} px "
            "(raise --size).\n"
        )
    rows = [[name, s["periodic"], s["peak"], s["tiles"]] for name, s in patterns["styles"].items()]
    rows.append(["mean", patterns["mean"]["periodic"], patterns["mean"]["peak"], ""])
    floor = patterns["photos"]
    rows.append(["(the photos)", floor["periodic"], floor["peak"], floor["tiles"]])
    return "\n".join(
        [
            "## Painted patterns",
            "",
            "Periodic-pattern score of each style's outputs together: the share of their mean "
            f"{TILE}-px tile spectrum's energy in sharp peaks (bins over 3x their 5x5 "
            "neighbourhood's median), and the sharpest peak's ratio. A pattern painted on every "
            "photo (hatching, stripes) raises both; the photos' own values are the floor.",
            "",
            markdown_table(["style", "periodic", "peak", "tiles"], rows),
            "",
        ]
    )
