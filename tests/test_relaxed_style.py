"""The relaxed style loss: warps drawn once, each output held to its nearest target."""

from __future__ import annotations

import pytest
import torch

from fastnst.errors import UserError
from fastnst.losses import PerceptualLoss, gram_matrix, style_loss
from fastnst.relaxed_style import nearest_targets, smooth_flows, warped_copies

LAYERS = {"relu1_1": 1.0, "relu2_1": 0.5}


def test_smooth_flows_are_bounded_smooth_and_seeded() -> None:
    flows = smooth_flows(4, (48, 64), 6.0, torch.Generator().manual_seed(0))
    again = smooth_flows(4, (48, 64), 6.0, torch.Generator().manual_seed(0))
    assert flows.shape == (4, 2, 48, 64)
    assert torch.equal(flows, again)
    assert flows.abs().max() <= 6.0 and flows.abs().max() > 1.0
    # Neighbours move together: no step between adjacent pixels above a pixel.
    assert (flows[..., 1:] - flows[..., :-1]).abs().max() < 1.0
    assert (flows[..., 1:, :] - flows[..., :-1, :]).abs().max() < 1.0


def test_warped_copies_move_pixels_without_blurring_them() -> None:
    image = torch.rand(3, 16, 16)
    still = warped_copies(image, torch.zeros(1, 2, 16, 16))
    assert torch.equal(still[0], image)
    shifted = torch.zeros(1, 2, 16, 16)
    shifted[:, 0] = 2.3  # pull each pixel from 2.3 px to its right: nearest takes 2
    moved = warped_copies(image, shifted)
    assert torch.equal(moved[0, :, :, :13], image[:, :, 2:15])


def test_nearest_targets_pick_each_images_closest_entry() -> None:
    torch.manual_seed(0)
    grams = {"a": torch.rand(3, 4, 4)}
    bank = {"a": torch.rand(2, 5, 4, 4)}  # 2 styles x (original + 4 warps)
    bank["a"][0, 3] = grams["a"][0]  # image 0 (style 0) matches style 0's warp 3
    bank["a"][1, 1] = grams["a"][2]  # image 2 (style 1) matches style 1's warp 1
    mix = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    targets = nearest_targets(grams, bank, {"a": 1.0}, mix)["a"]
    assert torch.equal(targets[0], grams["a"][0])
    assert torch.equal(targets[2], grams["a"][2])
    # A blend is held to the blend of one entry of each style, the nearest such blend.
    blends = torch.einsum("s,skcd->kcd", mix[1], bank["a"])
    best = (blends - grams["a"][1]).pow(2).mean((1, 2)).argmin()
    assert torch.allclose(targets[1], blends[best])


def test_relaxed_loss_is_at_most_the_plain_one_and_trains() -> None:
    styles = [[torch.rand(3, 32, 32)], [torch.rand(3, 40, 32)]]
    torch.manual_seed(0)
    plain = PerceptualLoss({"relu2_1": 1.0}, LAYERS, vgg_weights="random")
    torch.manual_seed(0)
    relaxed = PerceptualLoss(
        {"relu2_1": 1.0}, LAYERS, vgg_weights="random", relax_warps=4, relax_displacement=4.0
    )
    plain.set_style_targets(styles)
    relaxed.set_style_targets(styles)
    # Row 0 of the bank is the plain target; the other rows differ from it.
    bank = relaxed.style_relaxed_relu1_1
    assert bank.shape == (2, 5, 64, 64)
    assert torch.allclose(bank[:, 0], plain.target_grams()["relu1_1"], atol=1e-6)
    assert (bank[:, 1:] - bank[:, :1]).abs().amax(dim=(2, 3)).min() > 0
    output = torch.rand(2, 3, 24, 24, requires_grad=True)
    content, mix = torch.rand(2, 3, 24, 24), torch.eye(2)
    _, plain_parts = plain(output, content, mix)
    total, parts = relaxed(output, content, mix)
    assert parts["style"] < plain_parts["style"]
    # It is the plain loss against the chosen target, scaled by each image's coefficient.
    feats = relaxed.vgg(output)
    grams = {name: gram_matrix(feats[name]) for name in LAYERS}
    chosen = nearest_targets(
        grams, {n: getattr(relaxed, f"style_relaxed_{n}") for n in LAYERS}, LAYERS, mix
    )
    by_hand, _ = style_loss(feats, chosen, LAYERS, torch.eye(2), torch.ones(2))
    assert torch.isclose(parts["style"], by_hand)
    total.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0


def test_relax_settings_are_checked() -> None:
    with pytest.raises(UserError, match="loss.relax_warps"):
        PerceptualLoss({"relu1_1": 1.0}, LAYERS, vgg_weights="random", relax_warps=-1)
    with pytest.raises(UserError, match="relax_displacement"):
        PerceptualLoss(
            {"relu1_1": 1.0}, LAYERS, vgg_weights="random", relax_warps=2, relax_displacement=0.0
        )
