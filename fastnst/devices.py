"""Device and precision choice, written once for training, inference and the tools."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

from fastnst.errors import UserError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` means CUDA when present; asking for CUDA without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {name!r}; use auto, cpu or cuda")
    return device


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): only then is CPU bf16
    autocast faster than fp32 (measured 1.5x on an AVX512-BF16 EPYC); elsewhere it is emulated
    and slower. Read from the kernel's CPU flags, so non-Linux systems answer False."""
    if platform.system() != "Linux":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def training_precision(accelerator: str = "auto") -> str:
    """Lightning precision for ``precision: auto``: bf16 autocast where the hardware has it
    (a bf16 GPU, or a CPU with native bf16), full fp32 elsewhere."""
    wants_gpu = accelerator in ("auto", "gpu", "cuda")
    if wants_gpu and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("auto", "cpu") and cpu_has_native_bf16():
        return "bf16-mixed"
    return "32-true"


# Assumed RAM where the system cannot be asked (os.sysconf is missing on Windows).
FALLBACK_RAM = 8 * 2**30


def total_ram_bytes() -> int:
    """This machine's RAM, or :data:`FALLBACK_RAM` where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_RAM


def describe_machine() -> str:
    """One line naming the hardware a run used, for a model's provenance."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (CPU), torch {torch.__version__}"
