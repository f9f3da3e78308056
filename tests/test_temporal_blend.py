"""Flow-guided smoothing at inference: less flicker than per-frame output, no ghosts on
motion unlike the plain blend of consecutive outputs, and (the default kind) the strokes'
contrast kept where the average would lower it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastnst.images import resize_long_side
from fastnst.infer.temporal_blend import (
    CLAMP_MARGIN,
    DETAIL_SIGMA,
    MAX_DETAIL_GAIN,
    TRUST_THRESHOLD,
    InputSmooth,
    TemporalBlend,
    keep_detail,
    within_neighbours,
)
from fastnst.runtime.arrays import gaussian_blur
from fastnst.runtime.flow import flow_field, trust_mask
from fastnst.runtime.flow import warp as np_warp
from fastnst.video.flow import flow_pair
from fastnst.video.warp import downscale_flow, warp

pytest.importorskip("cv2")

SHIFT, FRAMES = 4, 6


def _scene(rng: torch.Generator) -> torch.Tensor:
    """A smooth random texture wider than the frames, so frames can slide across it."""
    coarse = torch.rand(1, 3, 20, 40, generator=rng)
    return F.interpolate(coarse, size=(80, 160), mode="bicubic", align_corners=False).clamp(0, 1)


def _clip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames panning right by SHIFT px, their clean "stylization" and a flickering one."""
    rng = torch.Generator().manual_seed(0)
    scene = _scene(rng)
    frames = torch.cat([scene[..., :, SHIFT * t : SHIFT * t + 96] for t in range(FRAMES)])
    clean = 1 - frames
    flicker = (clean + 0.08 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
    return frames, clean, flicker


def _run(blend: TemporalBlend, frames: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """In batches of two, as the video pipeline calls it."""
    return torch.cat([blend(frames[i : i + 2], stylized[i : i + 2]) for i in range(0, FRAMES, 2)])


def _flicker(outputs: torch.Tensor) -> float:
    """Mean change between consecutive outputs after undoing the known pan (interior only)."""
    now = outputs[1:, :, 8:-8, 8 : 96 - SHIFT - 8]
    before = outputs[:-1, :, 8:-8, 8 + SHIFT : 96 - 8]
    return float((now - before).abs().mean())


def _error(outputs: torch.Tensor, clean: torch.Tensor) -> float:
    return float((outputs - clean)[1:, :, 8:-8, 8:-8].abs().mean())


@pytest.mark.parametrize("kind", ["detail", "flow"])
def test_flow_blend_removes_flicker_without_ghosts(kind: str) -> None:
    frames, clean, flicker = _clip()
    flow = _run(TemporalBlend(0.6, flow_size=96, kind=kind), frames, flicker)
    plain = _run(TemporalBlend(0.6, kind="plain"), frames, flicker)
    assert _flicker(flow) < 0.7 * _flicker(flicker)
    # The plain blend mixes in the previous frame where the scene was: a smeared picture.
    assert _error(flow, clean) < 0.8 * _error(plain, clean)
    assert _error(flow, clean) < _error(flicker, clean)


def test_first_frame_and_zero_weight_pass_through() -> None:
    frames, _, flicker = _clip()
    assert torch.equal(TemporalBlend(0.0)(frames, flicker), flicker)
    first = TemporalBlend(0.5, flow_size=96)(frames[:1], flicker[:1])
    assert torch.equal(first, flicker[:1])


def test_weight_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        TemporalBlend(1.0)
    with pytest.raises(ValueError, match="unknown blend kind"):
        TemporalBlend(0.5, kind="median")


def _texture(rng: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """Zero-mean strokes of a few pixels (noise blurred by [1, 2, 1] twice)."""
    noise = torch.randn(shape, generator=rng)
    kernel = torch.tensor([1.0, 2.0, 1.0]) / 4
    kernel = (kernel[:, None] * kernel[None, :]).expand(shape[1], 1, 3, 3)
    return F.conv2d(
        F.conv2d(noise, kernel, padding=1, groups=shape[1]), kernel, padding=1, groups=shape[1]
    )


def _painted_clip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A pan over a smooth scene, "stylized" with strokes: half of them painted on the scene
    (they move with it), half repainted at every frame, as a feed-forward network repaints
    its texture. Returns the frames, the per-frame outputs, and the strokes alone."""
    rng = torch.Generator().manual_seed(1)
    scene = F.interpolate(torch.rand(1, 3, 5, 10, generator=rng), size=(80, 160), mode="bicubic")
    scene = scene.clamp(0.2, 0.8)
    painted = _texture(rng, (1, 3, 80, 160))
    frames, strokes = [], []
    for t in range(FRAMES):
        window = slice(SHIFT * t, SHIFT * t + 96)
        frames.append(scene[..., window])
        strokes.append(painted[..., window] + _texture(rng, (1, 3, 80, 96)))
    frames_t, strokes_t = torch.cat(frames), 0.15 * torch.cat(strokes)
    return frames_t, (frames_t + strokes_t).clamp(0, 1), strokes_t


def _detail_energy(outputs: torch.Tensor) -> float:
    """Mean energy of what a Gaussian of DETAIL_SIGMA takes out (interior, frames 1..)."""
    energies = []
    for out in outputs[1:].numpy():
        detail = out - gaussian_blur(out, DETAIL_SIGMA)
        energies.append(np.square(detail)[:, 8:-8, 8:-8].mean())
    return float(np.mean(energies))


def test_detail_blend_keeps_the_strokes_contrast() -> None:
    """The average of two differently painted frames has fainter strokes; the default blend
    restores their energy to the fresh frame's, and is still steadier than no blend."""
    frames, painted, _ = _painted_clip()
    detail = _run(TemporalBlend(0.6, flow_size=96), frames, painted)
    average = _run(TemporalBlend(0.6, flow_size=96, kind="flow"), frames, painted)
    per_frame = _detail_energy(painted)
    assert _detail_energy(average) < 0.8 * per_frame
    assert 0.9 * per_frame < _detail_energy(detail) < 1.1 * per_frame
    assert _flicker(detail) < 0.8 * _flicker(painted)


def test_keep_detail_leaves_agreeing_frames_and_caps_its_gain() -> None:
    frames, painted, _ = _painted_clip()
    fresh = painted[1].numpy()
    # Nothing carried, or the same strokes carried: nothing to restore.
    np.testing.assert_allclose(keep_detail(fresh, fresh), fresh, atol=1e-5)
    # A blend with no strokes left at all gets at most MAX_DETAIL_GAIN x its (tiny) detail.
    flat = gaussian_blur(fresh, 4 * DETAIL_SIGMA)
    restored = keep_detail(flat, fresh)
    gained = np.abs(restored - gaussian_blur(flat, DETAIL_SIGMA)).max()
    assert gained <= MAX_DETAIL_GAIN * np.abs(flat - gaussian_blur(flat, DETAIL_SIGMA)).max() + 1e-5


def _torch_blend(
    alpha: float, flow_size: int, photos: torch.Tensor, stylized: torch.Tensor
) -> torch.Tensor:
    """The blend composed from the training side's tensor helpers (torch flow masks, warping
    by ``grid_sample``): what the runtime's NumPy/OpenCV blend must reproduce."""
    previous_photo = previous_output = None
    outputs = []
    for photo, output in zip(photos[:, None], stylized[:, None], strict=True):
        if previous_output is not None:
            size = tuple(photo.shape[-2:])
            small_prev = resize_long_side(previous_photo, min(flow_size, max(size)))
            small_cur = resize_long_side(photo, min(flow_size, max(size)))
            flow, mask = flow_pair(small_prev, small_cur)
            flow = downscale_flow(flow, size)
            trusted = (F.interpolate(mask, size=size, mode="bilinear") > TRUST_THRESHOLD).float()
            output = torch.lerp(output, warp(previous_output, flow), alpha * trusted)
        previous_photo, previous_output = photo, output
        outputs.append(output)
    return torch.cat(outputs)


def test_numpy_blend_agrees_with_the_tensor_helpers() -> None:
    """One blend for both backends (NumPy + OpenCV); against the same maths on torch's
    flow/mask/warp helpers: PSNR ≥ 50 dB, worst pixel < 0.02 (measured 58.4 dB and 0.0072
    here with the mask threshold at 0.5; with 0.99, 62 dB and 0.076 on six frames of
    cockatoo.mp4 at 640x360, where a few mask pixels fall the other way). OpenCV samples at
    1/32 px; torch's flow upscaling is antialiased."""
    frames, _, flicker = _clip()
    reference = _torch_blend(0.6, 48, frames, flicker).numpy()
    blended = TemporalBlend(0.6, 48, "flow")(frames.numpy(), flicker.numpy())
    assert isinstance(blended, np.ndarray) and blended.dtype == np.float32
    psnr = 10 * np.log10(1 / np.mean((blended - reference) ** 2))
    assert psnr >= 50, psnr
    assert np.abs(blended - reference).max() < 0.02
    # Tensors in, tensors out, the same values.
    as_tensor = _run(TemporalBlend(0.6, 48, "flow"), frames, flicker)
    assert torch.allclose(as_tensor, torch.from_numpy(blended), atol=1e-6)


def test_numpy_masks_and_warp_match_torch() -> None:
    frames, _, _ = _clip()
    previous, current = frames[:1], frames[1:2]
    backward, mask = flow_pair(previous, current)
    np_backward = flow_field(current[0].numpy(), previous[0].numpy())
    np_forward = flow_field(previous[0].numpy(), current[0].numpy())
    assert np.array_equal(np_backward, backward[0].numpy())
    np_mask = trust_mask(np_backward, np_forward)
    assert 0.5 < np_mask.mean() < 1  # the pan uncovers a strip: not all trusted
    assert np.mean(np_mask == mask[0, 0].numpy()) > 0.999
    # OpenCV samples at 1/32 px: the warped smooth frame is off by 0.0046 at most here.
    warped = np_warp(previous[0].numpy(), np_backward)
    assert np.abs(warped - warp(previous, backward)[0].numpy()).max() < 1e-2


def _noisy_pan() -> tuple[torch.Tensor, torch.Tensor]:
    """Frames panning right by SHIFT px with sensor-like noise, and the clean frames."""
    rng = torch.Generator().manual_seed(1)
    scene = _scene(rng)
    clean = torch.cat([scene[..., :, SHIFT * t : SHIFT * t + 96] for t in range(FRAMES)])
    noisy = (clean + 0.04 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
    return noisy, clean


def test_input_smoothing_removes_noise_along_the_motion() -> None:
    """What the network sees: less of each frame's own noise (steadier), and the frame's own
    content (the previous frame mixed in where it was would smear the pan)."""
    noisy, clean = _noisy_pan()
    smooth = InputSmooth(0.6, flow_size=96)
    seen = torch.cat([smooth(noisy[i : i + 2]) for i in range(0, FRAMES, 2)])
    assert _flicker(seen) < 0.8 * _flicker(noisy)
    assert _error(seen, clean) < 0.85 * _error(noisy, clean)
    unmoved = noisy.clone()
    for t in range(1, FRAMES):  # the same share of the previous frame, not moved
        unmoved[t] = noisy[t] + 0.6 * (unmoved[t - 1] - noisy[t])
    assert _error(seen, clean) < 0.7 * _error(unmoved, clean)


def test_input_smoothing_passes_the_first_frame_and_zero_through() -> None:
    noisy, _ = _noisy_pan()
    assert InputSmooth(0.0)(noisy) is noisy
    smooth = InputSmooth(0.5, flow_size=96)
    assert torch.equal(smooth(noisy[:1]), noisy[:1])
    assert torch.equal(smooth(noisy[:1, :, :40, :60]), noisy[:1, :, :40, :60])  # a new size
    smoothed = smooth(noisy[:2])  # a NumPy caller gets NumPy, a torch caller torch
    assert isinstance(smoothed, torch.Tensor) and not torch.equal(smoothed[1], noisy[1])
    assert isinstance(InputSmooth(0.5, flow_size=96)(noisy[:2].numpy()), np.ndarray)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        InputSmooth(1.0)


def test_input_smoothing_follows_a_change_of_light() -> None:
    """A fade (the still texture brightening each frame) is not carried as a lag: only the
    detail is carried, the light level is the frame's own."""
    rng = torch.Generator().manual_seed(2)
    texture = _scene(rng)[..., :, :96] * 0.5
    frames = torch.cat([texture + 0.08 * t for t in range(FRAMES)])
    seen = InputSmooth(0.7, flow_size=96)(frames)
    unclamped = frames.clone()
    for t in range(1, FRAMES):  # the same average without the clamp (the flow is zero)
        unclamped[t] = frames[t] + 0.7 * (unclamped[t - 1] - frames[t])
    assert _error(unclamped, frames) > 0.1
    assert _error(seen, frames) < 0.2 * _error(unclamped, frames)


def test_what_is_carried_stays_near_the_frames_own_values() -> None:
    """The clamp: a carried value inside the frame's 3x3 range is kept; one far outside (a
    wrongly lined-up edge) is pulled to the range's edge plus the margin."""
    photo = np.full((3, 8, 8), 0.5, np.float32)
    photo[:, :, 4:] = 0.6  # an edge: near it the range is [0.5, 0.6]
    carried = np.full((3, 8, 8), 0.55, np.float32)
    np.testing.assert_array_equal(within_neighbours(carried, photo), carried)
    carried[:, 0, 0], carried[:, 0, 4] = 0.0, 1.0
    kept = within_neighbours(carried, photo)
    np.testing.assert_allclose(kept[:, 0, 0], 0.5 - CLAMP_MARGIN)
    np.testing.assert_allclose(kept[:, 0, 4], 0.6 + CLAMP_MARGIN)
