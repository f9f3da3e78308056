"""``fastnst eval-video --strip``: every source's frames and its flicker map, one picture."""

from __future__ import annotations

from pathlib import Path

import torch

from fastnst.evaluation.report import pyplot
from fastnst.files import atomic_write
from fastnst.video.flow import flow_pair
from fastnst.video.metrics import flicker_map


def save_strip(
    path: Path, frames: torch.Tensor, names: list[str], outputs: list[torch.Tensor], method: str
) -> None:
    """One row per source: its first, middle and last frames and its flicker map between the
    two middle frames (|O_t − W(O_{t−1})|, hot = flicker; blue = flow not trusted)."""
    last, middle = frames.shape[0] - 1, max(1, frames.shape[0] // 2)
    flow, mask = flow_pair(frames[middle - 1 : middle], frames[middle : middle + 1], method)
    plt = pyplot()
    h, w = frames.shape[-2:]
    cell = 2.4  # inches per column
    fig, axes = plt.subplots(
        len(outputs), 4, figsize=(4 * cell, len(outputs) * cell * h / w + 0.3), squeeze=False
    )
    titles = ["first frame", f"frame {middle}", f"frame {last}", f"flicker {middle - 1}->{middle}"]
    for row, (name, out) in enumerate(zip(names, outputs, strict=True)):
        out = out.float()
        heat = flicker_map(out[middle : middle + 1], out[middle - 1 : middle], flow, mask)
        for col, image in enumerate([out[0], out[middle], out[last], heat[0]]):
            ax = axes[row][col]
            ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=8)
            if col == 0:
                ax.set_ylabel(Path(name).name.replace(" + ", "\n+ "), fontsize=7)
    fig.tight_layout(pad=0.2)
    atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="jpg", dpi=100, pil_kwargs={"quality": 72})
    )
    plt.close(fig)
