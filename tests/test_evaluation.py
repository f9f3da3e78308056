"""Evaluation metrics (SSIM, MSE, losses, steps-to-reach) and fastnst evaluate, compare and
relu-vs-conv end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fastnst.cli import main as fastnst
from fastnst.evaluation.gatys_comparison import steps_to_reach
from fastnst.evaluation.scores import LossMeter, mse, ssim
from fastnst.export import ModelInfo, load_model, save_model
from fastnst.images import load_image, resize_long_side, tensor_to_pil
from fastnst.losses import PerceptualLoss
from fastnst.model import NetConfig, TransformerNet

SETTINGS = {
    "vgg_weights": "random",
    "content_layers": {"relu2_2": 1.0},
    "style_layers": {"relu1_1": 1e3, "relu2_1": 1e3},
    "style_weight": 4.0,
}


def smooth(seed: int, h: int = 40, w: int = 48) -> torch.Tensor:
    coarse = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")[0]


def test_ssim_is_one_for_equal_images_and_falls_with_noise() -> None:
    image = smooth(0)
    noise = torch.rand(image.shape, generator=torch.Generator().manual_seed(1)) - 0.5
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    slight = ssim(image, (image + 0.05 * noise).clamp(0, 1))
    heavy = ssim(image, (image + 0.5 * noise).clamp(0, 1))
    assert 1.0 > slight > heavy
    with pytest.raises(ValueError, match="equal shapes"):
        ssim(image, image[:, :-1])


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    a = smooth(2)
    b = (a + 0.2 * torch.rand(a.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    expected = metrics.structural_similarity(
        a.permute(1, 2, 0).double().numpy(),
        b.permute(1, 2, 0).double().numpy(),
        channel_axis=2,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(a, b) == pytest.approx(expected, abs=1e-6)


def test_mse_by_hand() -> None:
    a = torch.zeros(3, 2, 2)
    b = a.clone()
    b[0, 0, 0] = 0.6  # 0.36 over 12 values
    assert mse(a, b) == pytest.approx(0.03)


def test_steps_to_reach_first_step_at_or_below() -> None:
    history = [{"step": float(i), "total": t} for i, t in enumerate([9.0, 5.0, 3.0, 3.0, 1.0])]
    assert steps_to_reach(history, 3.0) == 2
    assert steps_to_reach(history, 10.0) == 0
    assert steps_to_reach(history, 0.5) is None


def test_loss_meter_is_the_training_loss_of_each_style() -> None:
    torch.manual_seed(0)
    styles = [[smooth(10)], [smooth(11)]]
    meter = LossMeter(SETTINGS, styles, torch.device("cpu"))
    torch.manual_seed(0)  # the same random VGG weights
    reference = PerceptualLoss(**SETTINGS)
    reference.set_style_targets(styles)
    photo, output = smooth(4).unsqueeze(0), smooth(5).unsqueeze(0)
    for index in (0, 1):
        mix = torch.nn.functional.one_hot(torch.tensor([index]), 2).float()
        expected, _ = reference(output, photo, mix)
        assert meter(output, photo, index)["total"] == pytest.approx(expected.item(), rel=1e-5)
    # Returning a style image costs no style loss in that style, and some in the other.
    own = meter(torch.stack(styles[0]), photo, 0)
    other = meter(torch.stack(styles[0]), photo, 1)
    assert own["style"] == pytest.approx(0.0, abs=1e-6)
    assert other["style"] > 1e-4
    assert meter(photo, photo, 0)["content"] == pytest.approx(0.0, abs=1e-9)


def make_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    torch.manual_seed(0)
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    model = save_model(
        net,
        tmp_path / "tiny.safetensors",
        ModelInfo(net={}, style_names=["ink", "moss"], loss=SETTINGS, steps=7),
    )
    styles, photos = tmp_path / "styles", tmp_path / "photos"
    styles.mkdir()
    photos.mkdir()
    tensor_to_pil(smooth(10)).save(styles / "ink.png")
    tensor_to_pil(smooth(11)).save(styles / "moss.png")
    tensor_to_pil(smooth(12)).save(photos / "cat.png")
    tensor_to_pil(smooth(13, 48, 40)).save(photos / "dog.png")
    return model, styles, photos


def test_evaluate_writes_report_json_and_grids(tmp_path: Path) -> None:
    model, styles, photos = make_inputs(tmp_path)
    out = tmp_path / "report"
    argv = [
        "--model",
        str(model),
        "--content",
        str(photos),
        "--styles",
        str(styles),
        "--size",
        "32",
        "--style-size",
        "32",
        "--gatys",
        "dog:moss",
        "--gatys-steps",
        "2,5",
        "--repeats",
        "1",
        "--thumb",
        "40",
        "--out",
        str(out),
    ]
    assert fastnst(["evaluate", *argv]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "evaluation.json",
        "evaluation.md",
        "gatys_0.jpg",
        "grid.jpg",
    ]
    data = json.loads((out / "evaluation.json").read_text())
    assert {(s["photo"], s["style"]) for s in data["scores"]} == {
        ("cat", "ink"),
        ("cat", "moss"),
        ("dog", "ink"),
        ("dog", "moss"),
    }
    assert all(s["seconds"] > 0 for s in data["scores"])
    # The stored SSIM and MSE are those of the model's output on the resized photo.
    net, _ = load_model(model)
    photo = resize_long_side(load_image(photos / "dog.png"), 32).unsqueeze(0)
    with torch.no_grad():
        output = net(photo, 1)
    dog_moss = next(s for s in data["scores"] if (s["photo"], s["style"]) == ("dog", "moss"))
    assert dog_moss["ssim"] == pytest.approx(ssim(output, photo), abs=1e-6)
    assert dog_moss["mse"] == pytest.approx(mse(output, photo), rel=1e-5)
    comparison = data["gatys"][0]
    assert [row["step"] for row in comparison["gatys"]] == [2, 5]
    assert comparison["gatys"][1]["total"] < comparison["gatys_start"]["total"]
    reach = comparison["steps_to_reach_network_loss"]
    totals = [comparison["gatys_start"]["total"]] + [r["total"] for r in comparison["gatys"]]
    # Same photo, size and loss module: the comparison's network loss is the table's.
    assert comparison["network"]["total"] == pytest.approx(dog_moss["total"], rel=1e-6)
    network = comparison["network"]["total"]
    if reach is None:
        assert min(totals) > network
    else:
        # Reached at step `reach` (0: the photo itself) and not before.
        assert 0 <= reach <= 5
        assert all(r["total"] > network for r in comparison["gatys"] if r["step"] < reach)
        assert (comparison["gatys_start"]["total"] <= network) == (reach == 0)
    report = (out / "evaluation.md").read_text()
    assert "Written by `fastnst evaluate --model" in report
    assert "![photos x styles](grid.jpg)" in report and "Gatys, 5 steps" in report
    assert data["model_info"]["steps"] == 7
    # Distances against the style image and the photo; photos of 32 px are too small for
    # the pattern score, and the report says so instead of guessing.
    assert dog_moss["content_distance"] > 0 and dog_moss["style_distance"] > 0
    assert dog_moss["hf_ratio"] > 0
    assert data["patterns"] is None and "Not measured" in report


def test_evaluate_scores_painted_patterns_against_the_photos(tmp_path: Path) -> None:
    model, styles, photos = make_inputs(tmp_path)
    out = tmp_path / "report"
    argv = [
        "--model",
        str(model),
        "--content",
        str(photos),
        "--styles",
        str(styles),
        "--size",
        "160",
        "--style-size",
        "32",
        "--no-gatys",
        "--repeats",
        "1",
        "--out",
        str(out),
    ]
    assert fastnst(["evaluate", *argv]) == 0
    data = json.loads((out / "evaluation.json").read_text())
    patterns = data["patterns"]
    assert set(patterns["styles"]) == {"ink", "moss"}
    assert patterns["photos"]["tiles"] == 2  # one 128-px tile per 160-px photo
    assert "## Painted patterns" in (out / "evaluation.md").read_text()


def test_evaluate_missing_style_images_is_an_error(tmp_path: Path, capsys) -> None:
    model, styles, photos = make_inputs(tmp_path)
    (styles / "moss.png").unlink()
    out = tmp_path / "report"
    argv = [
        "--model",
        str(model),
        "--content",
        str(photos),
        "--styles",
        str(styles),
        "--out",
        str(out),
        "--no-gatys",
    ]
    assert fastnst(["evaluate", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: no style images for moss under the --styles folder(s)"
    assert not out.exists()


def test_compare_tabulates_two_evaluations(tmp_path: Path, capsys) -> None:
    lite, styles, photos = make_inputs(tmp_path)
    torch.manual_seed(1)
    wider = TransformerNet(NetConfig(num_styles=2, width=0.5, num_residual=1))
    slim = save_model(
        wider,
        tmp_path / "slim.safetensors",
        ModelInfo(net={}, style_names=["ink", "moss"], loss=SETTINGS, steps=9),
    )
    reports = {}
    for label, model, size in (("lite", lite, 32), ("slim", slim, 32), ("big", slim, 40)):
        out = tmp_path / label
        argv = [
            "--model",
            str(model),
            "--content",
            str(photos),
            "--styles",
            str(styles),
            "--size",
            str(size),
            "--style-size",
            "32",
            "--no-gatys",
            "--repeats",
            "1",
            "--thumb",
            "40",
            "--out",
            str(out),
        ]
        assert fastnst(["evaluate", *argv]) == 0
        reports[label] = out / "evaluation.json"
    table = tmp_path / "variants.md"
    argv = [f"lite={reports['lite']}", f"slim={reports['slim']}", "--out", str(table)]
    assert fastnst(["compare", *argv]) == 0
    data = json.loads(table.with_suffix(".json").read_text())
    scores = json.loads(reports["slim"].read_text())["scores"]
    slim_row = data["models"]["slim"]
    assert slim_row["total"] == pytest.approx(sum(s["total"] for s in scores) / len(scores))
    assert slim_row["parameters"] == sum(p.numel() for p in wider.parameters())
    assert data["models"]["lite"]["steps"] == 7 and slim_row["steps"] == 9
    text = table.read_text()
    assert "Written by `fastnst compare lite=" in text and "| moss |" in text
    capsys.readouterr()
    # Photos scored at another size: the losses do not compare, so nothing is written.
    refused = tmp_path / "refused.md"
    argv = [f"lite={reports['lite']}", f"big={reports['big']}", "--out", str(refused)]
    assert fastnst(["compare", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: report 'big' scored other photos") and "\n" not in err
    assert not refused.exists()


def test_relu_vs_conv_scores_both_runs_with_both_losses(tmp_path: Path) -> None:
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    tensor_to_pil(smooth(12)).save(photo)
    tensor_to_pil(smooth(10)).save(style)
    for tap in ("relu", "conv"):
        (tmp_path / f"{tap}.yaml").write_text(json.dumps({**SETTINGS, "tap": tap}))
    out = tmp_path / "out"
    argv = [
        "--content",
        str(photo),
        "--style",
        str(style),
        "--steps",
        "6",
        "--every",
        "3",
        "--size",
        "32",
        "--relu-loss",
        str(tmp_path / "relu.yaml"),
        "--conv-loss",
        str(tmp_path / "conv.yaml"),
        "--out",
        str(out),
    ]
    assert fastnst(["relu-vs-conv", *argv]) == 0
    data = json.loads((out / "relu_vs_conv.json").read_text())
    for run_tap in ("relu", "conv"):
        scores = data["scores"][run_tap]
        assert sorted(scores, key=int) == ["0", "3", "6"]
        # Both runs start from the photo: no content loss under either judge.
        assert all(
            scores["0"][judge]["content"] == pytest.approx(0, abs=1e-9)
            for judge in ("relu", "conv")
        )
        # Each run lowers the style loss it optimises.
        assert scores["6"][run_tap]["style"] < scores["0"][run_tap]["style"]
    assert data["verdict"] and "Verdict:" in (out / "relu_vs_conv.md").read_text()
    assert {p.name for p in out.iterdir()} == {
        "relu_vs_conv.json",
        "relu_vs_conv.md",
        "relu_vs_conv.png",
        "relu_vs_conv_relu.jpg",
        "relu_vs_conv_conv.jpg",
    }


def test_relu_vs_conv_refuses_different_layers(tmp_path: Path, capsys) -> None:
    (tmp_path / "relu.yaml").write_text(json.dumps({**SETTINGS, "tap": "relu"}))
    other = {**SETTINGS, "tap": "conv", "style_layers": {"relu1_1": 1.0}}
    (tmp_path / "conv.yaml").write_text(json.dumps(other))
    tensor_to_pil(smooth(12)).save(tmp_path / "photo.png")
    argv = [
        "--content",
        str(tmp_path / "photo.png"),
        "--style",
        str(tmp_path / "photo.png"),
        "--relu-loss",
        str(tmp_path / "relu.yaml"),
        "--conv-loss",
        str(tmp_path / "conv.yaml"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert fastnst(["relu-vs-conv", *argv]) == 1
    assert "different style_layers" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_gram_vs_cov_scores_both_runs_with_both_statistics(tmp_path: Path) -> None:
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    tensor_to_pil(smooth(12)).save(photo)
    tensor_to_pil(smooth(10)).save(style)
    for stat in ("gram", "covariance"):
        (tmp_path / f"{stat}.yaml").write_text(json.dumps({**SETTINGS, "style_stat": stat}))
    out = tmp_path / "out"
    argv = [
        "--content",
        str(photo),
        "--style",
        str(style),
        "--steps",
        "6",
        "--every",
        "3",
        "--size",
        "32",
        "--gram-loss",
        str(tmp_path / "gram.yaml"),
        "--cov-loss",
        str(tmp_path / "covariance.yaml"),
        "--out",
        str(out),
    ]
    assert fastnst(["gram-vs-cov", *argv]) == 0
    data = json.loads((out / "gram_vs_cov.json").read_text())
    assert data["option"] == "style_stat"
    start = {judge: data["scores"]["gram"]["0"][judge]["style"] for judge in ("gram", "covariance")}
    # Both judges see the same photo at step 0, and measure different things.
    assert start["gram"] != pytest.approx(start["covariance"], rel=1e-3)
    for run in ("gram", "covariance"):
        scores = data["scores"][run]
        assert scores["0"] == data["scores"]["gram"]["0"]
        assert scores["6"][run]["style"] < scores["0"][run]["style"]
    # The two runs optimise different losses, so they end at different images.
    assert data["scores"]["gram"]["6"] != data["scores"]["covariance"]["6"]
    text = (out / "gram_vs_cov.md").read_text()
    assert text.startswith("# Gram vs covariance style statistics")
    assert "Verdict:" in text and "![gram](gram_vs_cov_gram.jpg)" in text
    assert {p.name for p in out.iterdir()} == {
        "gram_vs_cov.json",
        "gram_vs_cov.md",
        "gram_vs_cov.png",
        "gram_vs_cov_gram.jpg",
        "gram_vs_cov_covariance.jpg",
    }


def test_gram_vs_cov_refuses_losses_that_differ_elsewhere(tmp_path: Path, capsys) -> None:
    (tmp_path / "gram.yaml").write_text(json.dumps(SETTINGS))  # style_stat defaults to gram
    other = {**SETTINGS, "style_stat": "covariance", "tap": "conv"}
    (tmp_path / "cov.yaml").write_text(json.dumps(other))
    tensor_to_pil(smooth(12)).save(tmp_path / "photo.png")
    argv = [
        "--content",
        str(tmp_path / "photo.png"),
        "--style",
        str(tmp_path / "photo.png"),
        "--gram-loss",
        str(tmp_path / "gram.yaml"),
        "--cov-loss",
        str(tmp_path / "cov.yaml"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert fastnst(["gram-vs-cov", *argv]) == 1
    assert capsys.readouterr().err == "error: the loss files differ in tap: relu vs conv\n"
    argv[argv.index(str(tmp_path / "cov.yaml"))] = str(tmp_path / "gram.yaml")
    assert fastnst(["gram-vs-cov", *argv]) == 1
    assert "the covariance loss must have style_stat: covariance, got 'gram'" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_only_scores_a_style_whose_siblings_have_no_images(tmp_path: Path) -> None:
    """--only moss with no image for ink: ink is never scored, so it needs none."""
    model, styles, photos = make_inputs(tmp_path)
    (styles / "ink.png").unlink()
    out = tmp_path / "report"
    argv = [
        "--model",
        str(model),
        "--content",
        str(photos),
        "--styles",
        str(styles),
        "--only",
        "moss",
        "--size",
        "32",
        "--style-size",
        "32",
        "--no-gatys",
        "--repeats",
        "1",
        "--thumb",
        "40",
        "--out",
        str(out),
    ]
    assert fastnst(["evaluate", *argv]) == 0
    data = json.loads((out / "evaluation.json").read_text())
    assert {s["style"] for s in data["scores"]} == {"moss"}
