"""--shift-average (fastnst.runtime.lattice): a pattern fixed to the network's 4-px grid goes,
what follows the photo stays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fastnst.infer import main
from fastnst.runtime.lattice import ShiftAveraged


def _lattice(height: int, width: int) -> np.ndarray:
    """Hatching at the frequencies the bundled models paint: periods 4 (diagonal, both
    ways, and straight) and 2, locked to the array's own grid."""
    y, x = np.mgrid[:height, :width].astype(np.float32)
    quarter = np.pi / 2
    waves = (
        np.cos(quarter * (y + x))
        + np.cos(quarter * (y - x))
        + np.cos(quarter * x)
        + np.cos(quarter * y)
        + np.cos(np.pi * x)
    )
    return 0.02 * waves.astype(np.float32)


class Hatching:
    """A stand-in network: a pixelwise 'style' of the photo (it follows the photo) plus the
    lattice of whatever canvas it is given (it does not)."""

    def __call__(self, images, weights, strength=1.0, keep_color=False, tile=0):
        style = images * 0.5 + 0.25
        if weights.ndim == 4:  # per-pixel weights: the first style's share scales the style
            style = style * weights[:, :1]
        return style + _lattice(*images.shape[-2:])

    def guided(self, images, weights, guide):
        """A recurrent model's frame: the photo and its guide, plus the lattice."""
        return images * 0.5 + guide[:, :3] * 0.25 + _lattice(*images.shape[-2:])


def _photo(height: int = 37, width: int = 50) -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)


def test_the_lattice_cancels_and_the_style_stays() -> None:
    photo = _photo()
    weights = np.array([1.0], np.float32)
    follows_photo = photo * 0.5 + 0.25
    plain = Hatching()(photo, weights)
    averaged = ShiftAveraged(Hatching())(photo, weights)
    assert np.abs(plain - follows_photo).max() > 0.05
    assert averaged.shape == photo.shape and averaged.dtype == np.float32
    np.testing.assert_allclose(averaged, follows_photo, atol=1e-6)


def test_per_pixel_weights_move_with_the_photo() -> None:
    photo = _photo()
    weights = np.zeros((1, 2, 37, 50), np.float32)
    weights[:, 0, :, :17] = 1.0  # the left third in the first style
    averaged = ShiftAveraged(Hatching())(photo, weights)
    np.testing.assert_allclose(averaged, (photo * 0.5 + 0.25) * weights[:, :1], atol=1e-6)


def test_a_recurrent_frame_moves_its_guide_with_the_photo() -> None:
    photo, guide = _photo(), np.random.default_rng(1).random((1, 4, 37, 50), dtype=np.float32)
    averaged = ShiftAveraged(Hatching()).guided(photo, np.array([1.0], np.float32), guide)
    np.testing.assert_allclose(averaged, photo * 0.5 + guide[:, :3] * 0.25, atol=1e-6)


def _lattice_power(image: np.ndarray) -> float:
    """Share of the (mean-removed) luminance power in the bins of the 4-px lattice."""
    grey = image @ np.array([0.299, 0.587, 0.114])
    power = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    size = grey.shape[0] // 4
    lattice = sum(power[i * size, j * size] for i in range(4) for j in range(4) if i or j)
    return float(lattice / power.sum())


def test_a_bundled_model_loses_its_hatching_on_a_flat_photo(tmp_path: Path) -> None:
    """classics-lite in starry_night paints a lattice over a smooth gradient (flat areas are
    where it shows); --shift-average removes most of it and keeps the picture."""
    ramp = np.linspace(0.3, 0.7, 128, dtype=np.float32)
    photo = np.stack(
        [np.add.outer(ramp, ramp) / 2, np.full((128, 128), 0.5), 1 - ramp[None].repeat(128, 0)], -1
    )
    Image.fromarray((photo * 255).astype(np.uint8)).save(tmp_path / "flat.png")
    outputs = {}
    for name, extra in (("plain", []), ("averaged", ["--shift-average"])):
        out = tmp_path / f"{name}.png"
        args = ["--model", "classics-lite", "--input", str(tmp_path / "flat.png")]
        args += ["--output", str(out), "--style", "starry_night", "--backend", "onnx", "--quiet"]
        assert main(args + extra) == 0
        outputs[name] = np.asarray(Image.open(out), dtype=np.float64) / 255
    plain, averaged = outputs["plain"], outputs["averaged"]
    assert averaged.shape == plain.shape == (128, 128, 3)
    assert _lattice_power(averaged) < 0.2 * _lattice_power(plain)
    assert np.abs(averaged - plain).mean() < 0.05
