"""tools/anchored_bound.py: the synthetic camera moves as asked, and its exact flow lines
each rendered frame up with the one before (the glued stylization's reference)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fastnst.video.metrics import masked_warp_error

from conftest import load_tool

FRAME = (48, 80)


def smooth_canvas(shape: tuple[int, int]) -> torch.Tensor:
    """A low-frequency image, so bicubic and bilinear resampling agree on it."""
    coarse = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    return F.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)[0].clamp(0, 1)


def test_camera_path_moves_at_the_asked_speed_from_rest() -> None:
    tool = load_tool("anchored_bound")
    maps = tool.camera_path(20, 4.0, seed=3)
    shifts = np.stack([m[:, 2] for m in maps])
    assert np.allclose(shifts[0], 0)
    assert abs(np.linalg.norm(np.diff(shifts, axis=0), axis=1).mean() - 4.0) < 1e-9
    linear = np.stack([m[:, :2] for m in maps])
    assert not np.allclose(linear[0], linear[-1])  # it turns and zooms too


def test_exact_flow_lines_up_consecutive_frames_and_zero_flow_does_not() -> None:
    tool = load_tool("anchored_bound")
    canvas = smooth_canvas(tuple(round(s * (1 + 2 * tool.MARGIN)) for s in FRAME))
    maps = tool.placed(tool.camera_path(6, 3.0, seed=1), FRAME, canvas.shape[-2:])
    frames = tool.render(canvas, maps, FRAME)
    flow, inside = tool.exact_flows(maps, FRAME)
    assert flow.shape == (5, 2, *FRAME) and inside.shape == (5, 1, *FRAME)
    assert 0.5 < inside.mean() < 1  # most pixels were seen in the frame before, not all
    along = masked_warp_error(frames[1:], frames[:-1], flow, inside)
    still = masked_warp_error(frames[1:], frames[:-1], torch.zeros_like(flow), inside)
    assert along.max() < 1e-4
    assert still.min() > 20 * along.max()


def test_clip_spec_reads_an_optional_long_side() -> None:
    tool = load_tool("anchored_bound")
    assert tool.clip_spec("clips/eval/carphone.mp4:352") == ("clips/eval/carphone.mp4", 352)
    assert tool.clip_spec("cockatoo.mp4") == ("cockatoo.mp4", 512)


def test_the_first_frame_moved_with_the_scene_is_each_later_frame() -> None:
    tool = load_tool("anchored_bound")
    canvas = smooth_canvas(tuple(round(s * (1 + 2 * tool.MARGIN)) for s in FRAME))
    maps = tool.placed(tool.camera_path(6, 3.0, seed=2), FRAME, canvas.shape[-2:])
    frames = tool.render(canvas, maps, FRAME)
    from_first = tool.relative_to_first(maps)
    assert np.allclose(from_first[0], [[1, 0, 0], [0, 1, 0]])
    glued = tool.render(frames[0], from_first, FRAME)
    inner = (slice(None), slice(None), slice(12, -12), slice(16, -16))  # seen in frame 0
    assert (glued - frames)[inner].abs().max() < 0.02
    assert (frames[0:1] - frames)[inner].abs().mean() > 0.01  # the frames did move
