"""The glue blend (fastnst.infer.glue): strokes kept whole along the flow, repainted whole
where they no longer fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastnst.infer.glue import (
    GLUE_SETTLE,
    GLUE_STRETCH,
    Glue,
    distortion_of,
    flow_jacobian,
    photo_change,
)
from fastnst.infer.temporal_blend import BLEND_KINDS, TemporalBlend, repaint_blend
from fastnst.runtime.flow import warp

H, W = 48, 64


def textured(seed: int) -> np.ndarray:
    """A smooth random ``[3, H, W]`` picture (bicubic moves of it stay close to exact)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((3, H // 8, W // 8)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)


def shifted(image: np.ndarray, dx: int) -> np.ndarray:
    """``image`` moved ``dx`` px to the right (the left edge repeated)."""
    out = np.roll(image, dx, axis=-1)
    out[..., :dx] = image[..., :1]
    return out


def distortion(flow: np.ndarray) -> np.ndarray:
    """How much one backward ``flow`` distorts each pixel (the glue composes these)."""
    return distortion_of(flow_jacobian(flow))


def fixed_flow(flow: np.ndarray, trusted: np.ndarray | None = None):
    """A ``flows`` that answers every pair with ``flow`` (``[2, H, W]``) and ``trusted``."""
    mask = np.ones((H, W), np.float32) if trusted is None else trusted
    return lambda previous, current: (flow, mask)


def fresh_where_repainted(carried: np.ndarray, fresh: np.ndarray, trusted: np.ndarray):
    """A ``repaint`` that shows the fresh output: what the glue itself keeps stands out."""
    return fresh


def still() -> np.ndarray:
    return np.zeros((2, H, W), np.float32)


def stripes(period: float) -> np.ndarray:
    """``[3, H, W]`` vertical stripes of this period (px) around 0.5, amplitude 0.2."""
    wave = 0.5 + 0.2 * np.sin(2 * np.pi * np.arange(W, dtype=np.float32) / period)
    return np.broadcast_to(wave, (3, H, W)).astype(np.float32).copy()


def test_a_chain_of_sharp_moves_never_lifts_a_stroke() -> None:
    """Strokes 6 px across, glued through 40 half-pixel moves back and forth: OpenCV's
    bicubic alone multiplied them by 1.029 a move (3.1x in all, a ringing hatch); the glue's
    kernel keeps them at most as strong as painted, and sharper than bilinear moves do."""
    image = stripes(6.0)
    sharp, soft = image, image
    for step in range(40):
        flow = still()
        flow[0] = 0.5 if step % 2 == 0 else -0.5
        sharp, soft = warp(sharp, flow, cubic=True), warp(soft, flow)
    middle = (slice(None), slice(None), slice(12, W - 12))  # away from the repeated border

    def amplitude(picture: np.ndarray) -> float:
        return float(np.abs(picture[middle] - 0.5).max())

    assert amplitude(sharp) <= amplitude(image) + 1e-3
    assert amplitude(sharp) > 2 * amplitude(soft)


def test_a_stroke_kept_along_a_long_pan_is_sampled_from_the_anchor() -> None:
    """Strokes 6 px across glued through 40 frames of half-pixel moves back and forth: the
    scene ends where it began, and so do the strokes, sampled from the anchor along the
    composed flow. Moved on frame by frame (the glue before) they changed with every move:
    bicubic moves grew them into a hatch, clamped ones flatten them (0.17 of 0.2 left)."""
    photo = np.full((3, H, W), 0.5, np.float32)  # nothing in the photo changes: all kept
    painting = stripes(6.0)
    steps = iter(range(10**6))

    def jittering(previous: np.ndarray, current: np.ndarray):
        flow = still()
        flow[0] = 0.5 if next(steps) % 2 == 0 else -0.5
        return flow, np.ones((H, W), np.float32)

    glue = Glue(0.1, jittering, fresh_where_repainted)
    glue(photo, painting)
    for _ in range(40):
        shown = glue(photo, textured(3))
    middle = (slice(None), slice(None), slice(12, W - 12))
    assert glue.kept[:, 12:-12].all()
    assert np.abs(shown[middle] - painting[middle]).max() < 0.03


def test_a_sharp_move_leaves_no_halo_at_an_edge() -> None:
    """A black-white edge moved by a third of a pixel: bicubic alone overshoots on both
    sides (a halo the next moves would carry on); the glue's kernel stays within the edge's
    two values and is still steeper than the bilinear move."""
    edge = np.zeros((3, H, W), np.float32)
    edge[..., W // 2 :] = 1.0
    flow = still()
    flow[0] = 1 / 3
    moved = warp(edge, flow, cubic=True)
    assert moved.min() >= 0.0 and moved.max() <= 1.0
    row, soft_row = moved[0, H // 2], warp(edge, flow)[0, H // 2]
    assert np.abs(np.diff(row)).max() >= np.abs(np.diff(soft_row)).max()


def test_a_still_scene_keeps_its_first_painting_whole() -> None:
    photo = textured(0)
    first, second = textured(1), textured(2)
    glue = Glue(0.1, fixed_flow(still()), fresh_where_repainted)
    assert np.array_equal(glue(photo, first), first)
    shown = glue(photo, second)
    np.testing.assert_allclose(shown, first, atol=1e-5)  # not the fresh frame, no mix either
    assert np.abs(shown - second).mean() > 0.2


def test_kept_strokes_move_with_the_scene() -> None:
    photo, painting = textured(0), textured(1)
    flow = still()
    flow[0] = -4.0  # backward flow: the scene moved 4 px to the right
    glue = Glue(0.1, fixed_flow(flow), fresh_where_repainted)
    glue(photo, painting)
    shown = glue(shifted(photo, 4), textured(2))
    np.testing.assert_allclose(shown[..., 10:], shifted(painting, 4)[..., 10:], atol=1e-4)


def test_the_photo_decides_what_is_repainted_and_the_trust_how() -> None:
    """Where the photo under a glued stroke is unchanged it stays, trusted or not; where it
    changed, it is repainted: the fresh output where the flow is not trusted, the default
    detail blend of carried and fresh where it is."""
    trusted = np.ones((H, W), np.float32)
    trusted[: H // 2] = 0
    photo, first, fresh = textured(0), textured(1), textured(2)
    changed = photo.copy()
    changed[..., : W // 2] += 0.3  # the left half lit up
    glue = Glue(0.1, fixed_flow(still(), trusted), repaint_blend)
    glue(photo, first)
    shown = glue(changed, fresh)
    right, left = (slice(None), slice(None), slice(W // 2 + 6, None)), (..., slice(W // 2 - 6))
    np.testing.assert_allclose(shown[right], first[right], atol=1e-5)
    expected = repaint_blend(first, fresh, trusted)
    np.testing.assert_allclose(shown[left], expected[left], atol=1e-5)
    top, bottom = (slice(None), slice(H // 2 - 8)), (slice(None), slice(H // 2, None))
    assert np.abs(shown[top][left] - fresh[top][left]).mean() < 0.005  # the gain map is smooth
    assert np.abs(shown[bottom][left] - fresh[bottom][left]).mean() > 0.1
    assert np.abs(shown[bottom][left] - first[bottom][left]).mean() > 0.05


def test_the_seam_between_kept_and_repainted_strokes_is_feathered() -> None:
    """Across the seam the shown pixels go from the repainted output to the kept one over a
    few pixels (a hard seam cut strokes into shards where the flow errs along thin lines)."""
    photo, first, fresh = np.full((3, H, W), 0.5, np.float32), textured(1), textured(2)
    changed = photo.copy()
    changed[..., : W // 2] += 0.3  # the left half lit up: repainted; the right half kept
    glue = Glue(0.1, fixed_flow(still()), fresh_where_repainted)
    glue(photo, first)
    shown = glue(changed, fresh)
    differs = np.abs(first - fresh).mean(0) > 0.05
    kept_share = np.where(differs, (shown - fresh).mean(0) / (first - fresh).mean(0), np.nan)
    by_column = np.nanmedian(kept_share, axis=0)
    np.testing.assert_allclose(by_column[: W // 2 - 6], 0, atol=1e-3)
    np.testing.assert_allclose(by_column[W // 2 + 6 :], 1, atol=1e-3)
    # the photo's 5-px box repaints a column past the lit half: kept from W / 2 + 1 on
    seam = by_column[W // 2 - 1 : W // 2 + 3]
    assert np.all(np.diff(seam) > 0.1)  # a ramp, not a step
    assert 0.2 < seam[1] < 0.5 < seam[2] < 0.8


def test_a_repaint_settles_before_it_is_glued_again() -> None:
    """The default repaint carries 0.6 of the old paint (no jump); glued straight after, that
    share would stay for good. The pixels go on being repainted for GLUE_SETTLE frames, until
    little of the stroke that no longer fitted is left, and are glued from then on."""
    photo, first, fresh = textured(0), textured(1), textured(2)
    changed = photo.copy()
    changed[..., : W // 2] += 0.3  # the left half lit up: repainted
    glue = Glue(0.1, fixed_flow(still()), repaint_blend)
    glue(photo, first)
    left, right = (..., slice(W // 2 - 6)), (..., slice(W // 2 + 6, None))
    start = np.abs(first - fresh)[left].mean()
    old_share = []
    for _ in range(1 + GLUE_SETTLE):
        shown = glue(changed, fresh)
        old_share.append(np.abs(shown - fresh)[left].mean() / start)
        np.testing.assert_allclose(shown[right], first[right], atol=1e-5)  # kept throughout
    assert 0.4 < old_share[0] < 0.8  # one repaint: most of the old paint is still there
    assert np.all(np.diff(old_share) < 0)  # each frame of settling takes more of it away
    assert old_share[-1] < 0.15
    settled = glue(changed, textured(3))  # glued again: a new fresh output is not shown
    np.testing.assert_allclose(settled[left], shown[left], atol=1e-5)


def test_a_slow_fade_is_repainted_once_it_adds_up() -> None:
    """0.03 a frame never passes a tolerance of 0.1 between two frames; against the photo
    the stroke was painted on it does by the fourth."""
    photo, painting = 0.1 + 0.5 * textured(0), textured(1)  # brightened, it is never clipped
    glue = Glue(0.1, fixed_flow(still()), fresh_where_repainted)
    glue(photo, painting)
    repainted_at = None
    for step in range(1, 8):
        fresh = textured(10 + step)
        shown = glue(photo + np.float32(0.03 * step), fresh)
        if np.array_equal(shown, fresh):
            repainted_at = step
            break
        np.testing.assert_allclose(shown, painting, atol=1e-5)
    assert repainted_at == 4


def test_noise_does_not_repaint() -> None:
    rng = np.random.default_rng(5)
    photo, painting = textured(0), textured(1)
    glue = Glue(0.05, fixed_flow(still()), fresh_where_repainted)
    glue(photo, painting)
    for step in range(6):
        noisy = photo + rng.normal(0, 0.01, photo.shape).astype(np.float32)
        shown = glue(noisy, textured(20 + step))
    np.testing.assert_allclose(shown, painting, atol=1e-5)


def test_a_zoom_is_repainted_once_the_strokes_have_grown_past_the_limit() -> None:
    """A backward flow that maps each frame onto 0.9 of the previous one magnifies by 1/0.9
    along each axis a frame: 0.105 of log, so the fifth frame passes 0.5."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    flow = np.stack([(xs - W / 2) * -0.1, (ys - H / 2) * -0.1]).astype(np.float32)
    np.testing.assert_allclose(distortion(flow)[4:-4, 4:-4], -np.log(0.9), rtol=1e-4)
    photo = np.full((3, H, W), 0.5, np.float32)  # flat: only the distortion can repaint
    glue = Glue(0.1, fixed_flow(flow), fresh_where_repainted)
    glue(photo, textured(1))
    steps = [np.array_equal(glue(photo, fresh := textured(10 + k)), fresh) for k in range(1, 6)]
    assert -5 * np.log(0.9) > GLUE_STRETCH > -4 * np.log(0.9)
    assert steps == [False, False, False, False, True]


def test_a_shear_counts_though_it_keeps_the_area() -> None:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    shear = np.stack([0.3 * (ys - H / 2), np.zeros_like(ys)]).astype(np.float32)
    singular = np.linalg.svd(np.array([[1, 0.3], [0, 1]]), compute_uv=False)
    np.testing.assert_allclose(distortion(shear)[4:-4, 4:-4], np.log(singular[0]), rtol=1e-4)
    np.testing.assert_allclose(distortion(still()), 0, atol=1e-6)


def test_a_distortion_undone_is_not_counted_twice() -> None:
    """The map back to the painted frame is composed, not its distortions summed: a shear
    and then its inverse leave the strokes undistorted (summed, the two would pass the limit
    and flow noise would repaint everything after a while)."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    there = np.stack([0.6 * (ys - H / 2), np.zeros_like(ys)]).astype(np.float32)
    flows = iter([there, -there])
    mask = np.ones((H, W), np.float32)
    assert 2 * float(distortion(there)[H // 2, W // 2]) > GLUE_STRETCH
    glue = Glue(0.1, lambda previous, current: (next(flows), mask), fresh_where_repainted)
    photo = np.full((3, H, W), 0.5, np.float32)  # flat: only the distortion can repaint
    glue(photo, textured(1))
    marked = np.full((3, H, W), 2.0, np.float32)  # a value no glued (clipped) pixel has
    glue(photo, marked)
    shown = glue(photo, marked)
    middle = shown[:, 16:-16, 16:-16]  # the shear moves it at most 4.8 px: never from outside
    assert middle.max() <= 1.0
    assert np.abs(middle - textured(1)[:, 16:-16, 16:-16]).mean() < 0.02  # moved back


def test_what_comes_from_outside_the_previous_frame_is_repainted() -> None:
    """A pan: the new columns at the left edge come from outside the previous frame, where a
    warp can only repeat its border (a flat wall would pass the photo's test)."""
    photo, painting = np.full((3, H, W), 0.5, np.float32), textured(1)
    flow = still()
    flow[0] = -4.0  # the scene moved 4 px to the right
    glue = Glue(0.1, fixed_flow(flow), fresh_where_repainted)
    glue(photo, painting)
    fresh = textured(2)
    shown = glue(photo, fresh)
    assert np.array_equal(shown[..., :4], fresh[..., :4])
    np.testing.assert_allclose(shown[..., 10:], painting[..., 6:-4], atol=1e-4)  # past the seam
    assert glue.kept is not None  # what it kept, for tools/glue_parts.py
    assert not glue.kept[:, :4].any() and glue.kept[:, 4:].all()


def test_photo_change_ignores_what_a_box_averages_out() -> None:
    photo = textured(0)
    checker = np.indices((H, W)).sum(0) % 2 * 0.04 - 0.02  # ±0.02: averages to ~0
    assert photo_change(photo + checker.astype(np.float32), photo).max() < 0.05
    assert photo_change(photo + 0.2, photo).min() == pytest.approx(0.2, abs=1e-5)


def test_the_temporal_blend_runs_the_glue_on_batches_and_tensors() -> None:
    torch = pytest.importorskip("torch")
    assert "glue" in BLEND_KINDS
    photos = np.stack([textured(0)] * 3)
    fresh = np.stack([textured(1), textured(2), textured(3)])
    shown = TemporalBlend(0.1, kind="glue")(torch.from_numpy(photos), torch.from_numpy(fresh))
    assert isinstance(shown, torch.Tensor)
    for frame in shown.numpy():  # a still clip: the first painting throughout
        np.testing.assert_allclose(frame, fresh[0], atol=1e-4)


def test_a_video_stream_glues_a_still_clips_noisy_frames_to_the_first_painting(
    tmp_path: Path,
) -> None:
    """Through VideoStream on the onnxruntime backend: a still scene with sensor noise keeps
    the first frame's painting (a pass-through would repaint the noise every frame)."""
    from fastnst.export import ModelInfo, save_model
    from fastnst.infer.temporal_blend import VideoStream
    from fastnst.model import NetConfig, TransformerNet
    from fastnst.runtime.onnx_backend import OnnxStylizer

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=1, width=0.25, num_residual=1))
    model = save_model(net, tmp_path / "m.safetensors", ModelInfo(net={}, style_names=["a"]))
    stylizer = OnnxStylizer.load(model, "cpu")
    weights = np.array([1.0], np.float32)
    rng = np.random.default_rng(1)
    scene = 0.2 + 0.6 * textured(0)
    frames = np.stack([scene + rng.normal(0, 0.01, scene.shape) for _ in range(4)])
    frames = frames.astype(np.float32)
    glued = VideoStream(False, blend_kind="glue", flow_size=64, smooth=0)(stylizer, frames, weights)
    fresh = VideoStream(False, blend=0, flow_size=64, smooth=0)(stylizer, frames, weights)
    np.testing.assert_array_equal(glued[0], fresh[0])
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # the border's flow aside
    assert (
        np.abs(fresh[1:] - fresh[:1])[inner].mean()
        > 3 * np.abs(glued[1:] - glued[:1])[inner].mean()
    )


def test_blend_look_draws_the_clip_over_one_row_per_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tools/blend_look.py: the clip's frames on top, then each kind's, side by side."""
    pytest.importorskip("torch")
    from fastnst.export import ModelInfo, save_model
    from fastnst.model import NetConfig, TransformerNet

    from conftest import load_tool, panning_frames, write_clip

    net = TransformerNet(NetConfig(num_styles=1, width=0.25, num_residual=1))
    model = save_model(net, tmp_path / "m.safetensors", ModelInfo(net={}, style_names=["a"]))
    clip = write_clip(tmp_path / "pan.mp4", panning_frames(4, 48, 64, speed=2))
    out = tmp_path / "look.png"
    argv = ["blend_look", "--model", str(model), "--clip", str(clip), "--style", "0"]
    argv += ["--long-side", "64", "--frames", "1", "3", "--out", str(out)]
    monkeypatch.setattr("sys.argv", argv)
    load_tool("blend_look").main()
    import cv2

    image = cv2.imread(str(out))
    assert image.shape == (3 * 48, 2 * 64, 3)  # clip, detail, glue; two frames
    clip_row, detail_row = image[:48].astype(int), image[48:96].astype(int)
    assert np.abs(clip_row - detail_row).mean() > 10  # stylized, not the clip again


def test_chain_moves_tool_finds_bicubic_lifting_and_the_glue_keeping_the_strokes() -> None:
    """tools/chain_moves.py: after 30 random sub-pixel moves of a stroke picture, bicubic
    alone has lifted its middle band, bilinear blurred it away, and the glue keeps it."""
    from conftest import load_tool

    tool = load_tool("chain_moves")
    size = (3, 64, 96)
    picture = (0.5 + 0.25 * np.sin(np.arange(96, dtype=np.float32) * 2 * np.pi / 6))[None, None]
    picture = np.broadcast_to(picture, size) + 0.05 * np.random.default_rng(0).random(size)
    picture = picture.astype(np.float32)
    steps = tool.shifts(30, seed=0)
    base = tool.band_energy(picture)
    middle = 2  # 0.1-0.2 cycles per pixel: the stripes' 1/6
    lifted = tool.band_energy(tool.moved(picture, "bicubic", steps)[-1])
    blurred = tool.band_energy(tool.moved(picture, "bilinear", steps)[-1])
    glued = tool.moved(picture, "glue", steps)[-1]
    assert lifted[middle] > 1.3 * base[middle]
    assert blurred[middle] < 0.5 * base[middle]
    assert 0.8 < tool.band_energy(glued)[middle] / base[middle] < 1.2
