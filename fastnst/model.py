"""The multi-style transformer network of Dumoulin et al. 2017 ("A Learned Representation
for Artistic Style"): one set of convolutions shared by every style, and per-style
conditional instance norm (CIN) scale and shift tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.modelfile import GUIDE_CHANNELS, blur_kernel, keep_carried, still_weights

# Smallest side the conv stack takes directly (9x9 reflection pad, then two stride-2 stages).
MIN_SIDE = 16
UPSAMPLE_MODES = ("nearest", "bilinear")
PADDING_MODES = ("reflect", "zero")


@dataclass(frozen=True)
class NetConfig:
    """Architecture hyper-parameters; stored verbatim in every exported model."""

    num_styles: int
    width: float = 1.0
    num_residual: int = 5
    # How the decoder doubles resolution before each 3x3 conv. "nearest" repeats every
    # feature 2x2, a grid the conv must hide; "bilinear" leaves no such grid (ablation in
    # docs/QUALITY.md, "Where the hatching comes from").
    upsample: str = "nearest"
    # How every conv sees past the border: "reflect" (Johnson et al.) or "zero" (an ablation
    # in docs/QUALITY.md: zeros give the network a border it can paint against).
    padding: str = "reflect"
    # Recurrent (Gupta et al. 2017, ReCoNet-style): the first conv also sees a guide, the
    # previous stylized frame warped onto this one plus its trust mask (GUIDE_CHANNELS), so
    # a video model can keep its strokes where the scene only moved. Without a guide (a
    # still photo, a video's first frame) it is the plain network: the guide's weights only
    # ever add to the first conv.
    recurrent: bool = False
    # A recurrent network whose head (the last 9x9 conv, at full size) sees the guide too:
    # the first conv's view of it must pass the quarter-size bottleneck, which drops the
    # carried strokes' detail, so the fresh RGB could not follow them (docs/VIDEO.md).
    guide_head: bool = False
    # Anti-aliased resampling (Zhang 2019, "Making Convolutional Networks Shift-Invariant
    # Again"): a [1, 2, 1]^2 / 16 blur before each stride-2 conv and after each upsampling
    # (the decoder's low-pass). Without it the output follows a 4-pixel lattice: a photo
    # moved by 4 px comes out moved, one moved by 1-3 px comes out painted afresh, which is
    # flicker under motion (docs/VIDEO.md).
    antialias: bool = False

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if self.padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {self.padding!r}")
        if self.guide_head and not self.recurrent:
            raise ValueError("guide_head needs a recurrent network (recurrent=true)")

    def channels(self) -> tuple[int, int, int]:
        return tuple(max(4, round(c * self.width)) for c in (32, 64, 128))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, float | int | str]:
        """The fields as stored in model files; the default upsampling, padding and
        recurrence are left out, so files of the original architecture still load in
        fastnst versions that predate those fields."""
        fields = asdict(self)
        for name, default in (
            ("upsample", "nearest"),
            ("padding", "reflect"),
            ("recurrent", False),
            ("guide_head", False),
            ("antialias", False),
        ):
            if fields[name] == default:
                del fields[name]
        return fields


def pad_to_min_side(images: torch.Tensor) -> torch.Tensor:
    """Edge-pad an image with a side under :data:`MIN_SIDE` (reflection padding needs a few
    pixels per stage) at its bottom and right; crop the output back to the input's size."""
    h, w = images.shape[-2:]
    if min(h, w) >= MIN_SIDE:
        return images
    return F.pad(images, (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h)), mode="replicate")


def style_weights(style: torch.Tensor | int | list, batch: int, num_styles: int) -> torch.Tensor:
    """Turn a style index per image, one index, or weight vectors into ``[batch, num_styles]``.

    Integer input picks a style (one-hot); float input is a blend and is used as given,
    so a one-hot blend is exactly the same computation as its index.
    """
    style = torch.as_tensor(style)
    if not style.is_floating_point():
        if style.dim() == 0:
            style = style.expand(batch)
        if style.shape != (batch,):
            raise ValueError(f"expected {batch} style indices, got shape {tuple(style.shape)}")
        if int(style.min()) < 0 or int(style.max()) >= num_styles:
            raise ValueError(f"style index out of range 0..{num_styles - 1}")
        return F.one_hot(style.long(), num_styles).float()
    if style.dim() == 1:
        style = style.unsqueeze(0).expand(batch, -1)
    if style.dim() == 4 and style.shape[:2] == (batch, num_styles):
        return style  # per-pixel weights [N, S, H, W]: each region its own style
    if style.shape != (batch, num_styles):
        raise ValueError(
            f"expected style weights of shape ({batch}, {num_styles}), got {tuple(style.shape)}"
        )
    return style


def norm_affine(
    weights: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """γ and β for a feature map of ``size``, broadcastable to ``[N, C, H, W]``.

    ``weights`` ``[N, S]`` gives one γ/β per image (``[N, C, 1, 1]``); per-pixel weights
    ``[N, S, H', W']`` are resampled to the map's size and mix the tables at every pixel
    (``[N, C, H, W]``), so a regions map styles each region with its own style in one pass.
    """
    weights = weights.to(gamma.dtype)
    if weights.dim() == 2:
        return (weights @ gamma)[:, :, None, None], (weights @ beta)[:, :, None, None]
    if tuple(weights.shape[-2:]) != tuple(size):
        weights = F.interpolate(weights, size=size, mode="bilinear", align_corners=False)
    return (
        torch.einsum("nshw,sc->nchw", weights, gamma),
        torch.einsum("nshw,sc->nchw", weights, beta),
    )


def normalize(
    x: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` in fp32, returned in ``x``'s dtype.

    fp32 input takes one fused multiply-add with a precomputed shift. fp16/bf16 input has
    its mean taken off first, in fp32: on a flat frame (a fade to black, a white card) the
    variance is ~0, the scale ~1/sqrt(eps) = 316, and the fused form cancels two large
    products that bf16's 8-bit mantissa cannot hold (a black frame came out at 7 dB PSNR)."""
    scale = gamma.float() * torch.rsqrt(var.float() + eps)
    if x.dtype == torch.float32:
        return torch.addcmul(beta.float() - mean.float() * scale, x, scale)
    return torch.addcmul(beta.float(), x.float() - mean.float(), scale).to(x.dtype)


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose scale and shift come from ``[num_styles, C]`` tables.

    The per-image γ and β are ``weights @ table``: a one-hot row selects one style, a
    convex row blends styles (Dumoulin et al.'s interpolation).
    """

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # Statistics and the affine mix in fp32 whatever the precision or autocast (bf16
        # statistics wreck flat frames, see `normalize`); the result is in x's dtype.
        with torch.autocast(x.device.type, enabled=False):
            normed = F.instance_norm(x.float(), eps=self.eps)
            gamma, beta = norm_affine(
                weights.float(), self.gamma.float(), self.beta.float(), tuple(x.shape[-2:])
            )
            return (normed * gamma + beta).to(x.dtype)


class ConvCIN(nn.Module):
    """Padded (reflection by default) convolution, conditional instance norm, optional ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        num_styles: int,
        stride: int = 1,
        relu: bool = True,
        padding: str = "reflect",
        blur: bool = False,
    ) -> None:
        super().__init__()
        # Fixed, so not saved with the weights: an anti-aliased network loads any model's.
        self.register_buffer(
            "blur_kernel", torch.from_numpy(blur_kernel(cin)) if blur else None, persistent=False
        )
        pad = nn.ReflectionPad2d if padding == "reflect" else nn.ZeroPad2d
        self.pad = pad(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride)
        self.norm = ConditionalInstanceNorm2d(cout, num_styles)
        self.relu = relu

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.blur_kernel is not None:
            x = binomial_blur(x, self.blur_kernel)
        x = self.norm(self.conv(self.pad(x)), weights)
        return F.relu(x) if self.relu else x


def binomial_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Each channel filtered by ``kernel`` (:func:`~fastnst.modelfile.blur_kernel`;
    reflect-padded, same size): the low-pass that lets a stride-2 conv after it sample
    without aliasing, and that takes the upsampling's images out of the decoder."""
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel.to(x.dtype), groups=kernel.shape[0])


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, num_styles: int, padding: str = "reflect") -> None:
        super().__init__()
        self.first = ConvCIN(channels, channels, 3, num_styles, padding=padding)
        self.second = ConvCIN(channels, channels, 3, num_styles, relu=False, padding=padding)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return x + self.second(self.first(x, weights), weights)


class UpsampleConv(nn.Module):
    """Upsampling (nearest or bilinear) then a conv: avoids transposed-conv checkerboards.
    With ``blur`` (an anti-aliased network) the upsampled features are low-passed first.

    It upsamples to the size of the matching encoder stage rather than by exactly ×2, so
    odd input sizes come back at their own size.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        num_styles: int,
        mode: str = "nearest",
        padding: str = "reflect",
        blur: bool = False,
    ) -> None:
        super().__init__()
        self.block = ConvCIN(cin, cout, 3, num_styles, padding=padding, blur=blur)
        self.mode = mode

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        if self.mode == "nearest":
            return self.block(F.interpolate(x, size=size, mode="nearest"), weights)
        return self.block(F.interpolate(x, size=size, mode=self.mode, align_corners=False), weights)


class TransformerNet(nn.Module):
    """Image → stylized image, conditioned on a style index or a blend of styles.

    Input and output are RGB in [0, 1], NCHW, any size (odd sizes included).
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels()
        s, pad = config.num_styles, config.padding
        first_inputs = 3 + (GUIDE_CHANNELS if config.recurrent else 0)
        self.encoder = nn.ModuleList(
            [
                ConvCIN(first_inputs, c1, 9, s, padding=pad),
                ConvCIN(c1, c2, 3, s, stride=2, padding=pad, blur=config.antialias),
                ConvCIN(c2, c3, 3, s, stride=2, padding=pad, blur=config.antialias),
            ]
        )
        self.residuals = nn.ModuleList(
            [ResidualBlock(c3, s, pad) for _ in range(config.num_residual)]
        )
        self.up1 = UpsampleConv(c3, c2, s, config.upsample, pad, config.antialias)
        self.up2 = UpsampleConv(c2, c1, s, config.upsample, pad, config.antialias)
        # A recurrent network's head adds a gate channel: how much of the carried output
        # (the guide's RGB) to keep at each trusted pixel (see `decode`).
        head_inputs = c1 + (GUIDE_CHANNELS if config.guide_head else 0)
        out = 3 + (1 if config.recurrent else 0)
        self.head = ConvCIN(head_inputs, out, 9, s, relu=False, padding=pad)

    @property
    def num_styles(self) -> int:
        return self.config.num_styles

    def encode(
        self, images: torch.Tensor, weights: torch.Tensor, guide: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Encoder activations, full resolution first (the temporal stage compares these).

        A recurrent network takes ``guide`` (``[N, GUIDE_CHANNELS, H, W]``; None: zeros,
        i.e. no previous frame); a plain one refuses it."""
        feats = []
        x = with_guide(images, guide, self.config.recurrent)
        for layer in self.encoder:
            x = layer(x, weights)
            feats.append(x)
        return feats

    def decode(
        self, feats: list[torch.Tensor], weights: torch.Tensor, guide: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The stylized image. A recurrent network with a ``guide`` keeps the carried output
        where its gate opens and the flow is trusted: ``rgb + gate * trusted * (carried -
        rgb)``. A conv stack cannot pass the previous frame's fine strokes through its
        quarter-resolution bottleneck, so copying them must happen here, at full size."""
        return self.decode_with_fresh(feats, weights, guide)[0]

    def decode_with_fresh(
        self, feats: list[torch.Tensor], weights: torch.Tensor, guide: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`decode`'s image and the head's own RGB before the carried output is kept
        (the same for a plain network or without a guide): the temporal stage's
        ``fresh_weight`` asks the fresh strokes themselves to follow the carried ones."""
        out = self.head_output(feats, weights, guide)
        if not self.config.recurrent:
            return out, out
        if guide is None:
            return out[:, :3], out[:, :3]
        return keep_carried(out, guide.to(out.dtype)), out[:, :3]

    def head_output(
        self, feats: list[torch.Tensor], weights: torch.Tensor, guide: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The head's raw output in [0, 1]: RGB, and a recurrent network's gate as a fourth
        channel (what :meth:`decode` mixes; tools/recurrent_error_parts.py reads the gate).
        With ``guide_head`` the head also sees ``guide`` (None: zeros)."""
        x = feats[-1]
        for block in self.residuals:
            x = block(x, weights)
        x = self.up1(x, weights, tuple(feats[1].shape[-2:]))
        x = self.up2(x, weights, tuple(feats[0].shape[-2:]))
        if self.config.guide_head:
            x = with_guide(x, guide, recurrent=True)
        return torch.sigmoid(self.head(x, weights))

    def forward(
        self,
        images: torch.Tensor,
        style: torch.Tensor | int,
        guide: torch.Tensor | None = None,
    ) -> torch.Tensor:
        weights = style_weights(style, images.shape[0], self.num_styles).to(images.device)
        h, w = images.shape[-2:]
        padded = pad_to_min_side(images)
        if guide is not None:
            guide = pad_to_min_side(guide)
        return self.decode(self.encode(padded, weights, guide), weights, guide)[..., :h, :w]


def with_guide(images: torch.Tensor, guide: torch.Tensor | None, recurrent: bool) -> torch.Tensor:
    """The first conv's input: the images, plus the guide channels for a recurrent network
    (also the head's, features and guide, with ``guide_head``)."""
    if not recurrent:
        if guide is not None:
            raise ValueError("a guide (previous frame) is only for a recurrent network")
        return images
    if guide is None:
        n, _, h, w = images.shape
        guide = images.new_zeros(n, GUIDE_CHANNELS, h, w)
    if guide.shape[1] != GUIDE_CHANNELS or guide.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"guide must be [N, {GUIDE_CHANNELS}, H, W] like the images, got {tuple(guide.shape)}"
        )
    return torch.cat([images, guide.to(images.dtype)], dim=1)


def still_network(net: TransformerNet) -> TransformerNet:
    """A recurrent network as the plain network it is on a still photo
    (:func:`~fastnst.modelfile.still_weights`): a copy, for paths that take no guide."""
    if not net.config.recurrent:
        return net
    state, config = still_weights(net.state_dict(), net.config.to_dict())
    still = TransformerNet(NetConfig(**config)).to(next(net.parameters()).device)
    still.load_state_dict(state)
    return still
