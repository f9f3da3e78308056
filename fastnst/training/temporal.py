"""The temporal stage: fine-tune a trained network so consecutive frames agree.

Seed idea: Ruder et al. 2016's temporal loss with occlusion masks; the feed-forward form is
ReCoNet's (Gao et al. 2018): an output-level loss that lets the stylized change follow the
input's own luminance change, and a feature-level loss on the encoder's activations.
The perceptual losses stay, on both frames, so the style does not wash out.

Options for the frontier study (docs/VIDEO.md), each off by default: Xu et al. 2021's
frame-difference loss, per-style weights of the temporal terms from the trace of each
style's Gram matrix (Gupta et al. 2017), and compound regularisation (``loss.compound_*``,
:mod:`fastnst.regularizers`) on both frames of every pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader
from torchvision.utils import make_grid

from fastnst.data.content import ContentItem
from fastnst.errors import UserError
from fastnst.images import resize_long_side
from fastnst.regularizers import compound_loss
from fastnst.training.callbacks import EveryNSteps
from fastnst.training.datamodule import ContentDataModule
from fastnst.training.module import StyleTransferModule
from fastnst.video.losses import (
    feature_temporal_loss,
    frame_difference_loss,
    output_temporal_loss,
    shape_temporal_loss,
    style_trace_weights,
)
from fastnst.video.metrics import flicker_map, masked_warp_error
from fastnst.video.pairs import (
    ClipSettings,
    Motion,
    Pair,
    SyntheticPairs,
    VideoClipChains,
    VideoClipPairs,
    check_chain_length,
    synthetic_pair,
)
from fastnst.video.warp import warp

Chain = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # frames, flows, masks (VideoClipChains)

# sigmoid(-2) = 0.12: a recurrent network started from a plain one is nearly the plain one.
GATE_START = -2.0


@dataclass(frozen=True)
class TemporalSettings:
    """``model.temporal``: the weight of each temporal term (0 turns a term off) and
    ``trace_power``, how strongly each style's Gram trace scales its pairs' temporal terms
    (0: every style alike; 1: in proportion to the normalised trace)."""

    output_weight: float = 1.0
    feature_weight: float = 1.0
    frame_difference_weight: float = 0.0
    trace_power: float = 0.0
    # A recurrent network's guide (the previous output warped on) is softened this often
    # in training: at inference the guide is a chain of bilinear warps, a little blurred,
    # and the network must learn to sharpen it back rather than copy the blur forward.
    guide_soften: float = 0.5
    # The gate's logit (per style, in the head's CIN table) when a plain model starts a
    # recurrent one: -2 keeps 12 % of the carried output where the flow is trusted, 0 half.
    # Adam moves it by about the learning rate a step, so a short fine-tune ends near where
    # it starts: docs/VIDEO.md measured the gate at 13 % after 300 steps from 12 %.
    gate_start: float = GATE_START
    # Sensor and codec noise differ from frame to frame, and a network repaints its strokes
    # for it (smoothing the frames it sees cut classics's flicker by 38-43 %): each frame the
    # network sees gets its own Gaussian noise, std drawn per run in [0, frame_noise], while
    # the losses keep the clean frames, so it learns to paint through the noise.
    frame_noise: float = 0.0
    # A recurrent network's gate blends its fresh strokes with the carried ones, and two
    # unrelated textures averaged lose contrast (style). This weight puts the output term
    # on the head's fresh RGB too, so the strokes it paints follow the carried ones.
    fresh_weight: float = 0.0
    # The output term can be met by fainter strokes; this one only by strokes that stay
    # where they were (shape_temporal_loss: each frame's detail over its local RMS).
    shape_weight: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not math.isfinite(value) or (
                field.name != "gate_start"
                and (value < 0 or (field.name == "guide_soften" and value > 1))
            ):
                bound = "" if field.name == "gate_start" else " >= 0"
                raise UserError(
                    f"model.temporal.{field.name} must be a finite number{bound}, got {value}"
                )

    @classmethod
    def from_config(cls, settings: Mapping[str, float] | None) -> TemporalSettings:
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(settings or {}) - known)
        if unknown:
            raise UserError(
                f"unknown model.temporal option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: float(v) for k, v in (settings or {}).items()})


class TemporalStyleModule(StyleTransferModule):
    """:class:`StyleTransferModule` on frame pairs, plus the temporal losses.

    ``temporal`` holds :class:`TemporalSettings`' keys; both frames of a pair get the same
    random style. ``loss.compound_weight`` > 0 adds compound regularisation on both frames.
    """

    def __init__(
        self, *args: Any, temporal: Mapping[str, float] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.temporal = TemporalSettings.from_config(temporal)
        self.trace_weights: torch.Tensor | None = None

    def prepare_style_targets(self) -> None:
        """The style targets, then (with ``trace_power``) each style's temporal weight."""
        super().prepare_style_targets()
        if self.temporal.trace_power > 0:
            self.trace_weights = style_trace_weights(
                self.loss_fn.target_grams(), self.temporal.trace_power
            )

    def training_step(self, batch: Pair | Chain, batch_idx: int) -> torch.Tensor:
        """A pair ``(previous, current, flow, mask)`` or a chain ``(frames, flows, masks)``."""
        if len(batch) == 4:
            previous, current, flow, mask = batch
            batch = (torch.stack([previous, current], 1), flow.unsqueeze(1), mask.unsqueeze(1))
        run = self.run_chain(*batch)
        perceptual, parts = self.loss_fn(run.outputs, run.images, run.image_mix)
        weights = None if self.trace_weights is None else self.trace_weights[run.pair_styles]
        settings = self.temporal
        terms = {
            "temporal_output": output_temporal_loss(
                run.out_previous,
                run.out_current,
                run.previous,
                run.current,
                run.flow,
                run.mask,
                weights,
            ),
            "temporal_feature": feature_temporal_loss(
                run.feat_previous, run.feat_current, run.flow, run.mask, weights
            ),
        }
        total = (
            perceptual
            + settings.output_weight * terms["temporal_output"]
            + settings.feature_weight * terms["temporal_feature"]
        )
        if settings.frame_difference_weight > 0:
            terms["temporal_frame_difference"] = frame_difference_loss(
                run.out_previous, run.out_current, run.previous, run.current, weights
            )
            total = total + settings.frame_difference_weight * terms["temporal_frame_difference"]
        if settings.shape_weight > 0:
            terms["temporal_shape"] = shape_temporal_loss(
                run.out_previous, run.out_current, run.flow, run.mask, weights
            )
            total = total + settings.shape_weight * terms["temporal_shape"]
        if settings.fresh_weight > 0:
            terms["temporal_fresh"] = output_temporal_loss(
                run.out_previous,
                run.fresh_current,
                run.previous,
                run.current,
                run.flow,
                run.mask,
                weights,
            )
            total = total + settings.fresh_weight * terms["temporal_fresh"]
        if self.compound.weight > 0:
            terms["compound"], _ = compound_loss(
                self.net_step, run.images, run.image_mix, run.outputs, self.compound
            )
            total = total + self.compound.weight * terms["compound"]
        self.check_finite(total, {"perceptual": perceptual, **terms}, "the temporal weights")
        self.log("loss/total", total, prog_bar=True)
        self.log("loss/perceptual", perceptual)
        self.log("loss/temporal_output", terms.pop("temporal_output"), prog_bar=True)
        self.log_dict({f"loss/{name}": value for name, value in {**terms, **parts}.items()})
        return total

    def run_chain(self, frames: torch.Tensor, flows: torch.Tensor, masks: torch.Tensor) -> ChainRun:
        """The network along ``frames`` ``[N, K, 3, H, W]`` with one random style per run.

        A recurrent network runs as at inference: the first frame without a guide, each
        next one guided by the output before it warped on (detached: at inference it is a
        fixed input), so a chain longer than a pair shows it its own carried output warped
        again and again. A plain network sees all the frames in one batch.
        """
        n, k = frames.shape[:2]
        indices = torch.randint(self.net.num_styles, (n,), device=frames.device)
        mix = F.one_hot(indices, self.net.num_styles).float()
        steps = [self.maybe_channels_last(frames[:, i]) for i in range(k)]
        seen = with_frame_noise(steps, self.temporal.frame_noise)
        if self.net.config.recurrent:
            outs, freshes, feats = [], [], []
            guide = None
            for i, frame in enumerate(seen):
                if i:
                    carried = warp(outs[-1].detach().float(), flows[:, i - 1])
                    if torch.rand(()) < self.temporal.guide_soften:
                        carried = soften(carried)
                    guide = torch.cat([carried, masks[:, i - 1].float()], 1).to(frame.dtype)
                encoded = self.net.encode(frame, mix, guide)
                out, fresh = self.net.decode_with_fresh(encoded, mix, guide)
                outs.append(out)
                freshes.append(fresh)
                feats.append(encoded[-1])
        else:
            many = mix.repeat(k, 1)
            encoded = self.net.encode(torch.cat(seen), many)
            outs = list(self.net.decode(encoded, many).chunk(k))
            freshes = outs
            feats = list(encoded[-1].chunk(k))
        return ChainRun(
            images=torch.cat(steps),
            outputs=torch.cat(outs),
            image_mix=mix.repeat(k, 1),
            previous=torch.cat(steps[:-1]),
            current=torch.cat(steps[1:]),
            flow=flows.transpose(0, 1).reshape(-1, *flows.shape[2:]),
            mask=masks.transpose(0, 1).reshape(-1, *masks.shape[2:]),
            out_previous=torch.cat(outs[:-1]),
            out_current=torch.cat(outs[1:]),
            fresh_current=torch.cat(freshes[1:]),
            feat_previous=torch.cat(feats[:-1]),
            feat_current=torch.cat(feats[1:]),
            pair_styles=indices.repeat(k - 1),
        )

    def maybe_channels_last(self, images: torch.Tensor) -> torch.Tensor:
        return (
            images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        )


@dataclass(frozen=True)
class ChainRun:
    """One training step's network outputs: every frame (``images``, ``outputs``, one row of
    ``image_mix`` each) and every consecutive pair (``previous``/``current`` and the rest,
    frame-major: all runs' first pairs, then their second ones)."""

    images: torch.Tensor
    outputs: torch.Tensor
    image_mix: torch.Tensor
    previous: torch.Tensor
    current: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor
    out_previous: torch.Tensor
    out_current: torch.Tensor
    fresh_current: torch.Tensor  # the head's own RGB before the gate (a plain net: the output)
    feat_previous: torch.Tensor
    feat_current: torch.Tensor
    pair_styles: torch.Tensor


def with_frame_noise(frames: list[torch.Tensor], std: float) -> list[torch.Tensor]:
    """Each frame (``[N, 3, H, W]``, one per chain position) with its own Gaussian noise,
    one std per run drawn in ``[0, std]`` and shared along the run, clamped to [0, 1]:
    what the network sees under ``model.temporal.frame_noise``."""
    if std <= 0:
        return frames
    scale = torch.rand(frames[0].shape[0], 1, 1, 1, device=frames[0].device) * std
    return [(frame + scale * torch.randn_like(frame)).clamp(0.0, 1.0) for frame in frames]


def soften(images: torch.Tensor) -> torch.Tensor:
    """A [1, 2, 1] / 4 blur in x and y (about what a half-pixel bilinear warp does)."""
    kernel = torch.tensor([0.25, 0.5, 0.25], device=images.device, dtype=images.dtype)
    channels = images.shape[1]
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, 3).expand(channels, 1, 1, 3), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, 3, 1).expand(channels, 1, 3, 1), groups=channels)


class PairDataModule(ContentDataModule):
    """Frame pairs: synthetic ones from the content photos, plus real clips when ``videos``
    names a file or folder (a ``video_fraction`` of each epoch; flow cached in ``video_cache``).

    Keeps :class:`~fastnst.training.datamodule.ContentDataModule`'s keys, so any ``data``
    config (embedded, folder, fiftyone) feeds it; ``val_images`` and the fixed
    ``val_pairs`` feed the sample grid and the flicker map. ``chain_length`` > 2 trains on
    runs of that many consecutive frames of the clips instead (a recurrent network then
    sees its carried output warped again and again); photos make pairs only, so chains need
    ``videos`` and take every sample from them.
    """

    def __init__(
        self,
        source: Sequence[ContentItem],
        image_size: int = 256,
        batch_size: int = 4,
        num_workers: int = 2,
        num_val: int = 3,
        val_size: int = 256,
        samples_per_epoch: int | None = None,
        videos: str | None = None,
        video_cache: str = "data/flow_cache",
        video_fraction: float = 0.5,
        video_long_side: int = 512,
        flow_method: str = "dis",
        motion: Mapping[str, float] | None = None,
        chain_length: int = 2,
        **source_options: object,
    ) -> None:
        if check_chain_length(chain_length) > 2 and not videos:
            raise UserError("data.chain_length > 2 needs data.videos: chains come from clips")
        super().__init__(
            source,
            image_size,
            batch_size,
            num_workers,
            num_val,
            val_size,
            samples_per_epoch or 2000,
        )
        self.videos = videos
        self.video_cache = video_cache
        self.video_fraction = video_fraction if videos else 0.0
        self.clip_settings = ClipSettings(long_side=video_long_side, method=flow_method)
        self.motion = Motion(**(motion or {}))
        self.chain_length = chain_length
        self.val_pairs: Pair = fixed_pairs(self.val_images, self.motion)

    def train_dataloader(self) -> DataLoader:
        if self.chain_length > 2:
            return self.loader(
                VideoClipChains(
                    self.videos,
                    self.video_cache,
                    self.image_size,
                    self.samples_per_epoch,
                    self.clip_settings,
                    chain_length=self.chain_length,
                )
            )
        video_count = round(self.samples_per_epoch * self.video_fraction)
        parts = [
            SyntheticPairs(
                self.source, self.image_size, self.samples_per_epoch - video_count, self.motion
            )
        ]
        if video_count:
            parts.append(
                VideoClipPairs(
                    self.videos, self.video_cache, self.image_size, video_count, self.clip_settings
                )
            )
        return self.loader(ConcatDataset(parts))


def fixed_pairs(photos: torch.Tensor, motion: Motion, seed: int = 0) -> Pair:
    """One reproducible synthetic pair per validation photo (same size as the photo)."""
    generator = torch.Generator().manual_seed(seed)
    size = photos.shape[-1]
    pairs = [
        synthetic_pair(resize_long_side(photo, round(1.5 * size)), size, motion, generator)
        for photo in photos
    ]
    return tuple(torch.stack(parts) for parts in zip(*pairs, strict=True))  # type: ignore[return-value]


class FlickerMap(EveryNSteps):
    """Logs |O_t − W(O_{t−1})| on the fixed validation pairs as heat maps, the network as it
    started (before) beside the network now (after), and their masked warping errors.

    Rows of the picture: current frame, output before, flicker before, output now, flicker now.
    Untrusted pixels (occlusions, motion boundaries) are shown in blue.
    """

    def __init__(self, every_n_steps: int = 500, top: float = 0.25) -> None:
        super().__init__(every_n_steps)
        self.top = top
        self._before: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def _measure(self, module: StyleTransferModule, pairs: Pair) -> tuple[torch.Tensor, ...]:
        previous, current, flow, mask = (t.to(module.device) for t in pairs)
        was_training = module.net.training
        module.net.eval()
        styles = torch.arange(previous.shape[0], device=module.device) % module.net.num_styles
        out_previous = module.net(previous, styles)
        guide = None
        if module.net.config.recurrent:  # as at inference: guided by the previous output
            guide = torch.cat([warp(out_previous.float(), flow), mask.float()], dim=1)
        out_current = module.net(current, styles, guide)
        module.net.train(was_training)
        heat = flicker_map(out_current.float(), out_previous.float(), flow, mask, self.top)
        error = masked_warp_error(out_current, out_previous, flow, mask).mean()
        return out_current.float().cpu(), heat.cpu(), error.cpu()

    def _log(self, trainer: L.Trainer, module: StyleTransferModule) -> None:
        pairs = getattr(trainer.datamodule, "val_pairs", None)
        experiment = getattr(trainer.logger, "experiment", None)
        if pairs is None or self._before is None or not trainer.is_global_zero:
            return
        out_now, heat_now, error_now = self._measure(module, pairs)
        out_before, heat_before, error_before = self._before
        rows = []
        for i in range(out_now.shape[0]):
            rows.extend([pairs[1][i], out_before[i], heat_before[i], out_now[i], heat_now[i]])
        if experiment is not None and hasattr(experiment, "add_image"):
            grid = make_grid(torch.stack(rows), nrow=5, padding=2, pad_value=1.0)
            experiment.add_image("temporal/flicker_before_after", grid, trainer.global_step)
        if experiment is not None and hasattr(experiment, "add_scalar"):
            step = trainer.global_step
            experiment.add_scalar("temporal/val_warp_error_before", float(error_before), step)
            experiment.add_scalar("temporal/val_warp_error", float(error_now), step)

    def on_fit_start(self, trainer: L.Trainer, module: StyleTransferModule) -> None:
        pairs = getattr(trainer.datamodule, "val_pairs", None)
        if pairs is not None:
            self._before = self._measure(module, pairs)
