"""Shared fixtures: small tensors, a tiny exported model, the shared data folder when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a clean skip where this checkout has none beside it."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


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
