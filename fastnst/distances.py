"""Scale-free distances of a stylized image from its style image and from its photo.

The training loss's numbers depend on its layer weights and content weight, so they cannot
compare models trained with different recipes, nor with other tools. These can: each is a
*relative* error in a VGG-19's feature space (Caffe weights, taps after the ReLU):

- style distance: mean over relu1_1..relu5_1 of ‖G(output) − G(style)‖ / ‖G(style)‖, with
  G the Gram matrix normalised by C·H·W (so image sizes may differ);
- content distance: ‖F(output) − F(photo)‖ / ‖F(photo)‖ at relu4_2 (Gatys et al.'s content
  layer, deeper than our training's relu2_2: it asks whether the objects survive, not the
  pixels).

0 is a perfect match; the photo itself has content distance 0 and a large style distance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastnst.losses import gram_matrix
from fastnst.vgg import VGGFeatures

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


class Distances:
    """Holds one VGG-19 and each style image's Gram matrices; scores outputs against them."""

    def __init__(self, style_images: Sequence[torch.Tensor], device: str = "cpu") -> None:
        self.vgg = VGGFeatures([*STYLE_LAYERS, CONTENT_LAYER], weights="caffe").to(device)
        self.device = device
        self.style_grams = [self._grams(image) for image in style_images]

    @torch.no_grad()
    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = image if image.dim() == 4 else image.unsqueeze(0)
        return self.vgg(batch.float().to(self.device))

    def _grams(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self._features(image)
        return {name: gram_matrix(feats[name])[0] for name in STYLE_LAYERS}

    @torch.no_grad()
    def photo_feature(self, photo: torch.Tensor) -> torch.Tensor:
        """The photo's content feature: computed once per photo when many outputs share it."""
        return self._features(photo)[CONTENT_LAYER]

    @torch.no_grad()
    def __call__(
        self,
        output: torch.Tensor,
        photo: torch.Tensor,
        style: int,
        photo_feature: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """``{"style": …, "content": …}`` of one output ``[3, H, W]`` (or ``[1, 3, H, W]``);
        ``photo_feature`` (from :meth:`photo_feature`) skips the photo's VGG pass."""
        out_feats = self._features(output)
        if photo_feature is None:
            photo_feature = self.photo_feature(photo)
        target = self.style_grams[style]
        per_layer = [
            float((gram_matrix(out_feats[n])[0] - target[n]).norm() / target[n].norm())
            for n in STYLE_LAYERS
        ]
        content = float(
            (out_feats[CONTENT_LAYER] - photo_feature).norm()
            / photo_feature.norm().clamp_min(1e-12)
        )
        return {"style": sum(per_layer) / len(per_layer), "content": content}
