"""Loss values on hand-checkable tensors; every loss returns (total, named parts)."""

from __future__ import annotations

import pytest
import torch

from fastnst.errors import UserError
from fastnst.losses import (
    PerceptualLoss,
    content_loss,
    covariance_matrix,
    gram_matrix,
    style_loss,
    total_variation_loss,
)


def test_gram_by_hand() -> None:
    # C=2, H=1, W=2: f = [[1, 2], [3, 4]] -> f f^T = [[5, 11], [11, 25]], / (C*H*W = 4)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    assert torch.equal(gram_matrix(f), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))


def test_gram_is_fp32_under_bf16_autocast() -> None:
    f = torch.rand(1, 4, 8, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gram_matrix(f).dtype == torch.float32


def test_covariance_by_hand_is_the_gram_of_centred_features() -> None:
    # f = [[1, 2], [3, 4]]: each channel minus its mean is [-0.5, 0.5]; f f^T / 4 = 0.125.
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    assert torch.equal(covariance_matrix(f), torch.full((1, 2, 2), 0.125))
    g = torch.rand(3, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    centred = g - g.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(covariance_matrix(g), gram_matrix(centred), atol=1e-7)
    # The population covariance of the channels, with Gram's C*H*W normalisation (/ C).
    expected = torch.cov(g[1].reshape(5, -1), correction=0) / 5
    assert torch.allclose(covariance_matrix(g)[1], expected, atol=1e-6)
    assert not torch.allclose(covariance_matrix(g), gram_matrix(g), atol=1e-3)


def test_covariance_style_loss_ignores_a_constant_shift_gram_does_not() -> None:
    feats = torch.rand(2, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    shift = torch.tensor([0.5, -1.0, 2.0, 0.0]).view(1, 4, 1, 1)  # per-channel offsets
    one_hot = torch.tensor([[1.0], [1.0]])
    for stat, matrix in (("gram", gram_matrix), ("covariance", covariance_matrix)):
        targets = {"x": matrix(feats[:1])}
        same, _ = style_loss({"x": feats[:1]}, targets, {"x": 1.0}, one_hot[:1], style_stat=stat)
        shifted, _ = style_loss(
            {"x": feats[:1] + shift}, targets, {"x": 1.0}, one_hot[:1], style_stat=stat
        )
        assert same.item() == pytest.approx(0.0, abs=1e-12)
        if stat == "covariance":
            assert shifted.item() == pytest.approx(0.0, abs=1e-10)
        else:
            assert shifted.item() > 0.1
    with pytest.raises(ValueError, match="style statistic"):
        style_loss({"x": feats}, {"x": targets["x"]}, {"x": 1.0}, one_hot, style_stat="mean")


def test_content_loss_by_hand() -> None:
    a = {"x": torch.zeros(1, 1, 2, 2)}
    b = {"x": torch.tensor([[[[1.0, 1.0], [1.0, 3.0]]]])}
    total, parts = content_loss(a, b, {"x": 2.0})
    assert parts == {"content/x": torch.tensor(6.0)}  # 2 * mean(1, 1, 1, 9)
    assert total.item() == 6.0


def test_style_loss_picks_each_images_target_and_blends() -> None:
    feats = {"x": torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]]).repeat(2, 1, 1, 1)}
    g = gram_matrix(feats["x"][:1])[0]
    targets = {"x": torch.stack([g, g + 1.0])}  # style 0 matches exactly, style 1 is off by 1
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    total, parts = style_loss(feats, targets, {"x": 3.0}, one_hot)
    assert torch.isclose(total, torch.tensor(1.5))  # 3 * mean(0, 1)
    blend = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    total, _ = style_loss(feats, targets, {"x": 1.0}, blend)
    assert torch.isclose(total, torch.tensor(0.25))  # target off by 0.5 everywhere
    coeffs = torch.tensor([1.0, 10.0])
    total, _ = style_loss(feats, targets, {"x": 1.0}, one_hot, coeffs)
    assert torch.isclose(total, torch.tensor(5.0))  # (0 * 1 + 1 * 10) / 2


def test_total_variation_by_hand() -> None:
    image = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    total, parts = total_variation_loss(image)
    assert total.item() == 1.0 and "tv" in parts  # vertical 0, horizontal mean |1| = 1


@pytest.fixture(scope="module")
def perceptual() -> PerceptualLoss:
    torch.manual_seed(0)
    return PerceptualLoss(
        {"relu2_1": 1.0},
        {"relu1_1": 1.0, "relu2_1": 0.5},
        style_weight=2.0,
        tv_weight=0.1,
        vgg_weights="random",
    )


def test_style_target_of_a_set_is_the_mean_gram(perceptual: PerceptualLoss) -> None:
    a, b = torch.rand(3, 16, 16), torch.rand(3, 24, 20)
    perceptual.set_style_targets([[a, b], [a]])
    with torch.no_grad():
        ga = gram_matrix(perceptual.vgg(a[None])["relu1_1"])[0]
        gb = gram_matrix(perceptual.vgg(b[None])["relu1_1"])[0]
    targets = perceptual.target_grams()["relu1_1"]
    assert targets.shape == (2, 64, 64)
    assert torch.allclose(targets[0], (ga + gb) / 2, atol=1e-6)
    assert torch.allclose(targets[1], ga, atol=1e-6)
    assert perceptual.state_dict() == {}  # targets are derived data, never saved


def test_covariance_targets_and_loss_of_the_perceptual_module() -> None:
    torch.manual_seed(0)
    loss = PerceptualLoss(
        {"relu1_1": 1.0}, {"relu1_1": 1.0}, vgg_weights="random", style_stat="covariance"
    )
    a, b = torch.rand(3, 16, 16), torch.rand(3, 24, 20)
    loss.set_style_targets([[a, b]])
    with torch.no_grad():
        ca = covariance_matrix(loss.vgg(a[None])["relu1_1"])[0]
        cb = covariance_matrix(loss.vgg(b[None])["relu1_1"])[0]
    assert torch.allclose(loss.target_grams()["relu1_1"][0], (ca + cb) / 2, atol=1e-6)
    # The forward pass compares covariances too: none left for the style image itself.
    loss.set_style_targets([[a]])
    _, parts = loss(a[None], a[None], torch.ones(1, 1))
    assert parts["style"].item() == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(UserError, match="loss.style_stat must be one of gram, covariance"):
        PerceptualLoss({"relu1_1": 1.0}, {"relu1_1": 1.0}, vgg_weights="random", style_stat="Gram")


def test_perceptual_total_is_weighted_sum_of_parts(perceptual: PerceptualLoss) -> None:
    perceptual.set_style_targets([[torch.rand(3, 16, 16)], [torch.rand(3, 16, 16)]])
    content = torch.rand(2, 3, 20, 20)
    output = torch.rand(2, 3, 20, 20, requires_grad=True)
    total, parts = perceptual(output, content, torch.eye(2))
    expected = parts["content"] + 2.0 * parts["style"] + 0.1 * parts["tv"]
    assert torch.isclose(total, expected)
    assert torch.isclose(parts["style"], parts["style/relu1_1"] + parts["style/relu2_1"])
    total.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all()
    same, same_parts = perceptual(content, content, torch.eye(2))
    assert same_parts["content"].item() == 0.0


def test_style_loss_needs_targets() -> None:
    loss = PerceptualLoss({"relu1_1": 1.0}, {"relu1_1": 1.0}, vgg_weights="random")
    with pytest.raises(RuntimeError):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.ones(1, 1))
