"""tools/glue_parts.py: the judge's error split between glued and repainted pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import REPO, load_tool, panning_frames


def test_the_parts_add_up_to_the_whole_and_follow_the_mask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(REPO / "tools"))  # it imports its sibling scripts
    tool = load_tool("glue_parts")
    frames = panning_frames(4, 48, 64)
    shown = frames + 0.1 * torch.rand(frames.shape, generator=torch.Generator().manual_seed(0))
    left = np.zeros((48, 64), bool)
    left[:, :32] = True
    rows = tool.error_parts(frames, shown, [left] * 4)
    everything = tool.error_parts(frames, shown, [np.ones((48, 64), bool)] * 4)
    assert rows.shape == (3, 4)
    np.testing.assert_allclose(rows[:, 0], 0.5)  # half repainted
    np.testing.assert_allclose(rows[:, 1] + rows[:, 2], everything[:, 1], rtol=1e-5)
    assert (rows[:, 1] > 0).all() and (rows[:, 2] > 0).all()
    assert everything[:, 2] == pytest.approx(0)
    # The input shown as it is: its error is the floor, all of it on kept pixels.
    itself = tool.error_parts(frames, frames, [np.ones((48, 64), bool)] * 4)
    np.testing.assert_allclose(itself[:, 1], itself[:, 3], rtol=1e-5)
