"""The torch :class:`~fastnst.infer.stylize.Stylizer` behind the NumPy interface that the
``stylize`` command shares with the onnxruntime backend (:mod:`fastnst.runtime.backends`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fastnst.devices import total_ram_bytes
from fastnst.infer.stylize import Stylizer
from fastnst.runtime.styles import parse_style_spec

AUTO_TILE = 1024


def auto_tile(image: torch.Tensor, stylizer: Stylizer) -> int:
    """Tile only when a whole-image run would not fit: about eight live activations of the
    first layer's width, against half the free GPU memory or a quarter of the RAM."""
    first_width = stylizer.net.config.channels()[0]
    element = torch.finfo(stylizer.dtype).bits // 8
    need = image.shape[-1] * image.shape[-2] * first_width * element * 8
    if stylizer.device.type == "cuda":
        budget = torch.cuda.mem_get_info(stylizer.device)[0] // 2
    else:
        budget = total_ram_bytes() // 4
    return AUTO_TILE if need > budget else 0


class TorchBackend:
    """NumPy arrays in and out (tensors on ``tensor_device`` pass through as tensors, so the
    video path can keep decoding straight to the GPU)."""

    def __init__(self, stylizer: Stylizer) -> None:
        self.stylizer = stylizer
        self.tensor_device = stylizer.device

    @property
    def style_names(self) -> list[str]:
        return self.stylizer.style_names

    @property
    def on_gpu(self) -> bool:
        return self.stylizer.device.type == "cuda"

    @property
    def engine(self) -> str:
        return f"torch on {self.stylizer.device}"

    def styles(self, spec: str) -> list[tuple[str, np.ndarray]]:
        return parse_style_spec(spec, self.style_names)

    def auto_tile(self, shape: tuple[int, ...]) -> int:
        return auto_tile(torch.empty(shape, device="meta"), self.stylizer)

    @property
    def recurrent(self) -> bool:
        return self.stylizer.recurrent

    def guided(self, images: np.ndarray, weights: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """A recurrent model's raw output for NumPy frames and guides."""
        rows = torch.as_tensor(weights)
        out = self.stylizer.guided(torch.from_numpy(images), rows, torch.from_numpy(guide))
        return out.cpu().numpy()

    def finish(self, out: Any, photos: Any, strength: float, keep_color: bool) -> Any:
        """Raw outputs as shown (``--preserve-color``, ``--strength``), of the photos' kind."""
        if strength >= 1.0 and not keep_color:
            return out
        if isinstance(photos, torch.Tensor):
            return self.stylizer.finish(out, photos, strength, keep_color)
        shown = self.stylizer.finish(
            torch.from_numpy(out), torch.from_numpy(photos), strength, keep_color
        )
        return shown.cpu().numpy()

    def __call__(
        self,
        images: Any,
        weights: np.ndarray,
        strength: float = 1.0,
        keep_color: bool = False,
        tile: int = 0,
    ) -> Any:
        rows = torch.as_tensor(weights)
        if isinstance(images, torch.Tensor):
            return self.stylizer(images, rows, strength, keep_color, tile)
        out = self.stylizer(torch.from_numpy(images), rows, strength, keep_color, tile)
        return out.cpu().numpy()
