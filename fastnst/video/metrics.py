"""Video stability: the warping error of Lai et al. 2018 ("Learning Blind Video Temporal
Consistency", eq. 9), with flow and occlusion masks taken from the *input* frames."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from fastnst.video.flow import flow_pair
from fastnst.video.warp import warp


@dataclass(frozen=True)
class WarpingError:
    """The mean over frame pairs, and each pair's value (``per_pair[k]`` is frames k, k+1)."""

    mean: float
    per_pair: list[float]


def masked_warp_error(
    current: torch.Tensor, previous: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Per image: Σ_i M(i) ‖O_t(i) − W(O_{t−1})(i)‖² / Σ_i M(i) (squared RGB distance)."""
    diff = (current - warp(previous, flow)).pow(2).sum(1, keepdim=True)
    return (mask * diff).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1.0)


def input_flows(
    frames_in: torch.Tensor, method: str = "dis", batch: int = 8
) -> Iterable[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(t, backward flow t -> t-1, mask)`` for t = 1..T-1, in chunks of ``batch`` pairs."""
    for start in range(1, frames_in.shape[0], batch):
        stop = min(start + batch, frames_in.shape[0])
        flow, mask = flow_pair(frames_in[start - 1 : stop - 1], frames_in[start:stop], method)
        yield start, flow, mask


@torch.no_grad()
def warping_error(
    frames_in: torch.Tensor, frames_out: torch.Tensor, method: str = "dis"
) -> WarpingError:
    """E = 1/(T−1) Σ_t Σ_i M_t(i) ‖O_t(i) − W(O_{t−1})(i)‖² / Σ_i M_t(i).

    ``frames_in``/``frames_out`` are ``[T, 3, H, W]`` RGB in [0, 1]; the flow and the mask
    M_t (occlusions and motion boundaries) come from ``frames_in``. ``warping_error(x, x)``
    is the input's own error: the floor a stylized video is judged against.
    """
    return warping_errors(frames_in, [frames_out], method)[0]


@torch.no_grad()
def warping_errors(
    frames_in: torch.Tensor, outputs: list[torch.Tensor], method: str = "dis"
) -> list[WarpingError]:
    """:func:`warping_error` of several outputs of one input, computing the flow once."""
    if frames_in.dim() != 4 or frames_in.shape[0] < 2:
        raise ValueError("need at least two frames [T, 3, H, W]")
    for out in outputs:
        if out.shape != frames_in.shape:
            raise ValueError(
                f"output {tuple(out.shape)} differs from input {tuple(frames_in.shape)}"
            )
    per_pair: list[list[float]] = [[] for _ in outputs]
    for start, flow, mask in input_flows(frames_in.float(), method):
        stop = start + flow.shape[0]
        for values, out in zip(per_pair, outputs, strict=True):
            out = out.float()
            errors = masked_warp_error(out[start:stop], out[start - 1 : stop - 1], flow, mask)
            values.extend(errors.tolist())
    return [WarpingError(sum(v) / len(v), v) for v in per_pair]


def heat_colors(values: torch.Tensor, top: float) -> torch.Tensor:
    """``[N, 1, H, W]`` ≥ 0 → ``[N, 3, H, W]``: black → red → yellow → white up to ``top``."""
    t = (values / top).clamp(0, 1)
    return torch.cat([(3 * t).clamp(0, 1), (3 * t - 1).clamp(0, 1), (3 * t - 2).clamp(0, 1)], 1)


def flicker_map(
    current: torch.Tensor,
    previous: torch.Tensor,
    flow: torch.Tensor,
    mask: torch.Tensor,
    top: float = 0.25,
) -> torch.Tensor:
    """|O_t − W(O_{t−1})| per pixel as a heat map (``[N, 3, H, W]``): where a video flickers.
    Pixels the flow does not vouch for (occlusions, motion boundaries) are painted blue."""
    flicker = (current - warp(previous, flow)).pow(2).sum(1, keepdim=True).sqrt()
    blue = torch.tensor([0.1, 0.2, 0.8], device=flicker.device).view(1, 3, 1, 1)
    return torch.where(mask.bool(), heat_colors(flicker, top), blue)
