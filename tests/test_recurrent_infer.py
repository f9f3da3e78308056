"""A recurrent model at inference (issue 21): the guide made from the previous output, the
same numbers on torch and onnxruntime, the still network for photos, and video through the
command on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fastnst.export import ModelInfo, load_model, save_model
from fastnst.infer import temporal_blend
from fastnst.infer.cli import describe_model, main
from fastnst.infer.stylize import Stylizer
from fastnst.infer.temporal_blend import (
    DEFAULT_BLEND,
    DEFAULT_GLUE,
    DEFAULT_SMOOTH,
    InputSmooth,
    Recurrence,
    TemporalBlend,
    VideoStream,
)
from fastnst.model import NetConfig, TransformerNet, still_network
from fastnst.runtime.onnx_backend import OnnxStylizer
from tests.conftest import panning_frames, write_clip

pytest.importorskip("cv2")


def tiny_recurrent_model(folder: Path, guide_head: bool = False) -> Path:
    """A tiny recurrent model whose guide weights are large, so the guide shows."""
    torch.manual_seed(3)
    config = NetConfig(
        num_styles=2, width=0.25, num_residual=1, recurrent=True, guide_head=guide_head
    )
    net = TransformerNet(config)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.3 * torch.randn_like(param))
        net.encoder[0].conv.weight[:, 3:].mul_(10)
    path = folder / f"rec{'_head' if guide_head else ''}.safetensors"
    return save_model(net, path, ModelInfo(net={}, style_names=["a", "b"]))


@pytest.fixture(scope="module")
def recurrent_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_recurrent_model(tmp_path_factory.mktemp("rec"))


def test_the_guide_is_the_previous_output_moved_along_the_flow() -> None:
    frames = panning_frames(3, 48, 64, speed=2).numpy()
    outputs = frames[:, ::-1].copy()  # any "stylization": here the colours swapped
    guides: list[np.ndarray] = []

    def step(photo: np.ndarray, guide: np.ndarray) -> np.ndarray:
        guides.append(guide[0])
        return photo[:, ::-1]

    out = Recurrence(flow_size=64)(frames, step)
    np.testing.assert_allclose(out, outputs)
    assert not guides[0].any()  # the first frame has no previous one
    rgb, trusted = guides[1][:3], guides[1][3]
    # The camera pans right by 2 px: pixel x of frame 1 is pixel x + 2 of frame 0.
    inner = trusted[8:-8, 8:-10] > 0
    assert inner.mean() > 0.9
    moved = outputs[0][:, 8:-8, 10:-8]
    assert np.abs(rgb[:, 8:-8, 8:-10] - moved)[:, inner].mean() < 0.02
    assert np.abs(rgb[:, 8:-8, 8:-10] - outputs[0][:, 8:-8, 8:-10])[:, inner].mean() > 0.05


@pytest.mark.parametrize("guide_head", [False, True])
def test_torch_and_onnx_agree_guided_and_still(
    recurrent_model: Path, tmp_path: Path, guide_head: bool
) -> None:
    if guide_head:  # the full-size head sees the guide too
        recurrent_model = tiny_recurrent_model(tmp_path, guide_head=True)
    torch_stylizer = Stylizer.load(recurrent_model, "cpu", "fp32")
    onnx_stylizer = OnnxStylizer.load(recurrent_model, "cpu")
    assert torch_stylizer.recurrent and onnx_stylizer.recurrent
    images = panning_frames(1, 40, 56).numpy()
    guide = np.concatenate([panning_frames(1, 40, 56, seed=5).numpy(), np.ones((1, 1, 40, 56))], 1)
    guide = guide.astype(np.float32)
    weights = np.array([0.0, 1.0], np.float32)
    by_torch = torch_stylizer.guided(
        torch.from_numpy(images), torch.from_numpy(weights), torch.from_numpy(guide)
    )
    by_onnx = onnx_stylizer.guided(images, weights, guide)
    assert np.abs(by_torch.numpy() - by_onnx).max() < 1e-4
    still = onnx_stylizer(images, weights)
    assert np.abs(still - by_onnx).mean() > 0.01  # the guide matters
    net, _ = load_model(recurrent_model)
    with torch.no_grad():
        reference = still_network(net)(torch.from_numpy(images), torch.from_numpy(weights)[None])
    assert np.abs(still - reference.numpy()).max() < 1e-4
    assert (
        np.abs(
            torch_stylizer(torch.from_numpy(images), torch.from_numpy(weights)).numpy() - still
        ).max()
        < 1e-4
    )


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_video_runs_each_frame_with_its_guide(
    recurrent_model: Path, tmp_path: Path, backend: str
) -> None:
    av = pytest.importorskip("av")
    clip = write_clip(tmp_path / "in.mp4", panning_frames(4, 48, 64, speed=2))
    out = tmp_path / "out.mp4"
    args = ["--model", str(recurrent_model), "--device", "cpu", "--quiet", "--backend", backend]
    assert (
        main([*args, "--video", str(clip), "--output", str(out), "--style", "1", "--crf", "0"]) == 0
    )
    net, info = load_model(recurrent_model)
    still_model = save_model(still_network(net), tmp_path / "still.safetensors", info)
    still_out = tmp_path / "still.mp4"
    assert (
        main(
            [
                *args[:1],
                str(still_model),
                *args[2:],
                "--video",
                str(clip),
                "--output",
                str(still_out),
                "--style",
                "1",
                "--crf",
                "0",
            ]
        )
        == 0
    )

    def frames(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])

    video, still = frames(out).astype(np.float64), frames(still_out).astype(np.float64)
    difference = np.abs(video - still).mean(axis=(1, 2, 3))
    assert len(video) == 4
    assert difference[0] < 0.5  # the first frame has no guide: the still network
    assert difference[1:].min() > 4  # later ones are guided by the previous output


def test_the_app_webcam_guides_a_recurrent_models_frames(recurrent_model: Path) -> None:
    from fastnst.app.live import stylize_frame

    stylizer = OnnxStylizer.load(recurrent_model, "cpu")
    weights = np.array([1.0, 0.0], np.float32)
    frames = (panning_frames(2, 48, 64).numpy().transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    stream = VideoStream(recurrent=True, blend=0)
    guided = [stylize_frame(stylizer, f, weights, 64, stream=stream) for f in frames]
    still = [stylize_frame(stylizer, f, weights, 64) for f in frames]
    assert np.array_equal(guided[0], still[0])  # nothing to carry yet
    assert np.abs(guided[1].astype(int) - still[1]).mean() > 2


def count_flows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets an item for each flow the streams compute from now on."""
    calls: list[int] = []
    real = temporal_blend.trusted_flow

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(temporal_blend, "trusted_flow", counted)
    return calls


def test_a_stream_computes_one_flow_per_frame_pair_for_guide_and_blend(
    recurrent_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VideoStream = Recurrence, then the finish, then the blend, as composed apart; the
    blend reuses the guide's flow instead of computing its own (the input smoothing is off
    here; the next test composes it)."""
    stylizer = OnnxStylizer.load(recurrent_model, "cpu")
    weights = np.array([0.0, 1.0], np.float32)
    frames = panning_frames(5, 48, 64, speed=2).numpy()
    calls = count_flows(monkeypatch)
    stream = VideoStream(recurrent=True, flow_size=64, smooth=0)
    shown = np.concatenate(
        [stream(stylizer, frames[:3], weights, 0.8), stream(stylizer, frames[3:], weights, 0.8)]
    )
    assert len(calls) == 4  # one per pair of consecutive frames
    calls.clear()
    recurrence, blend = Recurrence(64), TemporalBlend(DEFAULT_BLEND, 64)
    raw = recurrence(frames, lambda photo, guide: stylizer.guided(photo, weights, guide))
    apart = blend(frames, stylizer.finish(raw, frames, 0.8, False))
    assert len(calls) == 8
    np.testing.assert_allclose(shown, apart, atol=1e-6)
    unblended = VideoStream(True, 0, 64, smooth=0)(stylizer, frames, weights, 0.8)
    assert np.abs(shown[1:] - unblended[1:]).mean() > 1e-3  # the blend did something


@pytest.mark.parametrize("recurrent", [True, False])
def test_a_smoothing_stream_shows_the_network_the_smoothed_frames(
    recurrent_model: Path, tmp_path: Path, recurrent: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --input-smooth the network sees InputSmooth's frames; the strength's mix, the
    guide and the blend still follow the clip's own; smoothing, guide and blend share one
    flow a pair."""
    model = recurrent_model
    if not recurrent:
        net, info = load_model(recurrent_model)
        model = save_model(still_network(net), tmp_path / "still.safetensors", info)
    stylizer = OnnxStylizer.load(model, "cpu")
    weights = np.array([0.0, 1.0], np.float32)
    frames = panning_frames(5, 48, 64, speed=2).numpy()
    frames = np.clip(frames + np.random.default_rng(0).normal(0, 0.05, frames.shape), 0, 1)
    frames = frames.astype(np.float32)
    calls = count_flows(monkeypatch)
    stream = VideoStream(recurrent, blend=0.3, flow_size=64, blend_kind="detail", smooth=0.5)
    shown = np.concatenate(
        [stream(stylizer, frames[:3], weights, 0.8), stream(stylizer, frames[3:], weights, 0.8)]
    )
    assert len(calls) == 4  # one per pair of consecutive frames
    seen = InputSmooth(0.5, 64)(frames)
    if recurrent:
        step = lambda photo, guide: stylizer.guided(photo, weights, guide)  # noqa: E731
        raw = Recurrence(64)(frames, step, seen)
    else:
        raw = stylizer(seen, weights)
    styled = stylizer.finish(raw, frames, 0.8, False)  # mixed with the frames themselves
    np.testing.assert_allclose(shown, TemporalBlend(0.3, 64)(frames, styled), atol=1e-6)
    unsmoothed = VideoStream(recurrent, 0.3, 64, "detail", smooth=0)(stylizer, frames, weights, 0.8)
    np.testing.assert_array_equal(shown[0], unsmoothed[0])  # nothing to smooth with yet
    assert np.abs(shown[1:] - unsmoothed[1:]).mean() > 1e-3  # the smoothing did something


def test_video_blends_and_smooths_every_models_frames_by_default(
    recurrent_model: Path, tmp_path: Path
) -> None:
    """--input-smooth defaults to DEFAULT_SMOOTH for recurrent and still models; the blend to
    the detail kind at DEFAULT_BLEND for a recurrent model and to the glue at DEFAULT_GLUE
    for a still one; an explicit value (0 included) wins."""
    av = pytest.importorskip("av")
    clip = write_clip(tmp_path / "in.mp4", panning_frames(4, 48, 64, speed=2))
    net, info = load_model(recurrent_model)
    still_model = save_model(still_network(net), tmp_path / "still.safetensors", info)

    def video(model: Path, *blend: str) -> np.ndarray:
        out = tmp_path / f"{model.stem}{'_'.join(blend)}.mp4"
        args = ["--model", str(model), "--device", "cpu", "--quiet", "--style", "1"]
        assert main([*args, "--video", str(clip), "--output", str(out), "--crf", "0", *blend]) == 0
        with av.open(str(out)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return np.stack(frames).astype(np.float64)

    default = video(recurrent_model)
    np.testing.assert_array_equal(
        default,
        video(recurrent_model, "--temporal-blend", str(DEFAULT_BLEND), "--blend-kind", "detail"),
    )
    averaged = video(recurrent_model, "--blend-kind", "flow")
    assert np.abs(default[1:] - averaged[1:]).mean() > 0.1  # the detail was kept
    unblended = video(recurrent_model, "--temporal-blend", "0")
    assert np.abs(default[1:] - unblended[1:]).mean() > 1  # the blend changed later frames
    glued = video(recurrent_model, "--blend-kind", "glue")  # its own default weight
    np.testing.assert_array_equal(
        glued, video(recurrent_model, "--temporal-blend", str(DEFAULT_GLUE), "--blend-kind", "glue")
    )
    np.testing.assert_array_equal(glued[0], unblended[0])
    assert np.abs(glued[1:] - unblended[1:]).mean() > 1
    assert np.abs(glued[1:] - default[1:]).mean() > 1
    np.testing.assert_array_equal(
        default, video(recurrent_model, "--input-smooth", str(DEFAULT_SMOOTH))
    )
    unsmoothed = video(recurrent_model, "--input-smooth", "0")
    np.testing.assert_array_equal(default[0], unsmoothed[0])
    assert np.abs(default[1:] - unsmoothed[1:]).mean() > 0.1  # later frames were seen smoothed
    smoothed = video(still_model)  # a still model's frames are smoothed and blended too
    np.testing.assert_array_equal(
        smoothed, video(still_model, "--input-smooth", str(DEFAULT_SMOOTH))
    )
    np.testing.assert_array_equal(
        smoothed, video(still_model, "--blend-kind", "glue", "--temporal-blend", str(DEFAULT_GLUE))
    )
    detail_still = video(still_model, "--blend-kind", "detail")
    assert np.abs(smoothed[1:] - detail_still[1:]).mean() > 0.1  # glued, not the detail blend
    unblended_still = video(still_model, "--temporal-blend", "0")
    np.testing.assert_array_equal(smoothed[0], unblended_still[0])
    assert np.abs(smoothed[1:] - unblended_still[1:]).mean() > 1
    still = video(still_model, "--input-smooth", "0", "--temporal-blend", "0")
    np.testing.assert_array_equal(smoothed[0], still[0])
    smooth = f"video frames seen smoothed, --input-smooth {DEFAULT_SMOOTH}, and blended"
    detail = f"--blend-kind detail --temporal-blend {DEFAULT_BLEND}, by default"
    glue = f"--blend-kind glue --temporal-blend {DEFAULT_GLUE}, by default"
    assert f"recurrent ({smooth}, {detail}; each guided" in describe_model(str(recurrent_model))
    assert f"still ({smooth}, {glue})" in describe_model(str(still_model))
    assert np.abs(smoothed[1:] - still[1:]).mean() > 0.5


def test_the_app_shows_a_recurrent_models_clip_as_stylize_does(
    recurrent_model: Path, tmp_path: Path
) -> None:
    """The app's video tab: guided frames and the default blend, as `stylize --video` makes
    them (the same encoder settings, so the same file content)."""
    av = pytest.importorskip("av")
    from fastnst.app.core import stylize_clip

    clip = write_clip(tmp_path / "in.mp4", panning_frames(4, 48, 64, speed=2))
    by_app, by_cli, still = tmp_path / "app.mp4", tmp_path / "cli.mp4", tmp_path / "still.mp4"
    stylize_clip(OnnxStylizer.load(recurrent_model, "cpu"), clip, by_app, "b")
    args = ["--model", str(recurrent_model), "--backend", "onnx", "--quiet", "--style", "b"]
    assert main([*args, "--video", str(clip), "--output", str(by_cli)]) == 0
    net, info = load_model(recurrent_model)
    still_model = save_model(still_network(net), tmp_path / "s.safetensors", info)
    stylize_clip(OnnxStylizer.load(still_model, "cpu"), clip, still, "b")

    def frames(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return np.stack(decoded).astype(np.float64)

    assert np.abs(frames(by_app) - frames(by_cli)).mean() < 0.5
    assert np.abs(frames(by_app)[1:] - frames(still)[1:]).mean() > 4
