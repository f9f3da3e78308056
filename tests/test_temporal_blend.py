"""Flow-guided smoothing at inference: less flicker than per-frame output, no ghosts on
motion unlike the plain blend of consecutive outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastnst.infer.temporal_blend import TemporalBlend

pytest.importorskip("cv2")

SHIFT, FRAMES = 4, 6


def _scene(rng: torch.Generator) -> torch.Tensor:
    """A smooth random texture wider than the frames, so frames can slide across it."""
    coarse = torch.rand(1, 3, 20, 40, generator=rng)
    return F.interpolate(coarse, size=(80, 160), mode="bicubic", align_corners=False).clamp(0, 1)


def _clip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames panning right by SHIFT px, their clean "stylization" and a flickering one."""
    rng = torch.Generator().manual_seed(0)
    scene = _scene(rng)
    frames = torch.cat([scene[..., :, SHIFT * t : SHIFT * t + 96] for t in range(FRAMES)])
    clean = 1 - frames
    flicker = (clean + 0.08 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
    return frames, clean, flicker


def _run(blend: TemporalBlend, frames: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """In batches of two, as the video pipeline calls it."""
    return torch.cat([blend(frames[i : i + 2], stylized[i : i + 2]) for i in range(0, FRAMES, 2)])


def _flicker(outputs: torch.Tensor) -> float:
    """Mean change between consecutive outputs after undoing the known pan (interior only)."""
    now = outputs[1:, :, 8:-8, 8 : 96 - SHIFT - 8]
    before = outputs[:-1, :, 8:-8, 8 + SHIFT : 96 - 8]
    return float((now - before).abs().mean())


def _error(outputs: torch.Tensor, clean: torch.Tensor) -> float:
    return float((outputs - clean)[1:, :, 8:-8, 8:-8].abs().mean())


def test_flow_blend_removes_flicker_without_ghosts() -> None:
    frames, clean, flicker = _clip()
    flow = _run(TemporalBlend(0.6, flow_size=96), frames, flicker)
    plain = _run(TemporalBlend(0.6, plain=True), frames, flicker)
    assert _flicker(flow) < 0.7 * _flicker(flicker)
    # The plain blend mixes in the previous frame where the scene was: a smeared picture.
    assert _error(flow, clean) < 0.8 * _error(plain, clean)
    assert _error(flow, clean) < _error(flicker, clean)


def test_first_frame_and_zero_weight_pass_through() -> None:
    frames, _, flicker = _clip()
    assert torch.equal(TemporalBlend(0.0)(frames, flicker), flicker)
    first = TemporalBlend(0.5, flow_size=96)(frames[:1], flicker[:1])
    assert torch.equal(first, flicker[:1])


def test_weight_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        TemporalBlend(1.0)
