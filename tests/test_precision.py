"""Low precision against fp32 on flat, near-flat and noisy frames: the norm's statistics and
affine mix stay in fp32 (bf16 statistics turned a black frame into 7 dB of noise)."""

from __future__ import annotations

import math

import pytest
import torch

from fastnst.infer.stylize import Stylizer
from fastnst.model import TransformerNet

SIZE = (1, 3, 72, 128)


def _frames() -> dict[str, torch.Tensor]:
    ramp = torch.linspace(0, 1, SIZE[-1]).expand(SIZE)
    noise = torch.rand(SIZE, generator=torch.Generator().manual_seed(1))
    return {
        "black": torch.zeros(SIZE),
        "white": torch.ones(SIZE),
        "near-flat": 0.3 + 0.05 * ramp + 0.02 * noise,  # a dim fade with grain
        "noisy": noise,
    }


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / max(float((a - b).square().mean()), 1e-12))


def _supported(dtype: torch.dtype) -> bool:
    try:
        torch.nn.functional.conv2d(
            torch.ones(1, 1, 3, 3, dtype=dtype), torch.ones(1, 1, 1, 1, dtype=dtype)
        )
    except RuntimeError:
        return False
    return True


# PSNR floors against fp32, a few dB under what was measured on classics (this CPU, after the
# fix): fp16 83.7 flat, 54.9 near-flat, 73.5 noisy; bf16 69.3, 38.5, 53.4 (bf16 has 8 bits of
# mantissa: a dim fade's grain is where it shows). Before the fix bf16 gave 7.4 dB on black.
# classics v2 (2026-11-30) gives 58.8 dB on black in bf16: one bf16 step (2e-3) on a flat
# output of 0.70; the floor for flat frames is 55 dB, far above the bug's 7 dB.
FLOOR_DB = {
    torch.float16: {"black": 75.0, "white": 75.0, "near-flat": 50.0, "noisy": 65.0},
    torch.bfloat16: {"black": 55.0, "white": 55.0, "near-flat": 34.0, "noisy": 48.0},
}


# The frames also run through the multi-pass tiler, whose statistics are gathered tile by tile:
# the flat ones, where a low-precision sum shows first. On this CPU a tiled low-precision call
# takes ~6 s (fp32 0.7 s): all four frames made this the suite's slowest test.
TILED = ("black", "near-flat")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_stylizer_low_precision_matches_fp32(precision: str) -> None:
    low = Stylizer.load("classics", "cpu", precision)
    if not _supported(low.dtype):
        pytest.skip(f"{precision} convolutions are not supported on this CPU")
    reference = Stylizer.load("classics", "cpu", "fp32")
    weights = torch.eye(reference.net.num_styles)[0]
    for name, frame in _frames().items():
        # The input is rounded to the low precision on the way in: compare with fp32 on the
        # same rounded input, so that only the network's arithmetic is judged.
        rounded = frame.to(low.dtype).float()
        expected = reference(rounded, weights)
        got = low(frame, weights)
        assert _psnr(expected, got) > FLOOR_DB[low.dtype][name], (name, _psnr(expected, got))
        if name not in TILED:
            continue
        tiled = low(frame, weights, tile=64)
        assert _psnr(expected, tiled) > FLOOR_DB[low.dtype][name] - 1, (
            name,
            _psnr(expected, tiled),
        )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_training_norm_low_precision_matches_fp32(dtype: torch.dtype) -> None:
    """The training network (unfused norm) in bf16 autocast and in plain low-precision weights."""
    if not _supported(dtype):
        pytest.skip(f"{dtype} convolutions are not supported on this CPU")
    net = Stylizer.load("classics", "cpu", "fp32").net
    plain = TransformerNet(net.config)
    plain.load_state_dict(net.state_dict())
    plain.eval()
    low = TransformerNet(net.config).to(dtype)
    low.load_state_dict(net.state_dict())
    low.eval()
    with torch.no_grad():
        for name, frame in _frames().items():
            rounded = frame.to(dtype).float()
            expected = plain(rounded, 0)
            got = low(frame.to(dtype), 0).float()
            assert _psnr(expected, got) > FLOOR_DB[dtype][name], (name, _psnr(expected, got))
            if dtype == torch.bfloat16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    mixed = plain(frame, 0).float()
                # autocast rounds every conv's input and weights, not only the photo
                assert _psnr(expected, mixed) > FLOOR_DB[dtype][name] - 1, (
                    name,
                    _psnr(expected, mixed),
                )
