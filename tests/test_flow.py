"""Flow, warping and the Sundaram et al. masks on synthetic motion whose flow is known."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastnst.video.flow import estimate_flow, flow_pair
from fastnst.video.masks import consistency_mask, motion_boundary_mask, occlusion_mask
from fastnst.video.warp import downscale_flow, inside_mask, warp


def constant_flow(dx: float, dy: float, h: int = 16, w: int = 20) -> torch.Tensor:
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random colour texture (trackable by any flow method)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 6, w // 6, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_whole_pixel_flow_moves_an_image_exactly() -> None:
    image = torch.rand(1, 3, 16, 20)
    moved = warp(image, constant_flow(3, -2))
    # out(y, x) = image(y - 2, x + 3)
    assert torch.allclose(moved[..., 2:, :-3], image[..., :-2, 3:], atol=1e-5)


def test_fractional_flow_interpolates_linearly() -> None:
    ramp = torch.arange(20.0).view(1, 1, 1, 20).expand(1, 1, 16, 20).contiguous()
    moved = warp(ramp, constant_flow(0.25, 0))
    assert torch.allclose(moved[..., :-1], ramp[..., :-1] + 0.25, atol=1e-5)


def test_inside_mask_marks_pixels_that_leave_the_frame() -> None:
    mask = inside_mask(constant_flow(3, 0))
    assert mask[..., :-3].eq(1).all() and mask[..., -3:].eq(0).all()


def test_occlusion_threshold_is_sundaram_et_al() -> None:
    backward = torch.zeros(1, 2, 8, 8)
    # |w~ + w^|^2 = c^2 against 0.01 c^2 + 0.5: occluded from c^2 > 0.5 / 0.99.
    assert occlusion_mask(backward, constant_flow(0.70, 0, 8, 8)).sum() == 0
    assert occlusion_mask(backward, constant_flow(0.72, 0, 8, 8)).eq(1).all()
    # Large consistent motion is not occluded; the 1% relative slack allows a larger error.
    assert occlusion_mask(constant_flow(-30, 0, 8, 8), constant_flow(30.5, 0, 8, 8)).sum() == 0


def test_occlusion_flags_only_where_forward_and_backward_disagree() -> None:
    backward = constant_flow(-2, 0)
    forward = constant_flow(2, 0)
    forward[..., :, 10:] = -3.0  # the region that forward flow maps elsewhere
    occluded = occlusion_mask(backward, forward)
    # w~(p) = forward(p - 2): inconsistent where p - 2 >= 10 (bilinear blend at the edge).
    assert occluded[..., :, :11].sum() == 0
    assert occluded[..., :, 13:].eq(1).all()


def test_motion_boundary_threshold_and_location() -> None:
    ramp = torch.arange(16.0).view(1, 1, 16).expand(1, 16, 16)
    gentle = torch.cat([0.04 * ramp, torch.zeros_like(ramp)]).unsqueeze(0)  # |grad|^2 = 0.0016
    steep = torch.cat([0.05 * ramp, torch.zeros_like(ramp)]).unsqueeze(0)  # 0.0025
    assert motion_boundary_mask(gentle).sum() == 0
    assert motion_boundary_mask(steep)[..., :4].eq(1).all()  # small |w|: 0.0025 > 0.002
    step = constant_flow(0, 0, 16, 16)
    step[:, 0, :, 8:] = 5.0  # an object moving right over a still background
    boundary = motion_boundary_mask(step)[0, 0]
    assert boundary[:, 7:9].eq(1).all()
    assert boundary[:, :7].sum() == 0 and boundary[:, 9:].sum() == 0


def test_consistency_mask_combines_all_three() -> None:
    backward, forward = constant_flow(-3, 0), constant_flow(3, 0)
    mask = consistency_mask(backward, forward)
    assert mask[..., 3:].eq(1).all() and mask[..., :3].eq(0).all()


def test_downscaled_flow_scales_its_vectors() -> None:
    small = downscale_flow(constant_flow(8, -4, 32, 32), (8, 8))
    assert small.shape == (1, 2, 8, 8)
    assert torch.allclose(small[:, 0], torch.full((1, 8, 8), 8 * 7 / 31), atol=1e-4)
    assert torch.allclose(small[:, 1], torch.full((1, 8, 8), -4 * 7 / 31), atol=1e-4)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_estimated_flow_recovers_a_known_shift(method: str) -> None:
    pytest.importorskip("cv2")
    big = texture(120, 140)
    dx, dy = 3, -2
    previous = big[..., 10:106, 10:122]
    current = big[..., 10 + dy : 106 + dy, 10 + dx : 122 + dx]  # current(p) = previous(p + d)
    flow = estimate_flow(current, previous, method)
    interior = flow[..., 8:-8, 8:-8]
    assert abs(interior[:, 0].median().item() - dx) < 0.25
    assert abs(interior[:, 1].median().item() - dy) < 0.25
    back, mask = flow_pair(previous, current, method)
    assert mask[..., 8:-8, 8:-8].mean() > 0.9
    assert mask[..., :, -2:].sum() == 0  # those pixels came from outside the previous frame


def test_unknown_flow_method_is_a_user_error() -> None:
    from fastnst.errors import UserError

    frame = torch.rand(1, 3, 16, 16)
    with pytest.raises(UserError, match="unknown flow method"):
        estimate_flow(frame, frame, "raft")
