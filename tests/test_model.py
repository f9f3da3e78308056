"""TransformerNet and conditional instance norm: shapes, odd sizes, blending, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastnst.model import (
    ConditionalInstanceNorm2d,
    NetConfig,
    TransformerNet,
    binomial_blur,
    style_weights,
)
from fastnst.modelfile import blur_kernel


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    torch.manual_seed(0)
    model = TransformerNet(NetConfig(num_styles=3, width=0.25, num_residual=2))
    # Random CIN tables so that styles really differ (they start as identity).
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ConditionalInstanceNorm2d):
                module.gamma.normal_(1.0, 0.3)
                module.beta.normal_(0.0, 0.3)
    return model.eval()


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (17, 9), (64, 40), (1, 5), (3, 3)])
def test_any_size_comes_back_the_same_size(net: TransformerNet, size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size)
    out = net(x, torch.tensor([0, 2]))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1


def test_one_hot_blend_equals_index(net: TransformerNet) -> None:
    x = torch.rand(3, 3, 24, 30)
    idx = torch.tensor([2, 0, 1])
    by_index = net(x, idx)
    by_weights = net(x, F.one_hot(idx, 3).float())
    assert torch.equal(by_index, by_weights)


def test_styles_differ_and_blend_lies_between(net: TransformerNet) -> None:
    x = torch.rand(1, 3, 32, 32)
    a, b = net(x, 0), net(x, 1)
    assert (a - b).abs().mean() > 1e-3
    half = net(x, torch.tensor([0.5, 0.5, 0.0]))
    assert (half - a).abs().mean() < (b - a).abs().mean()
    assert (half - b).abs().mean() < (b - a).abs().mean()


def test_cin_blend_mixes_gamma_and_beta_linearly() -> None:
    norm = ConditionalInstanceNorm2d(4, num_styles=2)
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([[1.0] * 4, [3.0] * 4]))
        norm.beta.copy_(torch.tensor([[0.0] * 4, [2.0] * 4]))
    x = torch.randn(1, 4, 5, 5)
    normed = F.instance_norm(x)
    out = norm(x, torch.tensor([[0.25, 0.75]]))
    assert torch.allclose(out, normed * 2.5 + 1.5, atol=1e-6)


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(1)
    model = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    x = torch.rand(2, 3, 20, 28)
    out = model(x, torch.tensor([0, 1]))
    out.square().mean().backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


def test_width_multiplier_scales_channels() -> None:
    assert NetConfig(1).channels() == (32, 64, 128)
    assert NetConfig(1, width=0.5).channels() == (16, 32, 64)
    full = sum(p.numel() for p in TransformerNet(NetConfig(1)).parameters())
    slim = sum(p.numel() for p in TransformerNet(NetConfig(1, width=0.5)).parameters())
    assert 3.5 < full / slim < 4.5


def test_style_weights_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        style_weights(torch.tensor([3]), 1, 3)
    with pytest.raises(ValueError):
        style_weights(torch.rand(2, 4), 2, 3)
    assert style_weights(1, 2, 3).tolist() == [[0, 1, 0], [0, 1, 0]]


def test_bilinear_upsampling_keeps_sizes_and_changes_the_output() -> None:
    torch.manual_seed(0)
    nearest = TransformerNet(NetConfig(num_styles=2, width=0.25))
    bilinear = TransformerNet(NetConfig(num_styles=2, width=0.25, upsample="bilinear"))
    bilinear.load_state_dict(nearest.state_dict())  # same weights: only the resampling differs
    images = torch.rand(1, 3, 37, 50)
    a, b = nearest(images, 0), bilinear(images, 0)
    assert a.shape == b.shape == images.shape
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="upsample"):
        NetConfig(num_styles=2, upsample="cubic")


def test_binomial_blur_keeps_flat_areas_and_removes_the_finest_pattern() -> None:
    """The anti-aliasing low-pass: a constant passes unchanged, the Nyquist checkerboard (what a
    stride-2 conv would fold onto a flat area) is gone away from the border."""
    flat = torch.full((1, 2, 12, 12), 0.3)
    kernel = torch.from_numpy(blur_kernel(2))
    assert torch.allclose(binomial_blur(flat, kernel), flat)
    rows, cols = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    checker = ((rows + cols) % 2).float().expand(1, 2, 12, 12)
    assert binomial_blur(checker, kernel)[..., 1:-1, 1:-1].sub(0.5).abs().max() < 1e-6
    assert checker.sub(0.5).abs().min() == 0.5


def test_antialias_blurs_around_every_resampling_and_is_stored_only_when_chosen() -> None:
    torch.manual_seed(0)
    plain = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    smooth = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1, antialias=True))
    smooth.load_state_dict(plain.state_dict())  # no weights of its own: the blur is fixed
    images = torch.rand(1, 3, 37, 50)
    a, b = plain(images, 0), smooth(images, 0)
    assert a.shape == b.shape == images.shape
    assert (a - b).abs().max() > 1e-4
    assert "antialias" not in plain.config.to_dict()
    assert smooth.config.to_dict()["antialias"] is True
    # Before each stride-2 conv and after each upsampling; nowhere else.
    blurred = {
        name
        for name, layer in smooth.named_modules()
        if getattr(layer, "blur_kernel", None) is not None
    }
    assert blurred == {"encoder.1", "encoder.2", "up1.block", "up2.block"}


def test_zero_padding_changes_the_border_and_is_stored_only_when_chosen() -> None:
    torch.manual_seed(0)
    reflect = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    zero = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1, padding="zero"))
    zero.load_state_dict(reflect.state_dict())  # same weights: only the padding differs
    images = torch.rand(1, 3, 96, 96)
    a, b = reflect(images, 0), zero(images, 0)
    assert a.shape == b.shape == images.shape
    differs = (a - b).abs()[0].amax(0)
    assert differs[:4].mean() > 1e-3  # at the border
    assert differs[44:52, 44:52].mean() < differs[:4].mean()  # less in the middle
    assert "padding" not in reflect.config.to_dict()
    assert zero.config.to_dict()["padding"] == "zero"
    with pytest.raises(ValueError, match="padding"):
        NetConfig(num_styles=2, padding="circular")
