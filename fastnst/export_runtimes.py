"""Export a model to ONNX and TorchScript for runtimes without fastnst.

Both take ``image`` (float ``[N, 3, H, W]`` in [0, 1], any H and W) and ``style_weights``
(float ``[N, num_styles]``, one-hot for one style, convex for a blend) and return the
stylized image; a recurrent model (``net.recurrent``) takes a third input, ``guide``
(float ``[N, 4, H, W]``: the previous output warped onto the frame and the flow's trust
mask; zeros for a first frame, docs/VIDEO.md). The wrapper calls ``encode``/``decode``
directly: the index branch of ``forward`` does Python-side checks that a trace cannot keep.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from fastnst.files import atomic_write
from fastnst.model import TransformerNet
from fastnst.modelfile import GUIDE_CHANNELS

ONNX_OPSET = 18


class WeightsInput(nn.Module):
    """``(image, style_weights[, guide]) → image``: the graph every runtime export traces."""

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, image: torch.Tensor, style_weights: torch.Tensor, guide: torch.Tensor | None = None
    ) -> torch.Tensor:
        feats = self.net.encode(image, style_weights, guide)
        return self.net.decode(feats, style_weights, guide)


def _example(net: TransformerNet) -> tuple[torch.Tensor, ...]:
    """An odd-sized example so no size is baked in as a convenient multiple of 4."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 67, 93, generator=generator)
    weights = torch.full((1, net.num_styles), 1.0 / net.num_styles)
    if not net.config.recurrent:
        return image, weights
    return image, weights, torch.rand(1, GUIDE_CHANNELS, 67, 93, generator=generator)


def export_onnx(net: TransformerNet, path: str | Path) -> Path:
    """Write an ONNX graph with dynamic batch, height and width."""
    wrapper = WeightsInput(net.float().cpu().eval())
    path = Path(path)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _onnx_export(wrapper, net, tmp)

    atomic_write(path, write)
    return path


def _onnx_export(wrapper: WeightsInput, net: TransformerNet, tmp: Path) -> None:
    torch.onnx.export(
        wrapper,
        _example(net),
        str(tmp),
        input_names=["image", "style_weights", "guide"][: len(_example(net))],
        output_names=["stylized"],
        dynamic_axes={
            "image": {0: "batch", 2: "height", 3: "width"},
            "guide": {0: "batch", 2: "height", 3: "width"},
            "style_weights": {0: "batch"},
            "stylized": {0: "batch", 2: "height", 3: "width"},
        },
        opset_version=ONNX_OPSET,
        dynamo=False,
    )


def export_torchscript(net: TransformerNet, path: str | Path) -> Path:
    """Write a traced TorchScript module; sizes are read from the input at run time."""
    wrapper = WeightsInput(net.float().cpu().eval())
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, _example(net), check_trace=False)
    atomic_write(path, lambda tmp: traced.save(str(tmp)))
    return path
