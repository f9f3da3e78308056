"""Writing reports: Markdown tables, JSON and text files written atomically, and figures of
thumbnails. Every evaluation command writes through these, so nothing half-written is left."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from fastnst.files import atomic_write
from fastnst.images import center_square


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats get 4 significant digits."""

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically, so an interrupted evaluation never leaves half a JSON file."""
    text = json.dumps(data, indent=2, default=_jsonable)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the file-only Agg backend, imported on first use: only the
    report figures need it, not the metrics (``fastnst compare`` runs on core dependencies)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    fig.subplots_adjust(
        left=0, right=1, bottom=0, top=1 - 0.3 / (rows * inches + 0.3), wspace=0.02, hspace=0.02
    )

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="jpg", dpi=100, pil_kwargs={"quality": 85})

    atomic_write(path, write)
    plt.close(fig)
