"""`fastnst eval-video --frontier`: flicker against style over models and blend weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from fastnst import CONF_DIR
from fastnst.cli import main as fastnst
from fastnst.distances import Distances
from fastnst.errors import UserError
from fastnst.evaluation.frontier import (
    LABEL_HEIGHT,
    LABEL_OFFSETS,
    FrontierPoint,
    Target,
    build_frontier,
    label_offsets,
    pareto_flags,
)
from fastnst.export import load_model, save_model
from fastnst.images import load_image, resize_long_side, tensor_to_pil
from fastnst.video.pairs import read_frames

from conftest import panning_frames, perturbed_model, write_clip


def point(name: str, x_floor: float, style: float) -> FrontierPoint:
    return FrontierPoint(name, name, 0.0, "none", x_floor / 1000, x_floor, style, 0.5)


def test_pareto_flags_keep_only_undominated_points() -> None:
    #         steady+stylish  flickery+stylish  steady+plain  dominated   duplicate of the first
    points = [(2.0, 1.0), (10.0, 0.5), (1.5, 3.0), (12.0, 1.2), (2.0, 1.0)]
    assert pareto_flags(points) == [True, True, True, False, True]


def test_build_frontier_compares_style_with_the_reference_and_checks_the_target() -> None:
    points = [
        point("classics", 18.0, 1.00),
        point("video", 1.6, 1.58),
        point("both", 1.9, 1.08),  # within 2x and +10 %
        point("worse", 20.0, 1.20),
    ]
    result = build_frontier(points, 0, Target(2.0, 10.0))
    assert [p.source for p in result] == ["classics", "both", "worse", "video"]  # by style
    by_name = {p.source: p for p in result}
    assert by_name["video"].style_vs_reference_pct == pytest.approx(58.0)
    assert [by_name[n].meets_target for n in ("classics", "both", "video")] == [False, True, False]
    assert by_name["both"].target_excess == 0
    assert by_name["video"].target_excess == pytest.approx(1.58 / 1.1 - 1)
    assert not by_name["worse"].pareto and by_name["both"].pareto
    with pytest.raises(UserError, match="--target"):
        Target(0.0, 10.0)


def model_with_loss(path: Path, scale: float, seed: int) -> Path:
    """A tiny model that records loss settings (random VGG weights), as eval-video needs."""
    perturbed_model(path, ["ink", "paint"], scale, seed)
    loss = yaml.safe_load((CONF_DIR / "loss" / "default.yaml").read_text())
    loss["vgg_weights"] = "random"
    net, info = load_model(path)
    info.loss = loss
    return save_model(net, path, info)


def style_folder(tmp_path: Path) -> Path:
    """Two small style images, ink and paint, in a folder for --styles."""
    styles = tmp_path / "styles"
    styles.mkdir()
    for name, seed in (("ink", 3), ("paint", 4)):
        tensor_to_pil(panning_frames(1, 48, 48, seed=seed)[0]).save(styles / f"{name}.png")
    return styles


def test_eval_video_prints_and_plots_the_frontier(tmp_path: Path, capsys) -> None:
    pytest.importorskip("cv2")
    clip = write_clip(tmp_path / "pan.mp4", panning_frames(6, 48, 64))
    styles = style_folder(tmp_path)
    first = model_with_loss(tmp_path / "a.safetensors", 0.02, 1)
    second = model_with_loss(tmp_path / "b.safetensors", 0.2, 2)
    report, plot = tmp_path / "report.json", tmp_path / "frontier.png"
    argv = ["eval-video", str(clip), "--model", str(first), "--model", str(second)]
    argv += ["--styles", str(styles), "--style-size", "32", "--blends", "0", "0.5"]
    argv += ["--blend-kind", "flow", "--target", "1000", "50", "--plot", str(plot)]
    assert fastnst([*argv, "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "frontier (style loss against" in out and "target <= 1000x" in out

    data = json.loads(report.read_text())
    rows = data["frontier"]
    # Two models x (per frame, flow blend 0.5): weight 0 is the per-frame row, not a copy.
    assert sorted((Path(r["model"]).name, r["blend_kind"], r["blend"]) for r in rows) == [
        ("a.safetensors", "flow", 0.5),
        ("a.safetensors", "none", 0.0),
        ("b.safetensors", "flow", 0.5),
        ("b.safetensors", "none", 0.0),
    ]
    results = {r["source"]: r for r in data["results"]}
    for row in rows:  # the same numbers as the main table, against the first model per frame
        assert row["x_floor"] == pytest.approx(results[row["source"]]["x_floor"])
        assert row["style_loss"] == results[row["source"]]["style_loss"]
    reference = next(r for r in rows if r["source"] == str(first))
    assert reference["style_vs_reference_pct"] == 0.0
    assert [r["style_loss"] for r in rows] == sorted(r["style_loss"] for r in rows)
    expected = pareto_flags([(r["x_floor"], r["style_loss"]) for r in rows])
    assert [r["pareto"] for r in rows] == expected and any(expected)
    # The flow blend steadies each model: it is below its per-frame point.
    for model in (first, second):
        mine = {r["blend_kind"]: r for r in rows if r["model"] == str(model)}
        assert mine["flow"]["x_floor"] < mine["none"]["x_floor"]
    assert all(r["meets_target"] == (r["target_excess"] == 0) for r in rows)
    with Image.open(plot) as picture:
        assert picture.format == "PNG" and picture.size[0] > 500
        assert len(picture.convert("RGB").getcolors(1 << 16) or []) > 20  # drawn, not blank


def test_eval_video_frontier_refuses_bad_blends_and_targets(tmp_path: Path, capsys) -> None:
    clip = write_clip(tmp_path / "pan.mp4", panning_frames(3, 32, 32))
    model = model_with_loss(tmp_path / "a.safetensors", 0.02, 1)
    base = ["eval-video", str(clip), "--model", str(model), "--json", str(tmp_path / "r.json")]
    for extra, message in (
        (["--blends", "1.5"], "error: --blends weights must be in [0, 1), got 1.5"),
        (["--blends", "glue:1"], "error: --blends weights must be in [0, 1), got 1"),
        (["--blends", "soft:0.3"], "error: --blends: unknown blend kind 'soft'"),
        (["--blends", "glue:x"], "error: --blends takes A or KIND:A, got 'glue:x'"),
        (["--frontier", "--target", "0", "10"], "error: --target needs X_FLOOR > 0"),
        (["--plot", str(tmp_path / "f.txt")], "error: --plot must end in .png"),
        (["--input-smooth", "1"], "error: --input-smooth must be in [0, 1), got 1"),
        (["--strength", "1", "2.5"], "error: --strength must be in [0, 2], got 2.5"),
        (["--judge-every", "0"], "error: --judge-every must be at least 1, got 0"),
    ):
        assert fastnst([*base, *extra]) == 1
        assert capsys.readouterr().err.startswith(message)
    plot = tmp_path / "p.png"
    assert fastnst(["eval-video", str(clip), "--stylized", str(clip), "--plot", str(plot)]) == 1
    assert "need at least one --model" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists() and not plot.exists()


def test_eval_video_blends_of_one_kind_are_scored_alone(tmp_path: Path) -> None:
    """--blends KIND:A scores that kind only; a bare A each --blend-kind (no cross product of
    every weight with every kind)."""
    pytest.importorskip("cv2")
    clip = write_clip(tmp_path / "pan.mp4", panning_frames(4, 48, 64))
    model = model_with_loss(tmp_path / "a.safetensors", 0.2, 1)
    report = tmp_path / "r.json"
    argv = ["eval-video", str(clip), "--model", str(model), "--json", str(report)]
    argv += ["--styles", str(style_folder(tmp_path)), "--style-size", "32"]
    argv += ["--blends", "detail:0.5", "glue:0.1", "0.3", "--blend-kind", "flow", "plain"]
    assert fastnst(argv) == 0
    rows = json.loads(report.read_text())["results"][1:]  # after the input's floor
    assert [(r["blend_kind"], r["blend"]) for r in rows] == [
        ("none", 0.0),
        ("detail", 0.5),
        ("glue", 0.1),
        ("flow", 0.3),
        ("plain", 0.3),
    ]
    assert len({r["warping_error"] for r in rows}) == len(rows)  # each shown its own way


def test_eval_video_scores_a_model_on_smoothed_frames(tmp_path: Path) -> None:
    """--input-smooth B: the model sees InputSmooth's frames (its rows change and say so);
    the floor is still the clip's own. Several values in one run give the rows of one run
    per value, each stream started afresh, and the frontier keeps them apart."""
    pytest.importorskip("cv2")
    clip = write_clip(tmp_path / "pan.mp4", panning_frames(4, 48, 64))
    styles = style_folder(tmp_path)
    model = model_with_loss(tmp_path / "a.safetensors", 0.2, 1)
    reports = {}
    for smooth in (["0"], ["0.5"], ["0", "0.5"]):
        report = tmp_path / f"r{'_'.join(smooth)}.json"
        argv = ["eval-video", str(clip), "--model", str(model), "--styles", str(styles)]
        argv += ["--style-size", "32", "--input-smooth", *smooth, "--json", str(report)]
        assert fastnst([*argv, "--blends", "0.3", "--blend-kind", "flow", "--frontier"]) == 0
        reports[" ".join(smooth)] = json.loads(report.read_text())
    plain, smoothed = reports["0"]["results"], reports["0.5"]["results"]
    assert plain[0]["warping_error"] == smoothed[0]["warping_error"]  # the floor
    assert smoothed[1]["input_smooth"] == 0.5 and "input smooth 0.5" in smoothed[1]["source"]
    assert plain[1]["input_smooth"] == 0.0 and "input smooth" not in plain[1]["source"]
    assert smoothed[1]["warping_error"] != pytest.approx(plain[1]["warping_error"], rel=1e-3)
    both = reports["0 0.5"]
    apart = plain + smoothed[1:]  # as the two runs, in the order given
    assert [r["source"] for r in both["results"]] == [r["source"] for r in apart]
    for row, alone in zip(both["results"], apart, strict=True):
        assert row["warping_error"] == pytest.approx(alone["warping_error"], rel=1e-6)
    assert [p["input_smooth"] for p in both["frontier"]].count(0.5) == 2  # per frame, blend
    assert len({p["source"] for p in both["frontier"]}) == 4


def test_eval_video_scores_a_model_at_several_strengths(tmp_path: Path) -> None:
    """--strength S: each model's frames shown as stylize --strength S shows them (above 1
    bolder strokes, so more warping error), before the blend; the rows and the frontier
    say which."""
    pytest.importorskip("cv2")
    clip = write_clip(tmp_path / "pan.mp4", panning_frames(4, 48, 64))
    model = model_with_loss(tmp_path / "a.safetensors", 0.2, 1)
    report = tmp_path / "r.json"
    argv = ["eval-video", str(clip), "--model", str(model), "--styles", str(style_folder(tmp_path))]
    argv += ["--style-size", "32", "--strength", "1", "1.5", "--blends", "0.3"]
    assert fastnst([*argv, "--blend-kind", "flow", "--frontier", "--json", str(report)]) == 0
    run = json.loads(report.read_text())
    rows = {(r["strength"], r["blend"]): r for r in run["results"][1:]}
    assert sorted(rows) == [(1.0, 0.0), (1.0, 0.3), (1.5, 0.0), (1.5, 0.3)]
    assert "strength" not in rows[1.0, 0.0]["source"]
    assert rows[1.5, 0.3]["source"].endswith(" at strength 1.5 + flow blend 0.3")
    for blend in (0.0, 0.3):
        assert rows[1.5, blend]["warping_error"] > 1.1 * rows[1.0, blend]["warping_error"]
    assert sorted(p["strength"] for p in run["frontier"]) == [1.0, 1.0, 1.5, 1.5]


def test_eval_video_judge_scores_by_the_independent_distances(tmp_path: Path) -> None:
    """--judge: every model row gets the fixed VGG-19's style and content distances (the
    same numbers as fastnst.distances on its frames), and the frontier ranks by them."""
    pytest.importorskip("cv2")
    clip = write_clip(tmp_path / "pan.mp4", panning_frames(4, 48, 64))
    styles = style_folder(tmp_path)
    first = model_with_loss(tmp_path / "a.safetensors", 0.02, 1)
    second = model_with_loss(tmp_path / "b.safetensors", 0.3, 2)
    report = tmp_path / "report.json"
    argv = ["eval-video", str(clip), "--model", str(first), "--model", str(second), "--judge"]
    argv += ["--styles", str(styles), "--style", "1", "--style-size", "32", "--frontier"]
    assert fastnst([*argv, "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    rows = data["frontier"]
    assert [r["style_distance"] for r in rows] == sorted(r["style_distance"] for r in rows)
    assert rows[0]["style_distance"] != rows[1]["style_distance"]
    expected = pareto_flags([(r["x_floor"], r["style_distance"]) for r in rows])
    assert [r["pareto"] for r in rows] == expected
    reference = next(r for r in rows if r["model"] == str(first))
    assert reference["style_vs_reference_pct"] == 0.0

    # The same distances computed directly from the model's frames.
    frames = read_frames(clip, None, None, 1)
    net, _ = load_model(second)
    with torch.no_grad():
        outputs = net(frames, 1)
    judge = Distances([resize_long_side(load_image(styles / "paint.png"), 512)], "cpu")
    direct = [judge(out, frame, 0) for out, frame in zip(outputs, frames, strict=True)]
    row = next(r for r in data["results"] if r.get("model") == str(second))
    assert row["style_distance"] == pytest.approx(sum(d["style"] for d in direct) / 4, rel=1e-4)
    assert row["content_distance"] == pytest.approx(sum(d["content"] for d in direct) / 4, rel=1e-4)
    assert row["content_distance"] > 0.01  # the model changes the frames

    # --judge-every 2: frames 0 and 2 judged, every pair still counted for the flicker.
    argv = ["eval-video", str(clip), "--model", str(second), "--judge", "--judge-every", "2"]
    argv += ["--styles", str(styles), "--style", "1", "--style-size", "32"]
    assert fastnst([*argv, "--json", str(report)]) == 0
    sparse = json.loads(report.read_text())
    assert sparse["judge_every"] == 2
    row = sparse["results"][1]
    assert row["style_distance"] == pytest.approx((direct[0]["style"] + direct[2]["style"]) / 2)
    assert len(row["per_pair"]) == 3


def test_labels_of_a_cluster_are_stacked_not_printed_over_each_other() -> None:
    anchors = [(100.0, 100.0), (101.0, 100.5), (100.0, 99.0), (400.0, 100.0)]
    offsets = label_offsets(anchors, [60.0] * 4)
    assert offsets[0] == offsets[3] == LABEL_OFFSETS[0]  # alone: the usual place
    rows = [anchor[1] + offset[1] for anchor, offset in zip(anchors[:3], offsets[:3], strict=True)]
    assert all(abs(a - b) >= LABEL_HEIGHT for i, a in enumerate(rows) for b in rows[i + 1 :])
