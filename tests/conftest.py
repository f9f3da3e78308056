"""Shared fixtures: small tensors, a tiny exported model, the shared data folder when present."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# tools/gpu_run.sh's dry run: the `cuda` tests run on the CPU at toy sizes (tests/test_cuda.py).
GPU_DRY_RUN = os.environ.get("FASTNST_GPU_DRY_RUN") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip cleanly where there is no GPU (and no dry run)."""
    if torch.cuda.is_available() or GPU_DRY_RUN:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (tools/gpu_run.sh runs these on a lent one)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a clean skip where this checkout has none beside it."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module (the tools are scripts, not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def perturbed_model(path: Path, style_names: list[str], scale: float, seed: int = 1) -> Path:
    """A tiny exported model whose weights are perturbed, so that its styles really differ."""
    from fastnst.export import ModelInfo, save_model
    from fastnst.model import NetConfig, TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet(NetConfig(num_styles=len(style_names), width=0.25, num_residual=1))
    with torch.no_grad():
        for param in net.parameters():
            param.add_(scale * torch.randn_like(param))
    return save_model(net, path, ModelInfo(net={}, style_names=style_names))


def panning_frames(frames: int, h: int, w: int, speed: int = 2, seed: int = 0) -> torch.Tensor:
    """``[T, 3, H, W]`` views of one smooth random texture, the camera panning right by
    ``speed`` px a frame (so the content moves left and new columns enter on the right)."""
    coarse = torch.rand(
        1,
        3,
        max(2, h // 6),
        max(2, (w + speed * frames) // 6),
        generator=torch.Generator().manual_seed(seed),
    )
    texture = torch.nn.functional.interpolate(
        coarse, size=(h, w + speed * frames), mode="bicubic", align_corners=False
    ).clamp(0, 1)[0]
    return torch.stack([texture[:, :, speed * t : speed * t + w] for t in range(frames)])


def write_clip(path: Path, frames: torch.Tensor, rate: int = 10, audio: bool = False) -> Path:
    """An H.264 file of ``frames`` (``[T, 3, H, W]`` in [0, 1]) at ``rate`` frames/s, with an
    AAC tone track as long as the video when ``audio``."""
    from fractions import Fraction

    import av
    import numpy as np

    arrays = (frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = arrays.shape[2], arrays.shape[1], "yuv420p"
        sound = container.add_stream("aac", rate=16000) if audio else None
        for index, array in enumerate(arrays):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples = 16000 * len(arrays) // rate
            tone = np.sin(np.arange(samples) * 0.1).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = np.ascontiguousarray(tone[:, start : start + 1024])
                block = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                block.sample_rate, block.pts = 16000, start
                container.mux(sound.encode(block))
            container.mux(sound.encode())
    return path
