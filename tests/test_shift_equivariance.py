"""tools/shift_equivariance.py: a painting that follows the photo scores 0 at every move;
one tied to a 4-px grid scores at 1-3 px and not at 4."""

from __future__ import annotations

import torch

from conftest import load_tool


def grid_painter(photo: torch.Tensor) -> torch.Tensor:
    """Strokes on the image's own 4-px grid (counted from its corner), whatever the photo."""
    rows = torch.arange(photo.shape[-2])[:, None]
    cols = torch.arange(photo.shape[-1])[None, :]
    return photo + 0.3 * ((rows % 4 == 0) | (cols % 4 == 0)).float()


def test_following_scores_zero_and_a_grid_scores_off_the_lattice_only() -> None:
    tool = load_tool("shift_equivariance")
    photos = [torch.rand(1, 3, 60, 72, generator=torch.Generator().manual_seed(0))]
    follows = tool.measure(lambda photo: photo.pow(2), photos, [1, 2, 3, 4])
    assert max(follows["shifts"].values()) < 1e-12
    assert follows["lattice"] < 1e-9
    assert follows["moved_4"] > 0.05  # the photo itself changes when moved
    grid = tool.measure(grid_painter, photos, [1, 2, 3, 4])
    assert min(grid["shifts"][s] for s in (1, 2, 3)) > 0.01
    assert grid["shifts"][4] < 1e-12
    assert grid["lattice"] > 0.05
