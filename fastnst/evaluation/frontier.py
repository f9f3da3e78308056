"""The flicker-against-style frontier of ``fastnst eval-video --frontier`` (issue 21).

Every scored source that has losses (a model per frame, a model with a blend) is one point:
its warping error as a multiple of the input's own (the floor) and its style loss. A point
is on the frontier (Pareto-optimal) when no other point is at least as steady and at least
as stylish and strictly better in one. Style is also given relative to a reference (the
first model per frame, by default), since the goal is stated that way: at most ``x`` times
the floor with style loss at most ``pct`` % above the reference's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastnst.errors import UserError
from fastnst.evaluation.report import pyplot
from fastnst.files import atomic_write


@dataclass(frozen=True)
class Target:
    """At most ``x_floor`` times the input's warping error, with style loss at most
    ``style_pct`` % above the reference's."""

    x_floor: float
    style_pct: float

    def __post_init__(self) -> None:
        if not self.x_floor > 0 or not self.style_pct >= 0:
            raise UserError(
                f"--target needs X_FLOOR > 0 and STYLE_PCT >= 0, got {self.x_floor} "
                f"{self.style_pct}"
            )


def how_shown(smooth: float, strength: float, blend_kind: str, blend: float) -> str:
    """What follows a model's name in a row: how its frames were shown (the input smoothing,
    a ``--strength`` other than 1, the blend)."""
    text = f" + input smooth {smooth:g}" if smooth else ""
    text += f" at strength {strength:g}" if strength != 1.0 else ""
    return text + (f" + {blend_kind} blend {blend:g}" if blend else "")


@dataclass
class FrontierPoint:
    """One source on the frontier; ``blend`` is 0 for the per-frame output, ``input_smooth``
    0 when the network saw the clip's own frames, ``strength`` 1 for the model's own
    strokes."""

    source: str
    model: str
    blend: float
    blend_kind: str  # "none", or one of the blend kinds ("detail", "flow", "plain", "glue")
    warping_error: float
    x_floor: float
    style_loss: float
    content_loss: float
    style_distance: float | None = None  # the independent judge's (``eval-video --judge``)
    content_distance: float | None = None
    style_vs_reference_pct: float = 0.0
    pareto: bool = False
    meets_target: bool | None = None
    target_excess: float | None = None
    input_smooth: float = 0.0
    strength: float = 1.0

    @classmethod
    def from_row(cls, row: dict[str, Any], model: str | None = None) -> FrontierPoint:
        """A model row of ``eval-video``'s results (its JSON), under ``model`` if given."""
        smooth, strength = row.get("input_smooth") or 0.0, row.get("strength", 1.0)
        shown = how_shown(smooth, strength, row["blend_kind"], row["blend"])
        return cls(
            source=model + shown if model else row["source"],
            model=model or row["model"],
            blend=row["blend"],
            blend_kind=row["blend_kind"],
            warping_error=row["warping_error"],
            x_floor=row["x_floor"],
            style_loss=row["style_loss"],
            content_loss=row["content_loss"],
            style_distance=row.get("style_distance"),
            content_distance=row.get("content_distance"),
            input_smooth=smooth,
            strength=strength,
        )


def pareto_flags(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (flicker, style) pairs, lower both better: which no other pair dominates."""
    return [
        not any(a <= x and b <= y and (a < x or b < y) for j, (a, b) in enumerate(points) if j != i)
        for i, (x, y) in enumerate(points)
    ]


def target_excess(point: FrontierPoint, target: Target) -> float:
    """How far a point misses the target, as the sum of its relative overshoots (0: met)."""
    flicker = max(0.0, point.x_floor / target.x_floor - 1)
    style = max(0.0, (100 + point.style_vs_reference_pct) / (100 + target.style_pct) - 1)
    return flicker + style


# What the style axis can be: the models' own style loss, or the independent judge's
# style distance (which compares models trained with different loss settings fairly).
MEASURES = {"style_loss": "style loss", "style_distance": "style distance"}


def style_of(point: FrontierPoint, measure: str) -> float:
    value = getattr(point, measure)
    if value is None:
        raise UserError(f"{point.source} has no {MEASURES[measure]}")
    return value


def build_frontier(
    points: list[FrontierPoint],
    reference: int = 0,
    target: Target | None = None,
    measure: str = "style_loss",
) -> list[FrontierPoint]:
    """Fill in style (``measure``) against ``points[reference]``, the Pareto flags and, with
    a target, which points meet it; sorted by style (the plot's reading order)."""
    if not points:
        return []
    base = style_of(points[reference], measure)
    for point in points:
        style = style_of(point, measure)
        point.style_vs_reference_pct = 100 * (style - base) / base if base else 0.0
    flags = pareto_flags([(p.x_floor, style_of(p, measure)) for p in points])
    for point, flag in zip(points, flags, strict=True):
        point.pareto = flag
        if target is not None:
            point.target_excess = target_excess(point, target)
            point.meets_target = point.target_excess == 0
    return sorted(points, key=lambda p: (style_of(p, measure), p.x_floor))


def print_frontier(
    points: list[FrontierPoint],
    reference: str,
    target: Target | None,
    measure: str = "style_loss",
) -> None:
    print(f"\nfrontier ({MEASURES[measure]} against {reference}; * = on the frontier):")
    goal = "" if target is None else f"{'target':>8}"
    print(f"{'x floor':>9}{MEASURES[measure]:>15}{'style %':>9}{'content':>9}{goal}    source")
    for p in points:
        mark = "*" if p.pareto else " "
        met = "" if p.meets_target is None else f"{'yes' if p.meets_target else 'no':>8}"
        content = p.content_distance if measure == "style_distance" else p.content_loss
        print(
            f"{p.x_floor:>9.2f}{style_of(p, measure):>15.4f}{p.style_vs_reference_pct:>+9.1f}"
            f"{content:>9.4f}{met}  {mark} {p.source}"
        )
    if target is not None:
        meeting = [p for p in points if p.meets_target]
        label = f"<= {target.x_floor:g}x the floor at <= +{target.style_pct:g}% style"
        if meeting:
            best = min(meeting, key=lambda p: (p.x_floor, style_of(p, measure)))
            print(f"target {label}: met by {len(meeting)}; steadiest: {best.source}")
        else:
            nearest = min(points, key=lambda p: p.target_excess or 0.0)
            print(
                f"target {label}: not met; nearest: {nearest.source} "
                f"({nearest.x_floor:.2f}x, {nearest.style_vs_reference_pct:+.1f}% style)"
            )


# A 7-pt label's box in points: about 4 pt a character, 9 pt a line.
LABEL_CHAR_WIDTH = 4.0
LABEL_HEIGHT = 9.0
# Where a label may sit against its point, in points (its box's lower left corner; a
# negative dx is measured from the box's right end): right and a little up first, then
# stepping down and up by a line; then the same on the left of the point.
LABEL_STEPS = [3.0] + [3.0 + sign * LABEL_HEIGHT * step for step in range(1, 6) for sign in (-1, 1)]
LABEL_OFFSETS = [(4.0, dy) for dy in LABEL_STEPS] + [(-4.0, dy) for dy in LABEL_STEPS]


def label_offsets(
    anchors: list[tuple[float, float]], widths: list[float], right_edge: float = float("inf")
) -> list[tuple[float, float]]:
    """For each anchor (display points) the offset of its label's lower left corner: the
    first of :data:`LABEL_OFFSETS` whose box (``widths`` wide) ends left of ``right_edge``
    (the axes') and overlaps no box placed before it; the first that fits if none is free."""
    placed: list[tuple[float, float, float, float]] = []
    chosen = []
    for (x, y), width in zip(anchors, widths, strict=True):
        offsets = [(dx if dx > 0 else dx - width, dy) for dx, dy in LABEL_OFFSETS]
        boxes = [(x + dx, y + dy, x + dx + width, y + dy + LABEL_HEIGHT) for dx, dy in offsets]
        fits = [i for i, box in enumerate(boxes) if box[2] <= right_edge] or [0]
        free = [
            i
            for i in fits
            if not any(
                boxes[i][0] < other[2]
                and other[0] < boxes[i][2]
                and boxes[i][1] < other[3]
                and other[1] < boxes[i][3]
                for other in placed
            )
        ]
        pick = (free or fits)[0]
        placed.append(boxes[pick])
        chosen.append(offsets[pick])
    return chosen


def save_frontier_plot(
    path: Path,
    points: list[FrontierPoint],
    title: str,
    reference_style: float,
    target: Target | None,
    measure: str = "style_loss",
) -> None:
    """Warping error × floor (log) against style loss: one colour per model, one marker
    shape per blend kind, frontier points ringed and joined by a staircase, the target as
    a shaded box (style up to ``reference_style`` plus its allowance)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    models = list(dict.fromkeys(p.model for p in points))
    colours = plt.get_cmap("tab10")
    shapes = {"none": "o", "detail": "D", "flow": "s", "plain": "^", "glue": "P"}
    names = {
        "none": "per frame",
        "detail": "blend keeping detail",
        "flow": "flow-guided average",
        "plain": "plain blend",
        "glue": "strokes glued along the flow",
    }
    labels: list[tuple[tuple[float, float], str]] = []
    for p in points:
        ax.scatter(
            style_of(p, measure),
            p.x_floor,
            marker=shapes[p.blend_kind],
            color=colours(models.index(p.model) % 10),
            edgecolors="black" if p.pareto else "none",
            s=50,
            zorder=3,
        )
        label = Path(p.model).name
        if p.input_smooth:
            label += f" smooth {p.input_smooth:g}"
        if p.strength != 1.0:
            label += f" strength {p.strength:g}"
        if p.blend_kind != "none":
            label += f" {p.blend_kind} {p.blend:g}"
        labels.append(((style_of(p, measure), p.x_floor), label))
    front = sorted((p for p in points if p.pareto), key=lambda p: style_of(p, measure))
    if len(front) > 1:
        ax.step(
            [style_of(p, measure) for p in front],
            [p.x_floor for p in front],
            where="post",
            color="grey",
            linewidth=1,
            zorder=2,
            label="frontier",
        )
    if target is not None:
        ax.fill_between(
            [0, reference_style * (1 + target.style_pct / 100)],
            1,
            target.x_floor,
            color="green",
            alpha=0.12,
            label=f"target: <= {target.x_floor:g}x, <= +{target.style_pct:g}% style",
        )
    for kind, shape in shapes.items():
        if any(p.blend_kind == kind for p in points):
            ax.scatter([], [], marker=shape, color="grey", label=names[kind])
    ax.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
    ax.set_yscale("log")
    ax.set_xlim(left=0)
    ax.set_xlabel(f"{MEASURES[measure]} (lower = closer to the style)")
    ax.set_ylabel("warping error / the input's own (log)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    fig.tight_layout()
    # Labels go on last, where the axes' scales are final: points in a cluster get their
    # labels stacked rather than printed over each other.
    to_points = 72 / fig.dpi
    anchors = [tuple(ax.transData.transform(xy) * to_points) for xy, _ in labels]
    widths = [LABEL_CHAR_WIDTH * len(text) for _, text in labels]
    right_edge = ax.get_window_extent().x1 * to_points
    offsets = label_offsets(anchors, widths, right_edge)
    for (xy, text), offset in zip(labels, offsets, strict=True):
        moved = offset[1] != LABEL_OFFSETS[0][1] or offset[0] < 0  # a thin line leads back
        line = {"arrowstyle": "-", "color": "grey", "linewidth": 0.4} if moved else None
        ax.annotate(
            text, xy, fontsize=7, xytext=offset, textcoords="offset points", arrowprops=line
        )
    suffix = path.suffix.lower().lstrip(".") or "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=suffix, dpi=110))
    plt.close(fig)


def frontier_json(points: list[FrontierPoint]) -> list[dict[str, Any]]:
    return [asdict(p) for p in points]
