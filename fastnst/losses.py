"""Perceptual losses. Every loss returns ``(total, named parts)`` so that each term can be
logged on its own and a run can be read term by term."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.errors import UserError
from fastnst.relaxed_style import nearest_targets, smooth_flows, warped_copies
from fastnst.vgg import VGGFeatures

LossParts = dict[str, torch.Tensor]
# What the style loss compares per layer: Gram matrices (Gatys et al.), or covariances, the
# Gram matrices of mean-centred features (seed 004's comparison, docs/QUALITY.md).
STYLE_STATS = ("gram", "covariance")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by C·H·W, always in fp32 (bf16 sums over H·W drift)."""
    n, c, h, w = features.shape
    flat = features.float().reshape(n, c, h * w)
    with torch.autocast(device_type=flat.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def covariance_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel covariance: the Gram matrix of the features minus their per-image spatial
    mean, with the same C·H·W normalisation. Unlike the Gram matrix it ignores how strongly
    each channel fires on average and keeps only how channels vary together."""
    flat = features.float()
    return gram_matrix(flat - flat.mean(dim=(2, 3), keepdim=True))


def style_statistic(features: torch.Tensor, stat: str = "gram") -> torch.Tensor:
    """``[N, C, C]`` per image: :func:`gram_matrix` or :func:`covariance_matrix`."""
    if stat == "gram":
        return gram_matrix(features)
    if stat == "covariance":
        return covariance_matrix(features)
    raise ValueError(f"style statistic must be one of {STYLE_STATS}, got {stat!r}")


def content_loss(
    features: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    layers: Mapping[str, float],
) -> tuple[torch.Tensor, LossParts]:
    """Weighted feature MSE per layer, summed."""
    parts = {
        f"content/{name}": weight * F.mse_loss(features[name].float(), targets[name].float())
        for name, weight in layers.items()
    }
    return torch.stack(list(parts.values())).sum(), parts


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layers: Mapping[str, float],
    style_mix: torch.Tensor,
    style_coefficients: torch.Tensor | None = None,
    style_stat: str = "gram",
    statistics: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, LossParts]:
    """Gram (or, with ``style_stat="covariance"``, covariance) MSE per layer against each
    image's own target. ``statistics``: the images' own, when the caller has them already.

    ``target_grams[layer]`` is ``[num_styles, C, C]`` of that statistic; ``style_mix`` is
    ``[N, num_styles]``
    (one-hot for a single style, a blend otherwise), so image ``i`` is compared with
    ``style_mix[i] @ targets``. ``style_coefficients`` ``[num_styles]`` scale each style.
    """
    mix = style_mix.float()
    per_image_scale = mix @ style_coefficients.float() if style_coefficients is not None else None
    parts: LossParts = {}
    for name, weight in layers.items():
        grams = (
            statistics[name]
            if statistics is not None
            else style_statistic(features[name], style_stat)
        )
        target = torch.einsum("ns,scd->ncd", mix, target_grams[name].float())
        per_image = (grams - target).pow(2).mean(dim=(1, 2))
        if per_image_scale is not None:
            per_image = per_image * per_image_scale
        parts[f"style/{name}"] = weight * per_image.mean()
    return torch.stack(list(parts.values())).sum(), parts


def total_variation_loss(images: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
    """Mean absolute difference between neighbouring pixels: discourages speckle."""
    dh = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    dw = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    total = dh + dw
    return total, {"tv": total}


def image_gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical neighbour differences: where a picture's edges and strokes are."""
    return images[..., :, 1:] - images[..., :, :-1], images[..., 1:, :] - images[..., :-1, :]


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, edge_weight: float = 1.0
) -> tuple[torch.Tensor, LossParts]:
    """L1 between a student's and its teacher's stylized images, plus L1 between their
    gradients: output matching alone blurs the brush strokes a narrow network can afford."""
    student, teacher = student.float(), teacher.float()
    pixels = F.l1_loss(student, teacher)
    edges = sum(
        F.l1_loss(s, t)
        for s, t in zip(image_gradients(student), image_gradients(teacher), strict=True)
    )
    total = pixels + edge_weight * edges
    return total, {"distill/pixels": pixels, "distill/edges": edges}


class PerceptualLoss(nn.Module):
    """Content + style + total-variation loss against a frozen VGG-19.

    Style targets (mean Gram, or covariance with ``style_stat="covariance"``, over every
    image of a style) are computed once by
    :meth:`set_style_targets` and kept as non-persistent buffers: they are derived data,
    recomputed from the style images on every start, never saved.

    ``relax_warps`` > 0 relaxes the style loss (:mod:`fastnst.relaxed_style`): each output is
    held to the nearest of its style's target and the targets of that many smoothly warped
    copies of the style images (each pixel moved by at most ``relax_displacement`` pixels
    at the style images' size).
    """

    def __init__(
        self,
        content_layers: Mapping[str, float],
        style_layers: Mapping[str, float],
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 0.0,
        vgg_weights: str = "caffe",
        tap: str = "relu",
        vgg_preprocess: str | None = None,
        style_stat: str = "gram",
        relax_warps: int = 0,
        relax_displacement: float = 16.0,
    ) -> None:
        super().__init__()
        if style_stat not in STYLE_STATS:
            raise UserError(
                f"loss.style_stat must be one of {', '.join(STYLE_STATS)}, got {style_stat!r}"
            )
        self.style_stat = style_stat
        self.content_layers = {str(k): float(v) for k, v in content_layers.items()}
        self.style_layers = {str(k): float(v) for k, v in style_layers.items()}
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        if relax_warps < 0 or not 0 < relax_displacement < math.inf:
            raise UserError(
                "loss.relax_warps must be >= 0 and loss.relax_displacement a finite number > 0, "
                f"got {relax_warps} and {relax_displacement}"
            )
        self.relax_warps = int(relax_warps)
        self.relax_displacement = float(relax_displacement)
        weights = {
            "content_weight": self.content_weight,
            "style_weight": self.style_weight,
            "tv_weight": self.tv_weight,
            **{f"content_layers.{k}": v for k, v in self.content_layers.items()},
            **{f"style_layers.{k}": v for k, v in self.style_layers.items()},
        }
        for name, value in weights.items():
            if value < 0 or math.isinf(value):  # NaN passes: the run's finite-loss check names it
                raise UserError(f"loss.{name} must be a finite weight >= 0, got {value}")
        layers = list(self.content_layers) + list(self.style_layers)
        self.vgg = VGGFeatures(layers, weights=vgg_weights, tap=tap, preprocess=vgg_preprocess)
        self.num_styles = 0

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> PerceptualLoss:
        """Build from a loss config or a model file's loss block: the ``compound_*`` keys
        belong to the training step's regulariser (fastnst.regularizers), not to this loss."""
        return cls(**{k: v for k, v in settings.items() if not k.startswith("compound_")})

    @torch.no_grad()
    def set_style_targets(
        self,
        style_sets: Sequence[Sequence[torch.Tensor]],
        coefficients: Sequence[float] | None = None,
    ) -> None:
        """``style_sets[s]`` is the list of ``[3, H, W]`` images of style ``s``; its target is
        the mean of their Gram (or covariance) matrices (a whole universe's frames make one
        style)."""
        if not style_sets or any(len(images) == 0 for images in style_sets):
            raise ValueError("every style needs at least one image")
        device = self.vgg.input_scale.device
        generator = torch.Generator().manual_seed(0)
        per_layer: dict[str, list[torch.Tensor]] = {name: [] for name in self.style_layers}
        for images in style_sets:
            sums = {name: 0.0 for name in self.style_layers}
            for image in images:
                # Row 0: the image as it is; rows 1..relax_warps: its warped copies.
                batch = image.unsqueeze(0).to(device)
                if self.relax_warps:
                    flows = smooth_flows(
                        self.relax_warps, image.shape[-2:], self.relax_displacement, generator
                    )
                    batch = torch.cat([batch, warped_copies(batch[0], flows)])
                feats = self.vgg(batch)
                for name in self.style_layers:
                    sums[name] = sums[name] + style_statistic(feats[name], self.style_stat)
            for name in self.style_layers:
                per_layer[name].append(sums[name] / len(images))
        for name, grams in per_layer.items():
            stacked = torch.stack(grams)  # [num_styles, 1 + relax_warps, C, C]
            self.register_buffer(_target_key(name), stacked[:, 0].contiguous(), persistent=False)
            if self.relax_warps:
                self.register_buffer(_relaxed_key(name), stacked, persistent=False)
        self.num_styles = len(style_sets)
        coeffs = torch.ones(self.num_styles) if coefficients is None else torch.tensor(coefficients)
        if coeffs.shape != (self.num_styles,):
            raise ValueError(f"need {self.num_styles} style coefficients, got {len(coeffs)}")
        self.register_buffer("style_coefficients", coeffs.float().to(device), persistent=False)

    def target_grams(self) -> dict[str, torch.Tensor]:
        if not self.num_styles:
            raise RuntimeError("set_style_targets() must run before the style loss")
        return {name: getattr(self, _target_key(name)) for name in self.style_layers}

    def style_targets(
        self, stats: Mapping[str, torch.Tensor], style_mix: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """What :func:`style_loss` compares each output (its statistics ``stats``) with: the
        styles' targets, the mix and the style coefficients; relaxed, each image's own
        nearest target (one row each)."""
        if not self.relax_warps:
            return self.target_grams(), style_mix, self.style_coefficients
        bank = {name: getattr(self, _relaxed_key(name)) for name in self.style_layers}
        per_image = nearest_targets(stats, bank, self.style_layers, style_mix)
        rows = torch.eye(style_mix.shape[0], device=style_mix.device)
        return per_image, rows, style_mix.float() @ self.style_coefficients.float()

    def forward(
        self, output: torch.Tensor, content: torch.Tensor, style_mix: torch.Tensor
    ) -> tuple[torch.Tensor, LossParts]:
        out_feats = self.vgg(output)
        with torch.no_grad():
            content_feats = self.vgg(content)
        c_total, c_parts = content_loss(out_feats, content_feats, self.content_layers)
        stats = {
            name: style_statistic(out_feats[name], self.style_stat) for name in self.style_layers
        }
        targets, mix, coefficients = self.style_targets(stats, style_mix)
        s_total, s_parts = style_loss(
            out_feats, targets, self.style_layers, mix, coefficients, self.style_stat, stats
        )
        tv_total, tv_parts = total_variation_loss(output.float())
        total = (
            self.content_weight * c_total + self.style_weight * s_total + self.tv_weight * tv_total
        )
        parts = {
            **c_parts,
            **s_parts,
            **tv_parts,
            "content": c_total,
            "style": s_total,
        }
        return total, parts


def _target_key(layer: str) -> str:
    return f"style_target_{layer}"


def _relaxed_key(layer: str) -> str:
    return f"style_relaxed_{layer}"
