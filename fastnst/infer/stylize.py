"""Load an exported model for inference and apply it: style specs, blends, strength, colour.

Only the model file is read (through :mod:`fastnst.export`), and only core dependencies are
imported, so a user who never trains needs neither Lightning, Hydra nor FiftyOne.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.devices import pick_device
from fastnst.errors import UserError
from fastnst.export import ModelInfo, load_model
from fastnst.images import gaussian_blur
from fastnst.model import (
    ConditionalInstanceNorm2d,
    TransformerNet,
    norm_affine,
    normalize,
    pad_to_min_side,
    still_network,
)
from fastnst.runtime.arrays import STROKE_SIGMA
from fastnst.runtime.styles import parse_style_spec as parse_styles

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` is fp16 on a GPU (tensor cores) and fp32 on a CPU (half is slower there)."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16")
    return PRECISIONS[precision]


def parse_style_spec(spec: str, style_names: list[str]) -> list[tuple[str, torch.Tensor]]:
    """:func:`fastnst.runtime.styles.parse_style_spec` with the weights as tensors."""
    return [(label, torch.from_numpy(w)) for label, w in parse_styles(spec, style_names)]


def mix_strength(stylized: torch.Tensor, photo: torch.Tensor, strength: float) -> torch.Tensor:
    """Linear mix with the photo: 1 is the full style, 0 the untouched photo; above 1 the
    strokes bolder (:func:`bolder_strokes`)."""
    if strength > 1.0:
        return bolder_strokes(stylized, strength)
    if strength == 1.0:
        return stylized
    return torch.lerp(photo.to(stylized.dtype), stylized, strength)


def bolder_strokes(images: torch.Tensor, strength: float) -> torch.Tensor:
    """:func:`fastnst.runtime.arrays.bolder_strokes` in torch (on the images' device): the
    detail around a Gaussian blur times ``strength``, clipped to [0, 1]."""
    low = gaussian_blur(images, STROKE_SIGMA)
    return (low + strength * (images - low)).clamp(0, 1)


def rgb_to_ycbcr(images: torch.Tensor) -> torch.Tensor:
    """BT.601 full-range YCbCr, chroma centred on 0.5 (the JPEG convention)."""
    r, g, b = images.unbind(-3)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 0.5 + (b - y) * 0.564
    cr = 0.5 + (r - y) * 0.713
    return torch.stack((y, cb, cr), dim=-3)


def ycbcr_to_rgb(images: torch.Tensor) -> torch.Tensor:
    y, cb, cr = images.unbind(-3)
    r = y + (cr - 0.5) / 0.713
    b = y + (cb - 0.5) / 0.564
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack((r, g, b), dim=-3).clamp(0, 1)


def preserve_color(stylized: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer: the stylized brightness with the photo's chroma."""
    styled = rgb_to_ycbcr(stylized.float())
    original = rgb_to_ycbcr(photo.float())
    return ycbcr_to_rgb(torch.cat((styled[:, :1], original[:, 1:]), dim=1)).to(stylized.dtype)


class FusedNorm(ConditionalInstanceNorm2d):
    """The same conditional instance norm as training, as per-channel statistics and one fused
    multiply-add. PyTorch's instance norm goes through batch norm with reshapes and copies
    (over half the CPU time of the whole network, measured with torch.profiler); this is
    about 1.4x (full width) to 2x (slim) faster end to end on a CPU."""

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        x_dtype, x = x.dtype, x.float()  # fp32 statistics: see `normalize`
        if x.device.type == "cpu":
            # Two plain passes: PyTorch's CPU var_mean (Welford) is 10-20x slower than a mean
            # and a mean of squared deviations (a third of lite's whole CPU time, measured
            # with torch.profiler), and this is as accurate (rel. error ~1e-7 in fp32).
            mean = x.mean(dim=(2, 3), keepdim=True)
            var = (x - mean).square_().mean(dim=(2, 3), keepdim=True)
        else:
            var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        gamma, beta = norm_affine(weights, self.gamma, self.beta, tuple(x.shape[-2:]))
        return normalize(x, mean, var, gamma, beta, self.eps).to(x_dtype)


def fuse_norms(net: TransformerNet) -> TransformerNet:
    """Switch every norm layer of an inference network to :class:`FusedNorm` in place
    (same parameters, same results to float rounding)."""
    for module in net.modules():
        if type(module) is ConditionalInstanceNorm2d:
            module.__class__ = FusedNorm
    return net


class RowsConv2d(nn.Module):
    """A k x k convolution with few output channels, as one 1 x k convolution with k times
    the outputs (one per kernel row) and a sum of k row-shifted slices. oneDNN computes output
    channels in blocks of 8 or 16, so the network's last conv (9 x 9 to 3 channels) wastes most
    of its work on a CPU; this form makes the whole network about 12% faster there (lite and
    full, 512x384, one thread; at 1080p the conv itself is 1.2x (lite) to 2.6x (full) faster).
    Unpadded, stride 1, as the head's conv is."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        out, cin, k, _ = conv.weight.shape
        rows = conv.weight.detach().permute(2, 0, 1, 3).reshape(k * out, cin, 1, k)
        self.kernel, self.out = k, out
        self.register_buffer("weight", rows.contiguous(memory_format=torch.channels_last))
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(out)
        self.register_buffer("bias", bias.clone()[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[-2] - self.kernel + 1
        rows = F.conv2d(x, self.weight).unflatten(1, (self.kernel, self.out))
        out = rows[:, 0, :, :height] + self.bias
        for row in range(1, self.kernel):
            out += rows[:, row, :, row : row + height]
        return out


def freeze_for_cpu(net: TransformerNet) -> torch.jit.ScriptModule:
    """A traced and frozen copy of ``net`` for CPU inference: constant-folded weights and
    no Python between layers, about 20% faster than eager on the lite network (measured at
    512x384, one thread), and the head's conv as :class:`RowsConv2d`. Shapes stay dynamic:
    sizes are read from the input at run time."""
    import warnings

    from fastnst.export_runtimes import WeightsInput

    net = copy.deepcopy(net)
    net.head.conv = RowsConv2d(net.head.conv)

    example = torch.rand(1, 3, 67, 93).contiguous(memory_format=torch.channels_last)
    weights = torch.full((1, net.num_styles), 1.0 / net.num_styles)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(WeightsInput(net).eval(), (example, weights), check_trace=False)
        return torch.jit.freeze(traced.eval())


@dataclass
class Stylizer:
    """A loaded model on its device and precision, ready for ``[N, 3, H, W]`` batches.

    ``net`` is the network for still images; a recurrent model (``net.recurrent``) keeps its
    whole network as ``recurrent_net`` for video frames with a guide (:meth:`guided`)."""

    net: TransformerNet
    info: ModelInfo
    device: torch.device
    dtype: torch.dtype
    frozen: torch.jit.ScriptModule | None = None
    recurrent_net: TransformerNet | None = None

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", precision: str = "auto") -> Stylizer:
        """Load for inference; on a CPU in fp32 the network is also traced and frozen."""
        target = pick_device(device)
        dtype = pick_dtype(precision, target)
        if target.type == "cpu" and dtype != torch.float32:
            print(
                f"warning: --precision {precision} on a CPU runs several times slower than fp32 "
                "(8x on a 2-core EPYC with native bf16, docs/BENCHMARKS.md); it is meant for GPUs",
                file=sys.stderr,
            )
        loaded, info = load_model(path, "cpu")
        recurrent = None
        if loaded.config.recurrent:
            recurrent = fuse_norms(loaded).to(device=target, dtype=dtype)
        net = still_network(loaded)
        net = fuse_norms(net).to(device=target, dtype=dtype, memory_format=torch.channels_last)
        frozen = freeze_for_cpu(net) if target.type == "cpu" and dtype == torch.float32 else None
        return cls(
            net=net, info=info, device=target, dtype=dtype, frozen=frozen, recurrent_net=recurrent
        )

    @property
    def recurrent(self) -> bool:
        return self.recurrent_net is not None

    @property
    def style_names(self) -> list[str]:
        return list(self.info.style_names)

    def styles(self, spec: str) -> list[tuple[str, torch.Tensor]]:
        return parse_style_spec(spec, self.style_names)

    @torch.inference_mode()
    def __call__(
        self,
        images: torch.Tensor,
        weights: torch.Tensor,
        strength: float = 1.0,
        keep_color: bool = False,
        tile: int = 0,
    ) -> torch.Tensor:
        """Stylize float RGB ``images`` in [0, 1]; returns float32 on the model's device.

        ``weights`` is ``[S]`` (a style or a blend) or ``[1, S, H, W]``, a style mix per pixel
        (regions; run whole, untiled). ``tile`` > 0 runs large images tile by tile with
        whole-image norm statistics.
        """
        photo = images.to(self.device, non_blocking=True)
        height, width = photo.shape[-2:]
        batch = pad_to_min_side(photo).to(self.dtype).contiguous(memory_format=torch.channels_last)
        if weights.dim() == 4:  # per-pixel weights [1, S, H, W] (regions): the eager network
            rows = weights.to(self.device, torch.float32).expand(photo.shape[0], -1, -1, -1)
            out = self.net.decode(self.net.encode(batch, rows), rows)
        elif tile > 0 and max(photo.shape[-2:]) > tile:
            rows = weights.to(self.device, torch.float32).expand(photo.shape[0], -1)
            from fastnst.infer.tiling import stylize_tiled

            out = torch.cat(
                [
                    stylize_tiled(self.net, batch[i : i + 1], rows[i : i + 1], tile)
                    for i in range(len(batch))
                ]
            )
        else:
            rows = weights.to(self.device, torch.float32).expand(photo.shape[0], -1)
            if self.frozen is not None:
                out = self.frozen(batch, rows)
            else:
                out = self.net.decode(self.net.encode(batch, rows), rows)
        return self.finish(out[..., :height, :width], photo, strength, keep_color)

    def finish(
        self, out: torch.Tensor, photo: torch.Tensor, strength: float, keep_color: bool
    ) -> torch.Tensor:
        """The network's output as shown: the photo's colours kept, mixed with the photo."""
        out, photo = out.float(), photo.to(out.device).float()
        if keep_color:
            out = preserve_color(out, photo)
        return mix_strength(out, photo, strength)

    @torch.inference_mode()
    def guided(
        self, images: torch.Tensor, weights: torch.Tensor, guide: torch.Tensor
    ) -> torch.Tensor:
        """A recurrent model's raw output (float32) for ``images`` and their
        ``[N, GUIDE_CHANNELS, H, W]`` guide (:class:`~fastnst.infer.temporal_blend.Recurrence`)."""
        if self.recurrent_net is None:
            raise UserError("this model is not recurrent: it takes no guide")
        photo = images.to(self.device, self.dtype)
        rows = weights.to(self.device, torch.float32).expand(photo.shape[0], -1)
        out = self.recurrent_net(photo, rows, guide.to(self.device, self.dtype))
        return out.float()
