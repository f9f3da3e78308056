"""Region-targeted styles: a mask keeps the photo outside it, a one-region map is the plain
style, two regions get their own styles in one pass, and video takes a fixed mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.infer import main
from fastnst.model import norm_affine

from conftest import perturbed_model

W, H = 64, 48


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    return perturbed_model(folder / "tiny.safetensors", ["a", "b", "c"], 0.3)


def _photo(path: Path) -> np.ndarray:
    array = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return array.astype(np.int16)


def _run(model: Path, photo: Path, out: Path, *args: str) -> np.ndarray:
    argv = ["--model", str(model), "--device", "cpu", "--quiet", "--input", str(photo)]
    assert main([*argv, "--output", str(out), *args]) == 0
    return np.asarray(Image.open(out), dtype=np.int16)


def test_per_pixel_weights_equal_to_one_style_are_that_style() -> None:
    gamma, beta = torch.randn(3, 8), torch.randn(3, 8)
    plain = norm_affine(torch.tensor([[0.0, 1.0, 0.0]]), gamma, beta, (5, 7))
    spatial_weights = torch.zeros(1, 3, 5, 7)
    spatial_weights[:, 1] = 1
    spatial = norm_affine(spatial_weights, gamma, beta, (5, 7))
    for a, b in zip(plain, spatial, strict=True):
        assert torch.allclose(a.expand_as(b), b, atol=1e-6)


def test_mask_keeps_the_photo_outside_and_the_style_inside(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "in.png")
    mask = np.zeros((H, W), np.uint8)
    mask[:, W // 2 :] = 255  # right half styled
    Image.fromarray(mask).save(tmp_path / "mask.png")
    styled = _run(model, tmp_path / "in.png", tmp_path / "full.png", "--style", "b")
    masked = _run(
        model,
        tmp_path / "in.png",
        tmp_path / "masked.png",
        "--style",
        "b",
        "--mask",
        str(tmp_path / "mask.png"),
        "--feather",
        "2",
    )
    left, right = slice(0, W // 2 - 8), slice(W // 2 + 8, W)
    assert np.abs(masked[:, left] - photo[:, left]).max() <= 1  # the photo, untouched
    assert np.abs(masked[:, right] - styled[:, right]).max() <= 1  # the style
    assert np.abs(styled[:, left] - photo[:, left]).mean() > 10  # (the style does change it)


def test_one_region_map_is_the_plain_style(model: Path, tmp_path: Path) -> None:
    _photo(tmp_path / "in.png")
    Image.new("RGB", (W, H), (200, 30, 30)).save(tmp_path / "map.png")
    plain = _run(model, tmp_path / "in.png", tmp_path / "plain.png", "--style", "c")
    region = _run(
        model,
        tmp_path / "in.png",
        tmp_path / "region.png",
        "--style",
        "c",
        "--regions",
        str(tmp_path / "map.png"),
    )
    assert np.abs(plain - region).max() <= 1


def test_two_regions_get_their_own_styles_in_one_pass(model: Path, tmp_path: Path) -> None:
    _photo(tmp_path / "in.png")
    labels = np.zeros((H, W, 3), np.uint8)
    labels[:, : W // 2] = (0, 0, 255)  # sorts first: style a
    labels[:, W // 2 :] = (255, 0, 0)  # second: style c
    Image.fromarray(labels).save(tmp_path / "map.png")
    a = _run(model, tmp_path / "in.png", tmp_path / "a.png", "--style", "a")
    c = _run(model, tmp_path / "in.png", tmp_path / "c.png", "--style", "c")
    both = _run(
        model,
        tmp_path / "in.png",
        tmp_path / "both.png",
        "--style",
        "a,c",
        "--regions",
        str(tmp_path / "map.png"),
        "--feather",
        "0",
    )
    left, right = slice(0, W // 2 - 12), slice(W // 2 + 12, W)
    # Away from the border each side is close to its own style (instance-norm statistics
    # are shared by the whole image, so not bit-equal) and far from the other one.
    near_a = np.abs(both[:, left] - a[:, left]).mean()
    near_c = np.abs(both[:, right] - c[:, right]).mean()
    assert near_a < 0.5 * np.abs(c[:, left] - a[:, left]).mean()
    assert near_c < 0.5 * np.abs(a[:, right] - c[:, right]).mean()


def test_weight_map_channels_pick_styles(model: Path, tmp_path: Path) -> None:
    _photo(tmp_path / "in.png")
    weights = np.zeros((2, H, W), np.float32)
    weights[1] = 1.0  # everything: the second listed style
    np.save(tmp_path / "w.npy", weights)
    b = _run(model, tmp_path / "in.png", tmp_path / "b.png", "--style", "b")
    mapped = _run(
        model,
        tmp_path / "in.png",
        tmp_path / "m.png",
        "--style",
        "a,b",
        "--regions",
        str(tmp_path / "w.npy"),
    )
    assert np.abs(b - mapped).max() <= 1


def _one_colour_map(t: Path) -> None:
    Image.new("RGB", (W, H), (9, 9, 9)).save(t / "map.png")


def _three_channel_map(t: Path) -> None:
    np.save(t / "map.npy", np.zeros((3, H, W), np.float32))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (_one_colour_map, "1 region colour(s) besides black, but 2 style(s)"),
        (_three_channel_map, "expected (2, H, W)"),
    ],
)
def test_maps_that_do_not_fit_the_styles_are_one_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, setup, message: str
) -> None:
    _photo(tmp_path / "in.png")
    setup(tmp_path)
    (found,) = [p for p in tmp_path.iterdir() if p.stem == "map"]
    argv = [
        "--model",
        str(model),
        "--device",
        "cpu",
        "--input",
        str(tmp_path / "in.png"),
        "--output",
        str(tmp_path / "o.png"),
        "--style",
        "a,b",
        "--regions",
        str(found),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()


def test_video_with_a_fixed_mask(model: Path, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    clip = tmp_path / "in.mp4"
    # Smooth frames: noise would not survive the encoder's 4:2:0 chroma either way.
    ys, xs = np.mgrid[0:H, 0:W]
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv444p"
        stream.options = {"crf": "0"}
        for i in range(4):
            pixels = np.stack([xs * 4, ys * 5, (xs + ys + 10 * i) * 2], -1).clip(0, 255)
            pixels = pixels.astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, "rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    mask = np.zeros((H, W), np.uint8)
    mask[:, W // 2 :] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.mp4"
    argv = [
        "--model",
        str(model),
        "--device",
        "cpu",
        "--quiet",
        "--video",
        str(clip),
        "--output",
        str(out),
        "--style",
        "b",
        "--mask",
        str(tmp_path / "mask.png"),
        "--crf",
        "0",
    ]
    assert main(argv) == 0
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        source = np.stack([f.to_ndarray(format="rgb24") for f in a.decode(video=0)]).astype(int)
        result = np.stack([f.to_ndarray(format="rgb24") for f in b.decode(video=0)]).astype(int)
    left, right = slice(0, W // 2 - 8), slice(W // 2 + 8, W)
    assert np.abs(result[:, :, left] - source[:, :, left]).mean() < 4
    assert np.abs(result[:, :, right] - source[:, :, right]).mean() > 10
