"""The temporal stage's optional methods (issue 21's frontier study): the frame-difference
loss, the strokes' placement term, per-style weights from the Gram trace, and compound
regularisation in the stage."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml

from fastnst import CONF_DIR
from fastnst.data.styles import StyleSet
from fastnst.errors import UserError
from fastnst.images import gaussian_blur as torch_gaussian_blur
from fastnst.runtime.arrays import gaussian_blur
from fastnst.training.temporal import TemporalSettings, TemporalStyleModule, with_frame_noise
from fastnst.video.losses import (
    frame_difference_loss,
    output_temporal_loss,
    shape_temporal_loss,
    style_trace_weights,
)


def smooth(h: int, w: int, seed: int, n: int = 1, scale: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, h // scale, w // scale, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic").clamp(0, 1)


def test_frame_difference_loss_is_zero_when_the_output_changes_like_the_input() -> None:
    previous, current = smooth(32, 40, 0, 2), smooth(32, 40, 1, 2)
    texture = 0.3 * smooth(32, 40, 2, 2)  # the "style": the same on both frames
    follows = frame_difference_loss(previous + texture, current + texture, previous, current)
    assert follows < 1e-10
    # A texture that changes on its own (flicker) costs, and so does a frozen output that
    # ignores the input's change.
    flicker = frame_difference_loss(
        previous + texture, current + texture.roll(3, -1), previous, current
    )
    frozen = frame_difference_loss(previous, previous, previous, current)
    assert flicker > 1e-3 and frozen > 1e-3
    # The size: RGB summed, pixels averaged.
    expected = ((previous - current) ** 2).sum(1).mean()
    assert frozen == pytest.approx(float(expected), rel=1e-5)


def test_shape_term_ignores_the_strokes_contrast_but_not_their_place() -> None:
    """Fainter (or bolder) strokes in the same place cost the output term but not the shape
    term; the same strokes moved cost both; moved along the flow, neither."""
    base = smooth(48, 48, 0, 2, scale=24)  # light that barely changes across the frame
    strokes = 0.2 * (smooth(48, 48, 1, 2, scale=2) - 0.5)
    flow, mask = torch.zeros(2, 2, 48, 48), torch.ones(2, 1, 48, 48)
    previous = base + strokes
    fainter, moved = base + 0.4 * strokes, base + strokes.roll(3, -1)
    assert shape_temporal_loss(previous, previous, flow, mask) < 1e-8
    faint_shape = shape_temporal_loss(previous, fainter, flow, mask)
    moved_shape = shape_temporal_loss(previous, moved, flow, mask)
    assert moved_shape > 20 * faint_shape and moved_shape > 0.1
    faint_output = output_temporal_loss(previous, fainter, base, base, flow, mask)
    assert faint_output > 1e-3  # the output term does count the contrast
    # The strokes moved with the picture, and the flow says so: nothing to pay.
    shifted = torch.roll(previous, 3, -1)
    along = torch.zeros(2, 2, 48, 48)
    along[:, 0] = -3.0  # backward flow: each pixel came from 3 px to its left
    inner = torch.zeros(2, 1, 48, 48)
    inner[..., 8:-8, 8:-8] = 1
    # (the roll wraps around, the warp repeats the border: the blurs see that near the edges)
    assert shape_temporal_loss(previous, shifted, along, inner) < 0.01 * moved_shape


def test_torch_blur_matches_the_runtime_blur() -> None:
    images = smooth(40, 56, 4, 2, scale=2)
    expected = gaussian_blur(images.numpy(), 2.0)
    assert torch.allclose(torch_gaussian_blur(images, 2.0), torch.from_numpy(expected), atol=1e-5)


def test_per_pair_weights_give_a_weighted_mean() -> None:
    previous, current = smooth(16, 16, 0, 2), smooth(16, 16, 1, 2)
    out_previous, out_current = previous, current.flip(-1)
    flow, mask = torch.zeros(2, 2, 16, 16), torch.ones(2, 1, 16, 16)
    weights = torch.tensor([0.5, 1.5])
    for loss in (
        lambda w: frame_difference_loss(out_previous, out_current, previous, current, w),
        lambda w: output_temporal_loss(out_previous, out_current, previous, current, flow, mask, w),
    ):
        first = loss(torch.tensor([2.0, 0.0]))  # the first pair alone, counted twice
        second = loss(torch.tensor([0.0, 2.0]))
        assert first != pytest.approx(float(second))
        assert loss(weights) == pytest.approx(float(0.25 * first + 0.75 * second), rel=1e-5)
        assert loss(None) == pytest.approx(float(0.5 * first + 0.5 * second), rel=1e-5)


def test_style_trace_weights_favour_the_busier_style() -> None:
    grams = {  # two layers whose scales differ by 10^4; style 1 has 3x the trace of style 0
        "a": torch.stack([torch.eye(4), 3 * torch.eye(4)]),
        "b": torch.stack([1e4 * torch.eye(8), 3e4 * torch.eye(8)]),
    }
    assert torch.allclose(style_trace_weights(grams, 1.0), torch.tensor([0.5, 1.5]))
    assert torch.allclose(style_trace_weights(grams, 0.0), torch.ones(2))
    half = style_trace_weights(grams, 0.5)
    assert half.mean() == pytest.approx(1.0) and 1.0 < half[1] / half[0] < 3.0
    # Off-diagonal entries do not count: only the trace.
    grams["a"][1] += 5.0 * (1 - torch.eye(4))
    assert torch.allclose(style_trace_weights(grams, 1.0), torch.tensor([0.5, 1.5]))


def test_temporal_settings_refuse_negative_and_unknown_options() -> None:
    assert TemporalSettings.from_config(None) == TemporalSettings()
    with pytest.raises(UserError, match="frame_difference_weight"):
        TemporalSettings.from_config({"frame_difference_weight": -1.0})
    with pytest.raises(UserError, match="unknown model.temporal option.*frame_diff"):
        TemporalSettings.from_config({"frame_diff": 1.0})
    # The gate's starting logit may be negative (the default is), but not infinite.
    assert TemporalSettings.from_config({"gate_start": -3.0}).gate_start == -3.0
    with pytest.raises(UserError, match="gate_start"):
        TemporalSettings.from_config({"gate_start": float("inf")})


def make_module(
    temporal: dict[str, float], compound_weight: float = 0.0, **net: bool
) -> TemporalStyleModule:
    loss = yaml.safe_load((CONF_DIR / "loss" / "default.yaml").read_text())
    loss.update(vgg_weights="random", compound_weight=compound_weight)
    flat = torch.full((3, 32, 32), 0.5)
    busy = smooth(32, 32, 7)[0].mul(4).sub(1.5).clamp(0, 1)  # strong contrast everywhere
    torch.manual_seed(0)
    module = TemporalStyleModule(
        net={"width": 0.25, "num_residual": 1, **net},
        loss=loss,
        optim={"lr": 1e-3},
        style_names=["flat", "busy"],
        style_size=32,
        styles=[StyleSet("flat", images=[flat]), StyleSet("busy", images=[busy])],
        temporal=temporal,
    )
    module.prepare_style_targets()
    return module


def step(module: TemporalStyleModule) -> tuple[float, dict[str, float]]:
    """One training step on a fixed pair batch: the total and every logged value."""
    logged: dict[str, float] = {}

    def log(name: str, value: torch.Tensor, **_: Any) -> None:
        logged[name] = float(value)

    module.log = log  # type: ignore[method-assign]
    module.log_dict = lambda values, **_: [log(k, v) for k, v in values.items()]  # type: ignore[method-assign]
    previous, current = smooth(32, 32, 1, 2), smooth(32, 32, 2, 2)
    batch = (previous, current, torch.zeros(2, 2, 32, 32), torch.ones(2, 1, 32, 32))
    torch.manual_seed(1)
    with torch.no_grad():
        total = module.training_step(batch, 0)
    return float(total), logged


BASE = {"output_weight": 1.0, "feature_weight": 1.0}


def test_the_stage_adds_each_option_with_its_weight() -> None:
    total, logged = step(make_module(BASE))
    assert "loss/temporal_frame_difference" not in logged and "loss/compound" not in logged
    # Frame difference: the same step plus weight x the term, logged on its own.
    with_fd, logged_fd = step(make_module({**BASE, "frame_difference_weight": 10.0}))
    term = logged_fd["loss/temporal_frame_difference"]
    assert term > 0 and with_fd - total == pytest.approx(10 * term, rel=1e-4)
    # Compound regularisation from the loss config, through fastnst.regularizers.
    with_compound, logged_c = step(make_module(BASE, compound_weight=20.0))
    term = logged_c["loss/compound"]
    assert term > 0 and with_compound - total == pytest.approx(20 * term, rel=1e-4)


def test_fresh_weight_puts_the_output_term_on_the_recurrent_heads_own_rgb() -> None:
    """model.temporal.fresh_weight: the ReCoNet output term on the head's RGB before the gate
    keeps the carried output, added with its weight; it differs from the output term where
    the gate kept something, and a plain network's fresh RGB is its output."""
    total, _ = step(make_module(BASE, recurrent=True))
    with_fresh, logged = step(make_module({**BASE, "fresh_weight": 10.0}, recurrent=True))
    term = logged["loss/temporal_fresh"]
    assert term > 0 and with_fresh - total == pytest.approx(10 * term, rel=1e-4)
    assert term != pytest.approx(logged["loss/temporal_output"], rel=1e-3)
    _, plain = step(make_module({**BASE, "fresh_weight": 10.0}))
    assert plain["loss/temporal_fresh"] == pytest.approx(plain["loss/temporal_output"])


def test_shape_weight_adds_the_placement_term_with_its_weight() -> None:
    total, _ = step(make_module(BASE))
    with_shape, logged = step(make_module({**BASE, "shape_weight": 3.0}))
    term = logged["loss/temporal_shape"]
    assert term > 0 and with_shape - total == pytest.approx(3 * term, rel=1e-4)


def test_trace_power_weights_each_style_by_its_gram_trace() -> None:
    assert make_module(BASE).trace_weights is None
    module = make_module({**BASE, "trace_power": 1.0})
    weights = module.trace_weights
    assert weights is not None and weights.mean() == pytest.approx(1.0)
    assert weights[1] > weights[0]  # the busy style's pairs count more
    plain_total, plain = step(make_module(BASE))
    weighted_total, weighted = step(module)
    # Same pairs and styles (same seed), so only the temporal terms' weighting differs.
    assert weighted["loss/perceptual"] == pytest.approx(plain["loss/perceptual"])
    assert weighted["loss/temporal_output"] != pytest.approx(plain["loss/temporal_output"])


def test_frame_noise_shows_the_network_noisy_frames_and_the_losses_clean_ones() -> None:
    """model.temporal.frame_noise: each frame the network sees gets its own noise (the two
    frames of a static pair differ), within the std, while the run's images, which the
    losses compare against, stay the clean frames."""
    frame = smooth(32, 32, 3, 2)
    frames = torch.stack([frame, frame], 1)  # a static pair: any output change is the noise
    flows, masks = torch.zeros(2, 1, 2, 32, 32), torch.ones(2, 1, 1, 32, 32)
    torch.manual_seed(4)
    clean = make_module(BASE).run_chain(frames, flows, masks)
    torch.testing.assert_close(clean.out_previous, clean.out_current)
    noisy_module = make_module({**BASE, "frame_noise": 0.05})
    torch.manual_seed(4)
    noisy = noisy_module.run_chain(frames, flows, masks)
    torch.testing.assert_close(noisy.images, clean.images)  # the losses' frames: clean
    assert (noisy.out_previous - noisy.out_current).abs().mean() > 1e-4  # two noises seen
    seen = with_frame_noise([frame, frame], 0.05)
    change = (seen[0] - seen[1]).std(dim=(1, 2, 3))
    assert ((change > 0) & (change < 0.05 * 2**0.5 * 1.1)).all()
    assert with_frame_noise([frame], 0.0)[0] is frame
    with pytest.raises(UserError, match="frame_noise"):
        TemporalSettings.from_config({"frame_noise": -0.01})
