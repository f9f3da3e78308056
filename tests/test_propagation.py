"""``--temporal-propagate``: a key frame's output carried along the flow. Strokes move with
the picture (the same strokes, not an average of several frames' strokes), newly visible
regions and cuts take the fresh frame, and a new key comes every N frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_temporal_blend import FRAMES, SHIFT, _clip, _flicker

from fastnst.infer.temporal_blend import Propagation, TemporalBlend

pytest.importorskip("cv2")


def _residual(outputs: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return (outputs - clean)[:, :, 8:-8, 8:-8]


def test_strokes_travel_with_the_picture() -> None:
    """``flicker`` has strokes painted afresh on every frame (independent noise): what a
    per-frame network's flicker looks like."""
    frames, clean, flicker = _clip()
    out = Propagation(0.9, flow_size=96, every=100)(frames, flicker)
    assert torch.equal(out[0], flicker[0])  # the first frame is the key itself
    # Far less change between frames than the per-frame strokes or the recursive blend.
    blended = TemporalBlend(0.6, flow_size=96)(frames, flicker)
    assert _flicker(out) < 0.3 * _flicker(flicker)
    assert _flicker(out) < 0.6 * _flicker(blended)
    # The strokes of frame t are the key's strokes moved by the pan (t * SHIFT px left).
    last = FRAMES - 1
    moved = (flicker[0] - clean[0])[:, 8:-8, 8 + last * SHIFT : 96 - 8]
    now = (out[last] - clean[last])[:, 8:-8, 8 : 96 - 8 - last * SHIFT]
    fresh = (flicker[last] - clean[last])[:, 8:-8, 8 : 96 - 8 - last * SHIFT]
    correlation = np.corrcoef(moved.flatten(), now.flatten())[0, 1]
    assert correlation > 0.6, correlation
    assert abs(np.corrcoef(moved.flatten(), fresh.flatten())[0, 1]) < 0.1  # not by chance


def test_strokes_keep_their_contrast_where_the_blend_averages_them_away() -> None:
    frames, clean, flicker = _clip()
    out = Propagation(0.9, flow_size=96, every=100)(frames, flicker)
    blended = TemporalBlend(0.6, flow_size=96)(frames, flicker)
    painted = float(_residual(flicker, clean)[1:].std())
    assert float(_residual(out, clean)[1:].std()) > 0.75 * painted
    assert float(_residual(blended, clean)[1:].std()) < 0.75 * painted


def test_a_cut_and_the_key_interval_start_afresh() -> None:
    frames, _, flicker = _clip()
    propagate = Propagation(0.9, flow_size=96, every=2)
    propagate(frames[:1], flicker[:1])
    ages = []
    for t in range(1, FRAMES):
        propagate(frames[t : t + 1], flicker[t : t + 1])
        ages.append(propagate.age)
    assert ages == [1, 0, 1, 0, 1]  # a new key every second frame
    # A cut (an unrelated picture): nothing is trusted, the fresh frame is shown as it is.
    cut = torch.rand(1, 3, *frames.shape[-2:], generator=torch.Generator().manual_seed(3))
    shown = propagate(cut, 1 - cut)
    assert float((shown - (1 - cut)).abs().mean()) < 0.02
    assert propagate.age == 0


def test_zero_passes_through_and_range_is_checked() -> None:
    frames, _, flicker = _clip()
    assert torch.equal(Propagation(0.0)(frames, flicker), flicker)
    numpy_out = Propagation(0.9, flow_size=96)(frames.numpy(), flicker.numpy())
    assert isinstance(numpy_out, np.ndarray) and numpy_out.shape == tuple(flicker.shape)
    with pytest.raises(ValueError, match="must be in"):
        Propagation(1.5)
