"""fastnst optimize --video (Ruder et al. 2016): warped start, masked temporal loss, the video
keeps its frames, rate and audio, and the temporal term lowers the warping error."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch

from fastnst.cli import main as fastnst
from fastnst.images import tensor_to_pil
from fastnst.optimize.gatys import build_loss, load_loss_settings
from fastnst.optimize.video import VideoOptimizer, VideoSettings, frame_motion, warped_start
from fastnst.video.flow import estimate_flow
from fastnst.video.losses import short_term_temporal_loss
from fastnst.video.masks import consistency_mask
from fastnst.video.metrics import warping_error
from fastnst.video.warp import warp

from conftest import panning_frames, write_clip

pytest.importorskip("cv2")
H, W = 32, 48


def stripes(size: int = 48) -> torch.Tensor:
    style = torch.zeros(3, size, size)
    style[0, :, ::4] = 1
    style[2, ::3, :] = 1
    return style


@pytest.fixture(scope="module")
def loss_fn():
    return build_loss(load_loss_settings(None), [stripes()], torch.device("cpu"))


def test_short_term_loss_counts_trusted_pixels_over_all_values() -> None:
    image, warped = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    image[0, :, 0, 0], image[0, :, 1, 1] = 1.0, 3.0
    trusted = torch.ones(1, 1, 2, 2)
    trusted[0, 0, 1, 1] = 0  # the pixel that differs by 3 is not trusted
    total, parts = short_term_temporal_loss(image, warped, trusted)
    assert total.item() == pytest.approx(3 * 1.0 / 12) and parts["temporal"] is total


def test_new_and_occluded_pixels_start_from_the_current_frame() -> None:
    frames = panning_frames(2, H, W)
    previous_result = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(3))
    motion = frame_motion(frames[:1], frames[1:])
    start = warped_start(previous_result, frames[1:], motion)
    # The camera pans right 2 px: the last two columns were not in the previous frame.
    assert motion.visible[..., -2:].sum() == 0
    assert torch.equal(start[..., -2:], frames[1:, :, :, -2:])
    # Elsewhere the start is the previous result carried along the flow, not the frame.
    seen = motion.visible.bool().expand_as(start)
    carried = warp(previous_result, motion.flow)
    assert torch.allclose(start[seen], carried[seen])
    assert (start[seen] - frames[1:][seen]).abs().mean() > 0.1
    # An occluded block (hand-made mask) comes from the frame as well.
    motion.visible[..., 4:10, 4:10] = 0
    start = warped_start(previous_result, frames[1:], motion)
    assert torch.equal(start[..., 4:10, 4:10], frames[1:, :, 4:10, 4:10])
    # The loss mask is the project's consistency mask (visible and off motion boundaries).
    backward = estimate_flow(frames[1:], frames[:1])
    forward = estimate_flow(frames[:1], frames[1:])
    assert torch.equal(
        frame_motion(frames[:1], frames[1:]).trusted, consistency_mask(backward, forward)
    )


def optimise(loss_fn, frames: torch.Tensor, weight: float, init: str) -> tuple[torch.Tensor, list]:
    optimizer = VideoOptimizer(loss_fn, VideoSettings(12, 6, weight, init, size=W))
    return torch.cat([optimizer(frame[None]) for frame in frames]), optimizer.losses


def test_temporal_term_lowers_the_warping_error(loss_fn) -> None:
    frames = panning_frames(6, H, W)
    independent, _ = optimise(loss_fn, frames, 0.0, "frame")
    warped_only, _ = optimise(loss_fn, frames, 0.0, "warped")
    temporal, losses = optimise(loss_fn, frames, 1000.0, "warped")
    errors = [warping_error(frames, out).mean for out in (independent, warped_only, temporal)]
    assert errors[2] < 0.8 * errors[1] and errors[2] < 0.5 * errors[0], errors
    # Stylized, not passed through: far from the frames' own (near-zero) warping error.
    assert (temporal - frames).abs().mean() > 0.05
    assert "temporal" not in losses[0] and all(entry["temporal"] > 0 for entry in losses[1:])


def _describe(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "frames": sum(1 for _ in container.decode(stream)),
            "rate": stream.average_rate,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "audio": len(container.streams.audio),
        }


def write_style(tmp_path: Path) -> Path:
    path = tmp_path / "style.png"
    tensor_to_pil(stripes()).save(path)
    return path


def test_cli_keeps_frames_rate_and_audio_and_scores_with_eval_video(tmp_path: Path, capsys) -> None:
    frames = panning_frames(6, H, W)
    clip = write_clip(tmp_path / "in.mp4", frames, rate=15, audio=True)
    style = write_style(tmp_path)
    out = tmp_path / "out" / "video.mp4"
    argv = [
        "optimize",
        "--video",
        str(clip),
        "--style",
        str(style),
        "--output",
        str(out),
        "--size",
        str(W),
        "--steps",
        "6",
        "--frame-steps",
        "3",
        "--quiet",
        "--device",
        "cpu",
    ]
    assert fastnst(argv) == 0
    assert _describe(out) == _describe(clip) and _describe(out)["audio"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["video.mp4"]
    assert "6 frames: mean style" in capsys.readouterr().out

    small = tmp_path / "small.mp4"
    assert fastnst([*argv[:6], str(small), "--size", "24", "--steps", "2", "--quiet"]) == 0
    assert _describe(small)["size"] == (24, 16) and _describe(small)["frames"] == 6

    # eval-video scores the written video beside the input; the input scored as a
    # "stylized" video is its own floor.
    report = tmp_path / "report.json"
    code = fastnst(
        [
            "eval-video",
            str(clip),
            "--stylized",
            str(out),
            "--stylized",
            str(clip),
            "--target-style",
            str(style),
            "--style-size",
            "48",
            "--json",
            str(report),
        ]
    )
    assert code == 0
    floor, optimised, itself = json.loads(report.read_text())["results"]
    assert itself["warping_error"] == pytest.approx(floor["warping_error"])
    assert optimised["warping_error"] > 2 * floor["warping_error"]
    assert optimised["style_loss"] < itself["style_loss"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--video", "missing.mp4"], "no such video"),
        (["--output", "out.txt"], "cannot write video"),
        (["--temporal-weight", "-1"], "--temporal-weight"),
        (["--frame-steps", "-2"], "--frame-steps"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    clip = write_clip(tmp_path / "in.mp4", panning_frames(3, H, W))
    style = write_style(tmp_path)
    args = {"--video": str(clip), "--style": str(style), "--output": "out.mp4"}
    for key, value in zip(extra[::2], extra[1::2], strict=True):
        args[key] = value
    args["--video"] = str(tmp_path / Path(args["--video"]).name)
    args["--output"] = str(tmp_path / args["--output"])
    argv = [item for pair in args.items() for item in pair]
    before = set(tmp_path.iterdir())
    assert fastnst(["optimize", *argv, "--size", "32", "--steps", "1", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert set(tmp_path.iterdir()) == before


def test_eval_video_refuses_a_stylized_video_of_another_length(tmp_path: Path, capsys) -> None:
    clip = write_clip(tmp_path / "in.mp4", panning_frames(4, H, W))
    short = write_clip(tmp_path / "short.mp4", panning_frames(3, H, W))
    style = write_style(tmp_path)
    code = fastnst(
        [
            "eval-video",
            str(clip),
            "--stylized",
            str(short),
            "--target-style",
            str(style),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error:") and "must match" in err


def test_weight_overrides_reach_the_loss(tmp_path: Path) -> None:
    """--style-weight 0 leaves only the content loss, which is 0 at the photo: L-BFGS has
    nothing to do and the result is the photo; with the style weight it moves away."""
    from fastnst.images import load_image

    photo = tmp_path / "photo.png"
    tensor_to_pil(panning_frames(1, H, W)[0]).save(photo)
    style = write_style(tmp_path)
    results = {}
    for weight in ("0", "1"):
        out = tmp_path / f"out{weight}.png"
        argv = [
            "optimize",
            "--content",
            str(photo),
            "--style",
            str(style),
            "--output",
            str(out),
            "--size",
            str(W),
            "--steps",
            "3",
            "--style-weight",
            weight,
            "--content-weight",
            "1",
            "--quiet",
        ]
        assert fastnst(argv) == 0
        results[weight] = (load_image(out) - load_image(photo)).abs().mean().item()
    assert results["0"] < 1e-3 and results["1"] > 5e-3
