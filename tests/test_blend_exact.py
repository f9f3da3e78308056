"""tools/blend_exact.py: blends scored under a known camera's exact flow."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO, load_tool


@pytest.fixture
def tool(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "tools"))  # it imports its sibling anchored_bound
    return load_tool("blend_exact")


def test_a_variant_is_kind_weight_and_flow_size(tool) -> None:
    assert tool.Shown.parse("glue:0.1:512") == ("glue", 0.1, 512)
    assert tool.Shown.parse("detail:0.6:320").label() == "detail:0.6:320"
    with pytest.raises(argparse.ArgumentTypeError):
        tool.Shown.parse("smear:0.1:512")


def test_the_exact_multiple_is_one_for_the_input_and_more_for_fresh_noise(tool) -> None:
    """The input's own error is the floor; an output that changes where the scene does not
    (fresh noise every frame) is above it."""
    anchored = load_tool("anchored_bound")
    frame = (48, 80)
    coarse = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    canvas = F.interpolate(coarse, size=(70, 110), mode="bicubic", align_corners=True)[0]
    maps = anchored.placed(anchored.camera_path(6, 3.0, seed=1), frame, canvas.shape[-2:])
    frames = anchored.render(canvas, maps, frame)
    flow, inside = anchored.exact_flows(maps, frame)
    floor = float(tool.masked_warp_error(frames[1:], frames[:-1], flow, inside).mean())
    assert tool.exact_multiple(frames, floor, flow, inside) == pytest.approx(1.0)
    noisy = frames + 0.05 * torch.rand(frames.shape, generator=torch.Generator().manual_seed(1))
    assert tool.exact_multiple(noisy, floor, flow, inside) > 3


def test_summary_is_the_geometric_mean_per_variant(tool) -> None:
    rows = [
        {"shown": "glue:0.1:512", "exact_x": 1.0, "dis_x": 2.0},
        {"shown": "glue:0.1:512", "exact_x": 4.0, "dis_x": 8.0},
        {"shown": "detail:0.6:320", "exact_x": 3.0, "dis_x": 3.0},
    ]
    means = tool.summary(rows)
    assert list(means) == ["glue:0.1:512", "detail:0.6:320"]
    assert means["glue:0.1:512"]["exact_x"] == pytest.approx(2.0)
    assert means["glue:0.1:512"]["dis_x"] == pytest.approx(4.0)
    assert math.isclose(means["detail:0.6:320"]["exact_x"], 3.0)
