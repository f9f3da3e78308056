"""The recurrent option (issue 21): a network that also sees the previous output warped onto
the current frame, trained on pairs by the temporal stage."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import yaml

from fastnst import CONF_DIR
from fastnst.data.styles import StyleSet
from fastnst.errors import UserError
from fastnst.model import NetConfig, TransformerNet, still_network
from fastnst.modelfile import FIRST_CONV, GUIDE_CHANNELS, HEAD_CONV
from fastnst.training.temporal import TemporalStyleModule, soften
from fastnst.video.warp import warp

from conftest import load_tool


def net(recurrent: bool = True, guide_head: bool = False) -> TransformerNet:
    torch.manual_seed(0)
    config = NetConfig(
        num_styles=2, width=0.25, num_residual=1, recurrent=recurrent, guide_head=guide_head
    )
    return TransformerNet(config).eval()


def test_the_gate_keeps_the_carried_output_only_where_trusted() -> None:
    model = net()
    with torch.no_grad():
        model.head.norm.beta[:, 3] = 20.0  # gate fully open
        model.head.norm.gamma[:, 3] = 0.0
        images, carried = torch.rand(1, 3, 24, 40), torch.rand(1, 3, 24, 40)
        mask = torch.zeros(1, 1, 24, 40)
        mask[..., :20] = 1
        out = model(images, 0, torch.cat([carried, mask], 1))
        torch.testing.assert_close(out[..., :20], carried[..., :20])
        assert (out[..., 20:] - carried[..., 20:]).abs().mean() > 0.05


@pytest.mark.parametrize("guide_head", [False, True])
def test_the_guide_changes_the_output_and_no_guide_is_the_still_network(
    guide_head: bool,
) -> None:
    model = net(guide_head=guide_head)
    with torch.no_grad():
        model.encoder[0].conv.weight[:, 3:].normal_()  # trained guide weights are not zero
        if guide_head:  # the head's guide weights alone must change the output too
            model.head.conv.weight[:, -GUIDE_CHANNELS:].normal_()
            unguided_first = model.encoder[0].conv.weight[:, 3:].clone()
        images = torch.rand(1, 3, 24, 40)
        guide = torch.cat([torch.rand(1, 3, 24, 40), torch.ones(1, 1, 24, 40)], 1)
        still = model(images, 1)
        assert not torch.allclose(model(images, 1, guide), still, atol=1e-3)
        if guide_head:
            model.encoder[0].conv.weight[:, 3:] = 0
            assert not torch.allclose(model(images, 1, guide), still, atol=1e-3)
            model.encoder[0].conv.weight[:, 3:] = unguided_first
        # No guide = zeros = the plain network with the first conv's image weights.
        plain = still_network(model)
        assert not plain.config.recurrent and plain.encoder[0].conv.weight.shape[1] == 3
        assert plain.head.conv.weight.shape[:2] == (3, plain.up2.block.conv.weight.shape[0])
        torch.testing.assert_close(plain(images, 1), still)
        zeros = torch.zeros(1, GUIDE_CHANNELS, 24, 40)
        torch.testing.assert_close(model(images, 1, zeros), still)


def test_a_plain_network_refuses_a_guide_and_a_bad_guide_is_refused() -> None:
    with pytest.raises(ValueError, match="recurrent"):
        net(recurrent=False)(torch.rand(1, 3, 16, 16), 0, torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match="guide must be"):
        net()(torch.rand(1, 3, 16, 16), 0, torch.zeros(1, 3, 16, 16))


def test_recurrent_is_stored_only_when_set() -> None:
    assert "recurrent" not in NetConfig(num_styles=2).to_dict()
    assert NetConfig(num_styles=2, recurrent=True).to_dict()["recurrent"] is True
    assert "guide_head" not in NetConfig(num_styles=2, recurrent=True).to_dict()
    with pytest.raises(ValueError, match="recurrent"):
        NetConfig(num_styles=2, guide_head=True)


def test_soften_blurs_but_keeps_flat_areas() -> None:
    flat = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(soften(flat), flat)
    checker = (torch.arange(64).view(8, 8) % 2).float().expand(1, 3, 8, 8)
    assert soften(checker).std() < 0.5 * checker.std()


def make_module(temporal: dict[str, float], guide_head: bool = False) -> TemporalStyleModule:
    loss = yaml.safe_load((CONF_DIR / "loss" / "default.yaml").read_text())
    loss.update(vgg_weights="random")
    torch.manual_seed(0)
    module = TemporalStyleModule(
        net={"width": 0.25, "num_residual": 1, "recurrent": True, "guide_head": guide_head},
        loss=loss,
        optim={"lr": 1e-3},
        style_names=["a", "b"],
        style_size=32,
        styles=[
            StyleSet("a", images=[torch.rand(3, 32, 32)]),
            StyleSet("b", images=[torch.rand(3, 32, 32)]),
        ],
        temporal=temporal,
    )
    module.prepare_style_targets()
    return module


@pytest.mark.parametrize("guide_head", [False, True])
def test_the_stage_feeds_the_second_frame_the_first_frames_output(guide_head: bool) -> None:
    """One step: the second frame's encoder input carries the first output, warped, and the
    trust mask; gradients reach the guide's weights (the head's too, with ``guide_head``)."""
    temporal = {"output_weight": 1.0, "feature_weight": 1.0, "guide_soften": 0.0}
    module = make_module(temporal, guide_head)
    inputs: list[torch.Tensor] = []
    heads: list[torch.Tensor] = []
    hooks = [
        module.net.encoder[0].conv.register_forward_hook(lambda m, i, o: inputs.append(i[0])),
        module.net.head.register_forward_hook(lambda m, i, o: heads.append(o.detach())),
    ]
    module.log = lambda *a, **k: None  # type: ignore[method-assign]
    module.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    previous, current = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    flow = torch.zeros(2, 2, 32, 32)
    flow[:, 0] = 1.0  # each pixel reads the previous output one pixel to its right
    mask = torch.ones(2, 1, 32, 32)
    mask[:, :, :, -1] = 0
    module.training_step((previous, current, flow, mask), 0).backward()
    for hook in hooks:
        hook.remove()
    pad = 4  # the first conv's reflection padding
    first, second = (x[..., pad:-pad, pad:-pad] for x in inputs)
    assert first.shape[1] == 3 + GUIDE_CHANNELS and torch.all(first[:, 3:] == 0)
    torch.testing.assert_close(second[:, :3], current)
    torch.testing.assert_close(second[:, 6:], mask)
    out_previous = torch.sigmoid(heads[0][:, :3])  # RGB; the fourth channel is the gate
    torch.testing.assert_close(second[:, 3:6, :, :-1], out_previous[..., 1:], atol=1e-5, rtol=0)
    grad = module.net.encoder[0].conv.weight.grad
    assert grad is not None and grad[:, 3:].abs().sum() > 0
    if guide_head:
        head_grad = module.net.head.conv.weight.grad
        assert head_grad is not None and head_grad[:, -GUIDE_CHANNELS:].abs().sum() > 0


@pytest.mark.parametrize(
    ("gate_start", "low", "high", "guide_head"),
    [(-2.0, 0.03, 0.3, False), (0.0, 0.35, 0.65, False), (0.0, 0.35, 0.65, True)],
)
def test_a_plain_model_starts_a_recurrent_one_exactly(
    tmp_path: Any, gate_start: float, low: float, high: float, guide_head: bool
) -> None:
    from fastnst.export import save_model
    from fastnst.modelfile import ModelInfo
    from fastnst.training.run import start_from_model

    plain = net(recurrent=False)
    info = ModelInfo(style_names=["a", "b"], net=plain.config.to_dict())
    path = tmp_path / "plain.safetensors"
    save_model(plain, path, info)
    module = make_module({}, guide_head)
    start_from_model(module, str(path), gate_start)
    weight = module.net.state_dict()[FIRST_CONV]
    assert torch.all(weight[:, 3:] == 0)
    if guide_head:
        assert torch.all(module.net.state_dict()[HEAD_CONV][:, -GUIDE_CHANNELS:] == 0)
    images = torch.rand(1, 3, 32, 32)
    carried = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        module.net.eval()
        expected = plain(images, 1)
        # Untrusted everywhere: exactly the plain model.
        untrusted = torch.cat([carried, torch.zeros(1, 1, 32, 32)], 1)
        torch.testing.assert_close(module.net(images, 1, untrusted), expected)
        # Trusted: gate_start -2 (the default) keeps about 12 % of the carried output,
        # 0 about half.
        trusted = torch.cat([carried, torch.ones(1, 1, 32, 32)], 1)
        kept = (module.net(images, 1, trusted) - expected) / (carried - expected)
        assert low < float(kept.median()) < high


def test_a_recurrent_model_starts_one_whose_head_sees_the_guide_exactly(tmp_path: Any) -> None:
    from fastnst.export import save_model
    from fastnst.modelfile import ModelInfo
    from fastnst.training.run import start_from_model

    recurrent = net()
    with torch.no_grad():
        recurrent.encoder[0].conv.weight[:, 3:].normal_()
    path = tmp_path / "recurrent.safetensors"
    save_model(recurrent, path, ModelInfo(style_names=["a", "b"], net=recurrent.config.to_dict()))
    module = make_module({}, guide_head=True)
    start_from_model(module, str(path))
    images = torch.rand(1, 3, 32, 32)
    guide = torch.cat([torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32)], 1)
    with torch.no_grad():
        module.net.eval()
        torch.testing.assert_close(module.net(images, 1, guide), recurrent(images, 1, guide))
    # and back is refused: a plain recurrent config cannot hold the head's guide weights
    head_path = tmp_path / "head.safetensors"
    save_model(
        module.net, head_path, ModelInfo(style_names=["a", "b"], net=module.net.config.to_dict())
    )
    with pytest.raises(UserError, match="init_from"):
        start_from_model(make_module({}), str(head_path))


def test_error_parts_split_the_judges_error_and_read_the_gate(tmp_path: Any) -> None:
    """tools/recurrent_error_parts.py: its parts add up to the judge's error, and the gate
    it reports is the network's (an open gate reads ~1, a shut one ~0)."""
    from fastnst.export import save_model
    from fastnst.modelfile import ModelInfo
    from fastnst.video.metrics import warping_error

    pytest.importorskip("cv2")
    tool = load_tool("recurrent_error_parts")
    ys, xs = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    frames = torch.stack(  # a smooth pattern sliding right by 1.5 px a frame
        [
            torch.stack(
                [
                    (0.5 + 0.4 * torch.sin((xs - 1.5 * t) / 5 + c) * torch.cos(ys / 7))
                    for c in range(3)
                ]
            )
            for t in range(6)
        ]
    )
    found = {}
    for name, shift in (("open", 20.0), ("shut", -20.0)):
        model = net()
        with torch.no_grad():
            model.head.norm.beta[:, 3] = shift
            model.state_dict()[FIRST_CONV][:, 3:] = 0  # the guide reaches only the gate
        path = tmp_path / f"{name}.safetensors"
        save_model(model, path, ModelInfo(style_names=["a", "b"], net=model.config.to_dict()))
        parts = tool.error_parts(str(path), frames, 1, 64, "dis")
        assert parts["total_x"] == pytest.approx(parts["trusted_x"] + parts["untrusted_x"])
        assert 0 <= parts["untrusted_share"] < 0.5
        found[name] = parts
    assert found["open"]["gate_where_trusted"] > 0.99
    assert found["shut"]["gate_where_trusted"] < 0.01
    # A shut gate is the still network: the tool's total is the judge's plain warping error.
    with torch.no_grad():
        still = torch.cat([model(frame[None], 1) for frame in frames])  # the shut one, unguided
    floor = warping_error(frames, frames).mean
    expected = warping_error(frames, still).mean / floor
    assert found["shut"]["total_x"] == pytest.approx(expected, rel=1e-3)
    assert found["open"]["total_x"] < found["shut"]["total_x"]  # carrying steadies it


def test_starting_from_a_model_says_when_the_loss_changes_its_look(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A fine-tune that drops the model's own content layers is allowed, but said."""
    from fastnst.export import save_model
    from fastnst.modelfile import ModelInfo
    from fastnst.training.run import loss_changes, start_from_model

    module = make_module({})
    now = dict(module.hparams.loss)
    deep = {**now, "content_layers": {"relu2_2": 6.3e-6, "relu4_2": 1.5e-6}}
    assert loss_changes(now, now) == []
    assert loss_changes({}, now) == []  # an old file that records no loss
    changed = loss_changes(deep, now)
    assert len(changed) == 1 and changed[0].startswith("content_layers:")
    model = net()
    for loss, warned in ((now, False), (deep, True)):
        path = tmp_path / f"{warned}.safetensors"
        save_model(
            model, path, ModelInfo(style_names=["a", "b"], net=model.config.to_dict(), loss=loss)
        )
        caplog.clear()
        with caplog.at_level("INFO", logger="fastnst"):
            start_from_model(make_module({}), str(path))
        assert ("loss settings changed" in caplog.text) == warned
        assert ("relu4_2" in caplog.text) == warned


def test_a_chain_carries_each_output_to_the_next_frame() -> None:
    """Three frames: the third frame's guide is the second frame's own guided output, warped
    on; the losses cover all three frames and both pairs; a pair batch is a two-frame chain."""
    temporal = {"output_weight": 1.0, "feature_weight": 1.0, "guide_soften": 0.0}
    module = make_module(temporal)
    module.log = lambda *a, **k: None  # type: ignore[method-assign]
    module.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    torch.manual_seed(1)
    frames = torch.rand(2, 3, 3, 32, 32)
    flows = torch.zeros(2, 2, 2, 32, 32)
    flows[:, :, 0] = 1.0
    masks = torch.ones(2, 2, 1, 32, 32)
    torch.manual_seed(2)
    run = module.run_chain(frames, flows, masks)
    assert run.outputs.shape == (6, 3, 32, 32) and run.out_previous.shape == (4, 3, 32, 32)
    torch.testing.assert_close(run.images[2:4], frames[:, 1])
    torch.testing.assert_close(run.current[2:], frames[:, 2])
    torch.testing.assert_close(run.out_previous[2:], run.outputs[2:4])
    # The run's style, by hand: frame 2 is guided by frame 1's guided output.
    styles = run.image_mix[:2]
    net = module.net
    first = net(frames[:, 0], styles)
    guide = torch.cat([warp(first, flows[:, 0]), masks[:, 0]], 1)
    second = net(frames[:, 1], styles, guide)
    third = net(frames[:, 2], styles, torch.cat([warp(second, flows[:, 1]), masks[:, 1]], 1))
    torch.testing.assert_close(run.outputs, torch.cat([first, second, third]), atol=1e-5, rtol=0)
    unguided = net(frames[:, 1], styles)
    assert (second - unguided).abs().max() > 1e-3  # the carried output did reach frame 1
    total = module.training_step((frames, flows, masks), 0)
    total.backward()
    assert torch.isfinite(total)
    torch.manual_seed(3)
    as_pair = module.training_step((frames[:, 0], frames[:, 1], flows[:, 0], masks[:, 0]), 0)
    torch.manual_seed(3)
    as_chain = module.training_step((frames[:, :2], flows[:, :1], masks[:, :1]), 0)
    torch.testing.assert_close(as_pair, as_chain)
