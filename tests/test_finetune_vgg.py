"""fastnst finetune-vgg: a style classifier on VGG-19 whose upper convolutions become the loss
network; the held-out split is never trained on, lower blocks stay bit-identical, the file
loads through ``loss.vgg_weights``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from fastnst.cli import main as fastnst
from fastnst.data.styles import StyleSet, folder_styles
from fastnst.images import tensor_to_pil
from fastnst.losses import PerceptualLoss
from fastnst.optimize.gatys import load_loss_settings
from fastnst.vgg import LAYER_NAMES, VGGFeatures, caffe_state_dict
from fastnst.vgg_finetune import split_style

H, W = 96, 128


def pattern(kind: str, seed: int = 0) -> torch.Tensor:
    """Three textures with the same colours, told apart only by their structure."""
    noise = 0.1 * torch.rand(3, H, W, generator=torch.Generator().manual_seed(seed))
    image = torch.full((3, H, W), 0.2) + noise
    if kind == "vertical":
        image[:, :, ::6] = 0.9
    elif kind == "horizontal":
        image[:, ::6, :] = 0.9
    else:
        image[:, ::6, ::6] = 0.9
        image[:, 3::6, 3::6] = 0.9
    return image.clamp(0, 1)


@pytest.fixture(scope="module")
def style_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("styles")
    tensor_to_pil(pattern("vertical")).save(root / "vertical.png")
    tensor_to_pil(pattern("horizontal")).save(root / "horizontal.png")
    (root / "dots").mkdir()
    for seed in range(3):  # a style of several frames: whole frames are held out
        tensor_to_pil(pattern("dots", seed)).save(root / "dots" / f"frame{seed}.png")
    return root


def test_held_out_pixels_are_never_in_the_training_split(style_tree: Path) -> None:
    styles = {style.name: style for style in folder_styles(style_tree)}
    single = split_style(styles["vertical"], 32, 0.25, 8, 96)
    (region,) = single.train
    image = pattern("vertical")
    assert region.shape[-1] == W - 32 and single.how == "right 32 of 128 px held out"
    strip = image[..., W - 32 :]
    for crop in single.heldout:  # every held-out crop is a window of the right strip
        assert crop.shape == (3, 32, 32)
        assert any(
            torch.allclose(crop, strip[:, y : y + 32], atol=2 / 255) for y in range(0, H - 31)
        )
    frames = split_style(styles["dots"], 32, 0.25, 8, 96)
    assert len(frames.train) == 2 and frames.how == "1 of 3 images held out"
    for crop in frames.heldout:
        assert not any(
            torch.allclose(crop, train[:, y : y + 32, x : x + 32])
            for train in frames.train
            for y in range(0, 65, 8)
            for x in range(0, 97, 8)
        )
    with pytest.raises(Exception, match="too narrow"):
        split_style(StyleSet("thin", images=[torch.rand(3, 40, 40)]), 32, 0.25, 4, 40)


def test_finetune_learns_the_styles_and_keeps_lower_blocks(
    style_tree: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "vgg.safetensors"
    argv = [
        "finetune-vgg",
        "--styles",
        str(style_tree),
        "--out",
        str(out),
        "--steps",
        "25",
        "--crop",
        "32",
        "--batch",
        "6",
        "--lr",
        "1e-4",
        "--quiet",
        "--device",
        "cpu",
    ]
    assert fastnst(argv) == 0
    printed = capsys.readouterr().out
    assert "held-out accuracy" in printed and "chance 0.333" in printed
    with safe_open(str(out), framework="pt") as handle:
        metadata = handle.metadata()
    tuned = load_file(str(out))
    accuracy = json.loads(metadata["heldout_accuracy"])
    assert sorted(accuracy) == ["dots", "horizontal", "vertical"]
    assert sum(accuracy.values()) / 3 > 0.6  # chance is 1/3
    assert metadata["vgg_preprocess"] == "caffe"

    imagenet = caffe_state_dict()
    assert sorted(tuned) == sorted(imagenet)  # every convolution, in the features layout
    first_trained = LAYER_NAMES.index("conv4_1")
    for key, value in imagenet.items():
        index = int(key.split(".")[0])
        if index < first_trained:
            assert torch.equal(tuned[key], value), key  # frozen blocks: bit-identical
    assert not torch.equal(tuned[f"{first_trained}.weight"], imagenet[f"{first_trained}.weight"])
    last_untouched = LAYER_NAMES.index("conv5_2")  # above the head's tap: never trained
    assert torch.equal(tuned[f"{last_untouched}.weight"], imagenet[f"{last_untouched}.weight"])

    # The file is a loss network: loss.vgg_weights=FILE, Caffe inputs read from its metadata.
    settings = load_loss_settings(None) | {"vgg_weights": str(out)}
    loss = PerceptualLoss.from_settings(settings)
    assert loss.vgg.preprocess == "caffe"
    photo = pattern("dots")[None]
    reference = VGGFeatures(["relu3_1", "relu4_1"])
    mine, theirs = loss.vgg(photo), reference(photo)
    assert torch.equal(mine["relu3_1"], theirs["relu3_1"])
    assert not torch.allclose(mine["relu4_1"], theirs["relu4_1"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--styles": "missing"}, "style folder not found"),
        ({"--out": "vgg.pth"}, ".safetensors"),
        ({"--holdout": "1.5"}, "--holdout"),
        ({"--train-from": "conv9_9"}, "unknown layer"),
        ({"--styles": "one"}, "at least two styles"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys, change: dict[str, str], message: str
) -> None:
    for folder, kinds in (("one", ["vertical"]), ("two", ["vertical", "horizontal"])):
        (tmp_path / folder).mkdir()
        for kind in kinds:
            tensor_to_pil(pattern(kind)).save(tmp_path / folder / f"{kind}.png")
    args = {"--styles": "two", "--out": "vgg.safetensors"}
    args.update(change)
    args["--styles"] = str(tmp_path / args["--styles"])
    args["--out"] = str(tmp_path / args["--out"])
    before = set(tmp_path.iterdir())
    argv = [item for pair in args.items() for item in pair]
    assert fastnst(["finetune-vgg", *argv, "--steps", "1", "--crop", "32", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert set(tmp_path.iterdir()) == before


def test_evaluate_judges_with_given_loss_settings(tmp_path: Path, capsys) -> None:
    """The side-by-side of two loss networks scores both models with one loss (--loss)."""
    import yaml

    from conftest import perturbed_model

    model = perturbed_model(tmp_path / "m.safetensors", ["vertical", "horizontal"], 0.2)
    styles, photos = tmp_path / "styles", tmp_path / "photos"
    styles.mkdir(), photos.mkdir()
    for kind in ("vertical", "horizontal"):
        tensor_to_pil(pattern(kind)).save(styles / f"{kind}.png")
    tensor_to_pil(pattern("dots")).save(photos / "dots.png")
    settings = {
        "vgg_weights": "random",
        "content_layers": {"relu2_2": 1.0},
        "style_layers": {"relu1_1": 1e3},
    }
    reports = {}
    for weight in (1.0, 10.0):
        loss = tmp_path / f"loss{weight:g}.yaml"
        loss.write_text(yaml.safe_dump({**settings, "style_weight": weight}))
        out = tmp_path / f"report{weight:g}"
        argv = [
            "evaluate",
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
            "--no-gatys",
            "--repeats",
            "1",
            "--loss",
            str(loss),
            "--out",
            str(out),
        ]
        torch.manual_seed(0)  # the same random VGG for both runs: only the weight differs
        assert fastnst(argv) == 0
        reports[weight] = json.loads((out / "evaluation.json").read_text())
    one, ten = (reports[w]["scores"][0] for w in (1.0, 10.0))
    assert reports[10.0]["model_info"]["loss"]["style_weight"] == 10.0
    assert ten["style_loss"] == pytest.approx(one["style_loss"], rel=0.05)
    assert ten["total"] == pytest.approx(ten["content"] + 10 * ten["style_loss"], rel=1e-5)
    assert one["total"] == pytest.approx(one["content"] + one["style_loss"], rel=1e-5)
    # Without --loss, a model that stores none cannot be scored.
    assert fastnst(argv[:-4] + ["--out", str(tmp_path / "none")]) == 1
    assert "stores no loss settings" in capsys.readouterr().err
