"""tools/feature_carry.py: a share of 0 is the network frame by frame; a share of 1 where the
flow is trusted paints the carried features, at every layer; nothing is carried where the
flow is not trusted."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastnst.model import NetConfig, TransformerNet

from conftest import load_tool

SIZE = (32, 40)


def small_net() -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1)).eval()
    with torch.no_grad():  # CIN tables off their identity start, as in a trained model
        for name, param in net.named_parameters():
            if name.endswith(("gamma", "beta")):
                param.add_(0.3 * torch.randn_like(param))
    return net


def two_frames() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, *SIZE, generator=generator)


def still_flow(trust: float):
    """Zero motion, trusted everywhere (1) or nowhere (0)."""

    def flows(previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((2, *SIZE), np.float32), np.full(SIZE, trust, np.float32)

    return flows


def per_frame(net: TransformerNet, frames: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net(frame[None], 1) for frame in frames])


@pytest.mark.parametrize("layer", ["enc", "res", "up1", "up2", "rgb"])
def test_share_zero_is_the_network_frame_by_frame(layer: str) -> None:
    tool = load_tool("feature_carry")
    net, frames = small_net(), two_frames()
    out = tool.stylize_clip(net, frames, 1, tool.LayerCarry(layer, 0.0), still_flow(1.0))
    assert torch.allclose(out, per_frame(net, frames), atol=1e-6)


@pytest.mark.parametrize("layer", ["enc", "res", "up1", "up2", "rgb"])
def test_share_one_repaints_the_carried_frame_where_trusted(layer: str) -> None:
    tool = load_tool("feature_carry")
    net, frames = small_net(), two_frames()
    own = per_frame(net, frames)
    assert (own[1] - own[0]).abs().mean() > 0.01  # the two frames paint differently
    for kernel in ("bilinear", "bicubic"):
        out = tool.stylize_clip(
            net, frames, 1, tool.LayerCarry(layer, 1.0, kernel), still_flow(1.0)
        )
        # Zero motion: the second frame's activations are the first's, so is its painting.
        assert torch.allclose(out[1], own[0], atol=1e-5), kernel
    untrusted = tool.stylize_clip(net, frames, 1, tool.LayerCarry(layer, 1.0), still_flow(0.0))
    assert torch.allclose(untrusted, own, atol=1e-6)


def test_moved_features_follow_the_flow() -> None:
    """A shift by whole pixels moves the carried RGB with it, exactly (the trusted part)."""
    tool = load_tool("feature_carry")
    carry = tool.LayerCarry("rgb", 1.0, "bilinear")
    image = torch.rand(1, 3, *SIZE, generator=torch.Generator().manual_seed(2))
    carry("rgb", image, None)
    flow = torch.zeros(1, 2, *SIZE)
    flow[:, 0] = -2.0  # each pixel of the new frame was 2 px to its left before
    moved = carry("rgb", torch.zeros_like(image), (flow, torch.ones(1, 1, *SIZE)))
    assert torch.allclose(moved[..., 2:], image[..., :-2], atol=1e-5)
    assert not torch.allclose(moved, image)


def test_carry_spec_refuses_unknown_layers() -> None:
    tool = load_tool("feature_carry")
    assert tool.carry_spec("up2:0.9", "bicubic").share == 0.9
    assert tool.carry_spec("up2:0.9", "bicubic").stretch is None
    assert tool.carry_spec("up1", "bicubic").share == 1.0
    assert tool.carry_spec("up2:1:0.2", "bicubic").stretch == 0.2
    with pytest.raises(ValueError):
        tool.carry_spec("head:1", "bicubic")


def zoom_flow(factor: float) -> torch.Tensor:
    """The backward flow of a zoom into the frame's centre by ``factor`` (``[1, 2, H, W]``)."""
    ys, xs = torch.meshgrid(
        torch.arange(SIZE[0]).float(), torch.arange(SIZE[1]).float(), indexing="ij"
    )
    centre_y, centre_x = (SIZE[0] - 1) / 2, (SIZE[1] - 1) / 2
    scale = 1 / factor - 1
    return torch.stack([(xs - centre_x) * scale, (ys - centre_y) * scale])[None]


def test_area_ratio_of_a_zoom_and_a_pan() -> None:
    tool = load_tool("feature_carry")
    assert torch.allclose(tool.area_ratio(zoom_flow(1.25)), torch.tensor(1 / 1.25**2), atol=1e-5)
    pan = torch.zeros(1, 2, *SIZE)
    pan[:, 0], pan[:, 1] = 3.0, -1.5
    assert torch.allclose(tool.area_ratio(pan), torch.tensor(1.0))


def test_stretch_repaints_what_grows_and_keeps_what_only_moves() -> None:
    tool = load_tool("feature_carry")
    trusted = torch.ones(1, 1, *SIZE)
    pan = torch.zeros(1, 2, *SIZE)
    pan[:, 0] = 2.0
    panning = tool.LayerCarry("rgb", 1.0, stretch=0.3)
    assert all(torch.allclose(panning.kept(pan, trusted), trusted) for _ in range(5))
    zooming = tool.LayerCarry("rgb", 1.0, stretch=0.3)
    step = 2 * math.log(1.05)  # each frame magnifies the carried area by 1.05^2
    kept = [float(zooming.kept(zoom_flow(1.05), trusted)[..., 16, 20]) for _ in range(3)]
    assert kept[0] == pytest.approx(1 - step / 0.3, abs=1e-3)
    assert all(0 < k < 1 for k in kept)  # repainted a share at every frame, never all at once
    assert (
        float(tool.LayerCarry("rgb", 1.0, stretch=0.05).kept(zoom_flow(1.05), trusted)[..., 16, 20])
        == 0
    )


def test_a_hard_refresh_repaints_whole_once_the_stretch_is_reached() -> None:
    tool = load_tool("feature_carry")
    trusted = torch.ones(1, 1, *SIZE)
    zooming = tool.carry_spec("rgb:1:0.3h", "bicubic")
    kept = [float(zooming.kept(zoom_flow(1.05), trusted)[..., 16, 20]) for _ in range(5)]
    assert kept == [1.0, 1.0, 1.0, 0.0, 1.0]  # 2 ln 1.05 a frame: past 0.3 at the fourth


def test_input_smoothing_changes_what_the_network_sees_after_the_first_frame() -> None:
    tool = load_tool("feature_carry")
    net, frames = small_net(), two_frames()
    plain = tool.stylize_clip(net, frames, 1, tool.LayerCarry("up2", 0.0), still_flow(1.0))
    smoothed = tool.stylize_clip(
        net, frames, 1, tool.LayerCarry("up2", 0.0), still_flow(1.0), smooth=0.7
    )
    assert torch.allclose(smoothed[0], plain[0])
    assert (smoothed[1] - plain[1]).abs().mean() > 1e-3


def test_a_light_switched_on_is_repainted_with_the_appearance_check() -> None:
    """A still scene whose light changes: the flow stays trusted, so the glue alone would
    keep the first painting; the appearance check repaints it."""
    tool = load_tool("feature_carry")
    net = small_net()
    first = two_frames()[:1]
    frames = torch.cat([first, (first * 0.5 + 0.4).clamp(0, 1)])
    own = per_frame(net, frames)
    glue = tool.LayerCarry("up2", 1.0)
    frozen = tool.stylize_clip(net, frames, 1, glue, still_flow(1.0))
    assert torch.allclose(frozen[1], own[0], atol=1e-5)
    checked = tool.LayerCarry("up2", 1.0)
    repainted = tool.stylize_clip(net, frames, 1, checked, still_flow(1.0), appearance=0.05)
    assert torch.allclose(repainted[1], own[1], atol=1e-5)
    noise = frames[:1] + 0.01 * torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(3))
    noisy = torch.cat([frames[:1], noise.clamp(0, 1)])
    kept = tool.stylize_clip(
        net, noisy, 1, tool.LayerCarry("up2", 1.0), still_flow(1.0), appearance=0.05
    )
    assert torch.allclose(kept[1], per_frame(net, noisy)[0], atol=1e-5)  # noise is not new light
