"""``--shift-average``: remove the fine hatching a network paints on its own pixel grid.

The network's two stride-2 convolutions and two x2 upsamplings fix a 4-pixel lattice, and
the residual patterns of the bundled models sit exactly on it: mean-spectrum peaks at
(±1/4, ±1/4), (0, ±1/4), (±1/4, 0) and (0, 1/2) cycles/pixel (docs/QUALITY.md, "By eye at
512 px"). The strokes follow the photo; the lattice does not. So the photo is stylized four
times, moved by each of ``SHIFTS`` against the grid (reflect-padded, the output cropped
back), and the four outputs are averaged: the strokes line up again and the lattice's
phases cancel. The four shifts are a subgroup of Z4 x Z4 chosen so that every lattice
frequency k/4 cancels exactly except (±1/4, 1/2) and (1/2, 0), where none of the models has
a peak. It costs four runs of the network.

NumPy only (both backends' interface), so the onnxruntime path stays free of torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# (rows, columns) moves of the photo against the network's 4-pixel grid
SHIFTS = ((0, 0), (2, 1), (0, 2), (2, 3))
LATTICE = 4


def _moved(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``array`` (``[..., H, W]``) reflect-padded so that its pixel (0, 0) lands at (dy, dx)
    of a ``[H + 4, W + 4]`` canvas: the same size for every shift."""
    widths = [(0, 0)] * (array.ndim - 2) + [(dy, LATTICE - dy), (dx, LATTICE - dx)]
    return np.pad(array, widths, mode="reflect")


class ShiftAveraged:
    """A stylizer (the NumPy interface of either backend) whose output is the mean of four
    runs on the photo moved by ``SHIFTS``. Everything else is the wrapped stylizer's."""

    # frames reach it as NumPy arrays: the video path keeps torch tensors only for this
    tensor_device = None

    def __init__(self, stylizer: Any) -> None:
        self.stylizer = stylizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stylizer, name)

    def __call__(
        self,
        images: np.ndarray,
        weights: np.ndarray,
        strength: float = 1.0,
        keep_color: bool = False,
        tile: int = 0,
    ) -> np.ndarray:
        """As the wrapped stylizer's call; per-pixel ``weights`` maps move with the photo.
        Strength and colour keeping act on each run; both are (nearly) linear in the output,
        so their mean is the mean output's."""

        def run(moved: np.ndarray, dy: int, dx: int) -> np.ndarray:
            rows = _moved(weights, dy, dx) if weights.ndim == 4 else weights
            return self.stylizer(moved, rows, strength, keep_color, tile)

        return _averaged(run, images)

    def guided(self, images: np.ndarray, weights: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """A recurrent model's guided frames, the guide moving with the photo."""

        def run(moved: np.ndarray, dy: int, dx: int) -> np.ndarray:
            return self.stylizer.guided(moved, weights, _moved(guide, dy, dx))

        return _averaged(run, images)


def _averaged(run: Callable[[np.ndarray, int, int], np.ndarray], images: np.ndarray) -> np.ndarray:
    """The mean of ``run(moved images, dy, dx)`` over ``SHIFTS``, each cropped back."""
    images = np.asarray(images, dtype=np.float32)
    height, width = images.shape[-2:]
    total = np.zeros(images.shape, dtype=np.float64)
    for dy, dx in SHIFTS:
        total += run(_moved(images, dy, dx), dy, dx)[..., dy : dy + height, dx : dx + width]
    return (total / len(SHIFTS)).astype(np.float32)
