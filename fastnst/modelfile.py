"""Reading a model file without torch: the JSON header and the weights as NumPy arrays.

The shared ``.safetensors`` file is all a user needs to stylize, so this reader depends on
safetensors and NumPy alone; :func:`fastnst.export.read_info` wraps it for torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load as load_bytes

from fastnst.errors import UserError
from fastnst.models import bundled_models, resolve_model

FORMAT_NAME = "fastnst"
FORMAT_VERSION = 1
# A recurrent network's extra input (``net.recurrent``, :class:`fastnst.model.NetConfig`): the
# previous output warped onto the frame (RGB) and where that flow is trusted (1 channel),
# after the image's 3 channels in its first conv.
GUIDE_CHANNELS = 4
FIRST_CONV = "encoder.0.conv.weight"
# A recurrent network's head has a fourth output, the gate (fastnst.model.TransformerNet.decode).
HEAD_CONV = "head.conv.weight"
HEAD_OUTPUTS = (HEAD_CONV, "head.conv.bias", "head.norm.gamma", "head.norm.beta")
# The network options a model file may describe (``net``): the fields of
# :class:`fastnst.model.NetConfig`, which both backends build. An option outside them comes
# from a newer fastnst, and ignoring it would stylize with another network.
NET_FIELDS = (
    "num_styles",
    "width",
    "num_residual",
    "upsample",
    "padding",
    "recurrent",
    "guide_head",
    "antialias",
)


def blur_kernel(channels: int) -> np.ndarray:
    """An anti-aliased network's fixed low-pass (``net.antialias``, :class:`fastnst.model.
    NetConfig`), ``[channels, 1, 3, 3]`` float32: [1, 2, 1]^2 / 16 per channel, a depthwise
    conv before each stride-2 conv and after each upsampling. Here so that torch and the
    onnx graph share it."""
    taps = np.array([1.0, 2.0, 1.0], np.float32)
    return np.ascontiguousarray(np.broadcast_to(np.outer(taps, taps) / 16, (channels, 1, 3, 3)))


def still_weights(
    state: dict[str, Any], net: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A recurrent network's weights and ``net`` header as the plain network it is without
    a guide (a still photo, a video's first frame: the guide is zeros, so its input
    channels, the first conv's and with ``guide_head`` the head's, never contribute), for
    every path that takes no guide: stills, tiles, row bands, regions; the head's gate
    output goes too. NumPy arrays or tensors; a plain network's are returned as they are."""
    if not net.get("recurrent"):
        return state, net
    still = dict(state)
    still[FIRST_CONV] = state[FIRST_CONV][:, :3]
    for key in HEAD_OUTPUTS:  # the gate channel only acts with a guide
        still[key] = state[key][:3] if key.startswith("head.conv") else state[key][:, :3]
    if net.get("guide_head"):  # so do the head's guide inputs (the last ones)
        still[HEAD_CONV] = still[HEAD_CONV][:, :-GUIDE_CHANNELS]
    plain = {key: value for key, value in net.items() if key not in ("recurrent", "guide_head")}
    return still, plain


def keep_carried(out: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """A recurrent network's raw ``[N, 4, H, W]`` output (RGB and gate) and its guide as the
    frame: the carried RGB kept where the gate opens and the flow is trusted. Arithmetic
    only, so one formula serves NumPy arrays (onnxruntime) and tensors (the torch network)."""
    rgb, keep = out[:, :3], out[:, 3:] * guide[:, 3:]
    return rgb + keep * (guide[:, :3] - rgb)


class ModelFileError(UserError):
    """A file that is not a loadable fastnst model; the message is fit for the user."""


@dataclass
class ModelInfo:
    """Everything a model file says about itself besides its weights."""

    net: dict[str, Any]
    style_names: list[str]
    format_version: int = FORMAT_VERSION
    loss: dict[str, Any] = field(default_factory=dict)
    vgg_weights: str = ""
    steps: int = 0
    image_size: int = 0
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def read_model_file(path: str | Path) -> tuple[ModelInfo, dict[str, np.ndarray]]:
    """Parse a model file into its header and NumPy weights (as stored: fp16 or fp32);
    raise :class:`ModelFileError` with a plain reason if it is not one."""
    path = resolve_model(path)
    if not path.is_file():
        names = ", ".join(bundled_models()) or "none"
        raise ModelFileError(f"model file not found: {path} (bundled models: {names})")
    data = path.read_bytes()
    try:
        state = load_bytes(data)
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, ValueError, TypeError, OSError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is not a readable .safetensors model ({exc})") from None
    if FORMAT_NAME not in metadata:
        raise ModelFileError(f"{path} is a safetensors file but not a fastnst model")
    try:
        raw = json.loads(metadata[FORMAT_NAME])
        if not isinstance(raw, dict):
            raise TypeError(f"a JSON {type(raw).__name__}, not an object")
        version = int(raw.get("format_version", 0))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has a damaged fastnst header ({exc})") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses model format {version}; this fastnst reads up to {FORMAT_VERSION}: "
            "upgrade fastnst"
        )
    try:
        info = ModelInfo(**raw)
    except TypeError as exc:
        raise ModelFileError(f"{path} has an unexpected fastnst header ({exc})") from None
    _check_header(path, info)
    # Before anything is sized by the header: a claim of 10**9 residual blocks would
    # otherwise be built (or listed) block by block.
    described = info.net.get("num_residual", 5)
    blocks = {key.split(".")[1] for key in state if key.startswith("residuals.")}
    if type(described) is not int or described != len(blocks):
        raise ModelFileError(
            f"{path}: the header says {described!r} residual blocks, the weights hold {len(blocks)}"
        )
    broken = non_finite(state)
    if broken:
        raise ModelFileError(f"{path} has NaN or infinite weights ({broken}): a damaged model")
    return info, state


def non_finite(state: dict[str, np.ndarray]) -> str:
    """The first array holding NaN or infinity and how many it holds, or "": NaN weights
    stylize every photo to black without a word."""
    for key, value in state.items():
        if np.issubdtype(value.dtype, np.floating):
            bad = int((~np.isfinite(value)).sum())
            if bad:
                return f"{bad} in {key}"
    return ""


def _check_header(path: Path, info: ModelInfo) -> None:
    """The header's parts have the types and agree with each other: a model whose style
    names do not match its style count would stylize with the wrong names."""
    if not isinstance(info.net, dict) or not isinstance(info.extra, dict):
        raise ModelFileError(f"{path} has a damaged fastnst header (net/extra are not objects)")
    unknown = sorted(set(info.net) - set(NET_FIELDS))
    if unknown:
        raise ModelFileError(
            f"{path} describes a network option this fastnst does not know "
            f"({', '.join(map(str, unknown))}): made by a newer fastnst? Upgrade fastnst"
        )
    names = info.style_names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"{path} has a damaged fastnst header (style_names is not a list)")
    declared = info.net.get("num_styles")
    if declared != len(names):
        raise ModelFileError(
            f"{path} names {len(names)} styles but its network has {declared}: a damaged file"
        )
