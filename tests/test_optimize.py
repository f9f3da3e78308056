"""Gatys optimisation: same objective as the training loss, loss goes down, CLI writes files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fastnst import CONF_DIR
from fastnst.export import ModelInfo, save_model
from fastnst.images import load_image, pil_to_tensor, tensor_to_pil
from fastnst.model import NetConfig, TransformerNet
from fastnst.optimize.cli import main
from fastnst.optimize.gatys import (
    DEFAULT_LOSS_FILE,
    GatysObjective,
    build_loss,
    gatys,
    load_loss_settings,
)

SETTINGS = {
    "vgg_weights": "random",
    "content_layers": {"relu2_2": 1.0},
    "style_layers": {"relu1_1": 1e3, "relu2_1": 1e3},
    "content_weight": 1.0,
    "style_weight": 4.0,
    "tv_weight": 0.1,
}


def smooth(seed: int, size: int = 32) -> torch.Tensor:
    coarse = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")


@pytest.fixture(scope="module")
def loss_fn():
    torch.manual_seed(0)
    return build_loss(SETTINGS, [smooth(1)[0]], torch.device("cpu"))


def test_objective_is_the_training_loss(loss_fn) -> None:
    photo, image = smooth(2), smooth(3)
    expected, parts = loss_fn(image, photo, torch.ones(1, 1))
    total, mine = GatysObjective(loss_fn, photo)(image)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert mine["style"] == pytest.approx(parts["style"].item(), rel=1e-5)
    assert mine["content"] == pytest.approx(parts["content"].item(), rel=1e-5)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_decreases_from_the_photo(loss_fn, optimizer: str) -> None:
    photo = smooth(2)
    seen: list[int] = []
    result = gatys(
        photo,
        loss_fn,
        15,
        optimizer=optimizer,
        progress=False,
        on_step=lambda step, image: seen.append(step),
    )
    history = result.history
    assert [h["step"] for h in history] == list(range(16))
    assert history[0]["content"] == pytest.approx(0.0, abs=1e-9)  # starts as the photo
    assert history[-1]["total"] < 0.8 * history[0]["total"]
    assert seen == list(range(1, 16))
    assert result.image.shape == photo.shape
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    # The recorded final loss is the loss of the returned image.
    total, _ = GatysObjective(loss_fn, photo)(result.image)
    assert history[-1]["total"] == pytest.approx(total.item(), rel=1e-5)


def test_lbfgs_takes_a_strided_photo(loss_fn) -> None:
    """A photo read at its own size is a view of the decoded HWC array, not contiguous."""
    photo = smooth(2).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not photo.is_contiguous()
    result = gatys(photo, loss_fn, 2, optimizer="lbfgs", progress=False)
    assert result.history[-1]["total"] < result.history[0]["total"]


def test_noise_init_is_seeded_and_far_from_the_photo(loss_fn) -> None:
    photo = smooth(2)
    a = gatys(photo, loss_fn, 1, init="noise", seed=5, progress=False)
    b = gatys(photo, loss_fn, 1, init="noise", seed=5, progress=False)
    assert a.history[0]["content"] > 0
    assert torch.equal(a.image, b.image)


def test_bad_choices_are_user_errors(loss_fn) -> None:
    from fastnst.errors import UserError

    with pytest.raises(UserError, match="optimizer"):
        gatys(smooth(2), loss_fn, 1, optimizer="sgd", progress=False)
    with pytest.raises(UserError, match="steps"):
        gatys(smooth(2), loss_fn, 0, progress=False)


def test_loss_settings_follow_the_config_files(tmp_path: Path) -> None:
    default = yaml.safe_load(DEFAULT_LOSS_FILE.read_text())
    assert load_loss_settings() == default
    assert DEFAULT_LOSS_FILE.parent == CONF_DIR / "loss"  # inside the package, any cwd
    post_conv = load_loss_settings("post_conv")  # a packaged config by name
    assert post_conv == load_loss_settings(CONF_DIR / "loss" / "post_conv.yaml")
    assert post_conv["tap"] == "conv"
    assert post_conv["vgg_weights"] == default["vgg_weights"]  # inherited from default.yaml
    assert post_conv["style_layers"].keys() == default["style_layers"].keys()
    assert post_conv["style_layers"] != default["style_layers"]
    net = TransformerNet(NetConfig(num_styles=2, width=0.25, num_residual=1))
    model = save_model(
        net, tmp_path / "m.safetensors", ModelInfo(net={}, style_names=["a", "b"], loss=SETTINGS)
    )
    assert load_loss_settings(model) == SETTINGS


def write_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    tensor_to_pil(smooth(2, 40)).save(photo)
    tensor_to_pil(smooth(1, 40)).save(style)
    loss = tmp_path / "loss.yaml"
    loss.write_text(yaml.safe_dump(SETTINGS))
    return photo, style, loss


def test_cli_writes_result_and_intermediates(tmp_path: Path, capsys) -> None:
    photo, style, loss = write_inputs(tmp_path)
    out = tmp_path / "out" / "result.png"
    code = main(
        [
            "--content",
            str(photo),
            "--style",
            str(style),
            "--output",
            str(out),
            "--steps",
            "6",
            "--size",
            "32",
            "--loss",
            str(loss),
            "--save-every",
            "2",
            "--optimizer",
            "adam",
            "--quiet",
        ]
    )
    assert code == 0
    assert load_image(out).shape == (3, 32, 32)
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == ["result.png", "result_step00002.png", "result_step00004.png"]
    # The result moved away from the photo (resized to 32 px) towards the style.
    start = pil_to_tensor(tensor_to_pil(smooth(2, 32)))
    assert (load_image(out) - start).abs().mean() > 1e-3
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--content": "missing.png"}, "no such file"),
        ({"--output": "out.gif"}, ".png or .jpg"),
        ({"--loss": "nope.yaml"}, "loss settings not found"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys, change: dict[str, str], message: str
) -> None:
    photo, style, loss = write_inputs(tmp_path)
    args = {
        "--content": str(photo),
        "--style": str(style),
        "--output": "out.png",
        "--loss": str(loss),
    }
    args.update({k: str(tmp_path / v) for k, v in change.items()})
    args["--output"] = str(tmp_path / Path(args["--output"]).name)
    argv = [item for pair in args.items() for item in pair] + ["--steps", "1", "--size", "32"]
    before = set(tmp_path.iterdir())
    assert main(argv + ["--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert set(tmp_path.iterdir()) == before
