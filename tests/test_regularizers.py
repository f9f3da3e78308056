"""Compound regularisation: zero for a shift-equivariant map, positive for a grid-locked one."""

from __future__ import annotations

import pytest
import torch

from fastnst.errors import UserError
from fastnst.regularizers import CompoundSettings, compound_loss, random_small_motion


def test_random_motion_is_a_whole_pixel_shift_never_zero() -> None:
    gen = torch.Generator().manual_seed(0)
    flow = random_small_motion(16, (20, 24), CompoundSettings(max_shift=2), generator=gen)
    assert flow.shape == (16, 2, 20, 24)
    per_image = flow.flatten(2)
    assert torch.equal(per_image, per_image[..., :1].expand_as(per_image))  # uniform shift
    shifts = per_image[..., 0]
    assert torch.equal(shifts, shifts.round()) and shifts.abs().max() <= 2
    assert (shifts.abs().sum(1) > 0).all()


def test_equivariant_map_costs_nothing_a_grid_pattern_does() -> None:
    settings = CompoundSettings(weight=1.0, max_shift=3, noise=0.0)
    images = torch.rand(4, 3, 32, 32)
    mix = torch.ones(4, 1)

    def pointwise(x: torch.Tensor, _mix: torch.Tensor) -> torch.Tensor:
        return x.pow(2)  # commutes with any shift

    def grid_locked(x: torch.Tensor, _mix: torch.Tensor) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
        return x * 0.5 + 0.25 * ((xs + ys) % 4 < 2).float()  # a period-4 hatch on the grid

    gen = torch.Generator().manual_seed(1)
    clean, _ = compound_loss(pointwise, images, mix, pointwise(images, mix), settings, gen)
    locked, parts = compound_loss(grid_locked, images, mix, grid_locked(images, mix), settings, gen)
    assert clean.item() < 1e-10
    assert locked.item() > 1e-3
    assert set(parts) == {"compound"}


def test_gradients_reach_the_network() -> None:
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    images = torch.rand(2, 3, 16, 16)
    settings = CompoundSettings(weight=1.0, noise=0.02)

    def net(x: torch.Tensor, _mix: torch.Tensor) -> torch.Tensor:
        return conv(x)

    loss, _ = compound_loss(net, images, torch.ones(2, 1), net(images, None), settings)
    loss.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_settings_from_loss_config_and_bad_values() -> None:
    loss = {"content_weight": 1.5, "compound_weight": 20.0, "compound_noise": 0.0}
    assert CompoundSettings.from_loss(loss) == CompoundSettings(weight=20.0, noise=0.0)
    with pytest.raises(UserError, match="compound_weight"):
        CompoundSettings(weight=float("nan"))
    with pytest.raises(UserError, match="compound_max_shift"):
        CompoundSettings(max_shift=-1)
