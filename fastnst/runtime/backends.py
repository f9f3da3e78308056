"""``--backend auto|torch|onnx``: which engine runs a model file.

``auto`` takes torch when it is installed and a CUDA GPU is present (its fp16 path is the
fastest there), and onnxruntime otherwise (on its CUDA/TensorRT providers when
onnxruntime-gpu is installed). The choice is made without importing torch, whose import
alone costs about 1.3 s on a 2-core CPU.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastnst.errors import UserError

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
TORCH_HINT = "pip install 'fastnst[torch]'"


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver with at least one GPU, read from /proc (no CUDA call)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def choose_backend(backend: str, device: str, precision: str) -> str:
    """The backend ``auto`` stands for here, or ``backend`` itself when it can run."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if backend == "auto":
        torch_wanted = precision in ("fp16", "bf16") or (device != "cpu" and nvidia_gpu_present())
        backend = "torch" if torch_wanted and torch_installed() else "onnx"
    if backend == "torch" and not torch_installed():
        raise UserError(f"the torch backend needs PyTorch: {TORCH_HINT}, or use --backend onnx")
    if backend == "onnx" and precision not in ("auto", "fp32"):
        raise UserError(f"--precision {precision} needs --backend torch; onnx runs in fp32")
    return backend


def load_stylizer(
    model: str | Path,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    threads: int = 0,
    spin: bool = True,
) -> Any:
    """A stylizer for ``model`` on the chosen backend, with the NumPy interface of
    :class:`~fastnst.runtime.onnx_backend.OnnxStylizer` (images ``[N, 3, H, W]`` float32);
    ``spin`` is onnxruntime's (see :meth:`OnnxStylizer.load`)."""
    if choose_backend(backend, device, precision) == "onnx":
        from fastnst.runtime.onnx_backend import OnnxStylizer

        return OnnxStylizer.load(model, device, threads, spin)
    import torch

    from fastnst.infer.stylize import Stylizer
    from fastnst.infer.torch_backend import TorchBackend

    if threads > 0:
        torch.set_num_threads(threads)
    return TorchBackend(Stylizer.load(model, device, precision))
