"""The warping error of Lai et al. 2018 on videos whose motion is known."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastnst.video.metrics import masked_warp_error, warping_error, warping_errors
from fastnst.video.warp import warp

pytest.importorskip("cv2")


def panning_video(frames: int = 5, step: int = 2, h: int = 64, w: int = 80) -> torch.Tensor:
    """A camera panning right by ``step`` whole pixels per frame over a smooth texture."""
    g = torch.Generator().manual_seed(1)
    coarse = torch.rand(1, 3, h // 6, (w + step * frames) // 6, generator=g)
    scene = F.interpolate(coarse, size=(h, w + step * frames), mode="bicubic").clamp(0, 1)[0]
    return torch.stack([scene[:, :, t * step : t * step + w] for t in range(frames)])


def test_formula_by_hand() -> None:
    previous = torch.zeros(1, 3, 2, 2)
    current = torch.zeros(1, 3, 2, 2)
    current[0, :, 0, 0] = torch.tensor([0.1, 0.2, 0.2])  # ‖·‖² = 0.09
    current[0, 0, 1, 1] = 0.5  # ‖·‖² = 0.25, but masked out
    mask = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    error = masked_warp_error(current, previous, torch.zeros(1, 2, 2, 2), mask)
    assert error.item() == pytest.approx(0.09 / 3)


def test_a_still_video_and_its_copy_have_no_error() -> None:
    still = torch.rand(1, 3, 32, 40).expand(4, -1, -1, -1).contiguous()
    result = warping_error(still, still)
    assert result.mean == pytest.approx(0, abs=1e-9) and len(result.per_pair) == 3


def test_input_floor_is_near_zero_and_independent_noise_is_measured() -> None:
    video = panning_video()
    floor = warping_error(video, video)
    assert floor.mean < 2e-4
    sigma = 0.05
    noisy = video + sigma * torch.randn(video.shape, generator=torch.Generator().manual_seed(0))
    noise = warping_error(video, noisy)
    # O_t − W(O_{t−1}) holds two independent noise draws per channel: 3 · 2σ² expected;
    # the estimated flow is a whole 2 px shift, so warping does not blur the noise.
    assert noise.mean == pytest.approx(6 * sigma**2, rel=0.15)
    assert noise.mean == pytest.approx(sum(noise.per_pair) / len(noise.per_pair))


def test_flicker_scores_worse_than_a_stable_style() -> None:
    video = panning_video()
    stable = 1 - video  # any per-pixel function of the input moves with it
    flicker = stable.clone()
    flicker[1::2] = (flicker[1::2] * 0.8).clamp(0, 1)
    stable_error, flicker_error = warping_errors(video, [stable, flicker])
    assert stable_error.mean < 2e-4
    assert flicker_error.mean > 20 * stable_error.mean


def test_flow_comes_from_the_input_not_the_output() -> None:
    video = panning_video()
    # A still output of a moving input flickers by the input's motion.
    still = video[:1].expand_as(video).contiguous()
    assert warping_error(video, still).mean > 10 * warping_error(still, still).mean + 1e-3


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        warping_error(torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 18))
    with pytest.raises(ValueError):
        warping_error(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))


def test_warp_of_panning_frames_lines_them_up() -> None:
    video = panning_video(frames=2)
    flow = torch.zeros(1, 2, *video.shape[-2:])
    flow[:, 0] = 2.0
    assert torch.allclose(warp(video[:1], flow)[..., :-2], video[1:, ..., :-2], atol=1e-5)
