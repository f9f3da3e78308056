"""A model's side of ``fastnst eval-video``: its frames as ``stylize --video`` shows them (input
smoothing, strength, each temporal blend), their losses under the model's own settings, and
the issue's judge (the fixed VGG-19's style and content distances). The command in
:mod:`fastnst.commands.eval_video` adds the floor, the warping errors, other sources and the
frontier; ``tools/anchored_bound.py`` and ``tools/feature_carry.py`` reuse the judge."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fastnst.data.styles import StyleSet, folder_styles, spiderverse_styles
from fastnst.data.textures import UNIVERSES
from fastnst.distances import Distances
from fastnst.errors import UserError
from fastnst.export import ModelInfo, load_model
from fastnst.images import iter_batches
from fastnst.infer.stylize import mix_strength
from fastnst.infer.temporal_blend import BLEND_KINDS, InputSmooth, Recurrence, TemporalBlend
from fastnst.losses import PerceptualLoss
from fastnst.model import TransformerNet

BATCH = 8  # frames through the network (and the losses) at once
JUDGE_STYLE_SIZE = 512  # the style image's long side for --judge, as tools/artifact_scores.py


def style_sets(info: ModelInfo, styles_dir: Path | None, spiderverse_root: Path) -> list[StyleSet]:
    """The model's styles, in its own order, from the folder given or the Spider-Verse set."""
    if styles_dir is not None:
        found = {style.name: style for style in folder_styles(styles_dir)}
    elif set(info.style_names) <= set(UNIVERSES):
        found = {s.name: s for s in spiderverse_styles(spiderverse_root, info.style_names)}
    else:
        raise UserError("the model's styles are not the Spider-Verse set: pass --styles DIR")
    missing = [name for name in info.style_names if name not in found]
    if missing:
        raise UserError(f"no style images for {', '.join(missing)} in {styles_dir}")
    return [found[name] for name in info.style_names]


# One way to show a model's frames: label suffix, blend kind ("none" or one of BLEND_KINDS),
# blend weight, and the blend (None: the per-frame output).
Variant = tuple[str, str, float, TemporalBlend | None]


def blend_spec(text: str) -> tuple[str | None, float]:
    """One ``--blends`` entry: ``A`` (each ``--blend-kind`` at weight A) or ``KIND:A`` (that
    kind only, so that a run need not score every kind at every weight)."""
    kind, _, weight = text.rpartition(":")
    if kind and kind not in BLEND_KINDS:
        raise UserError(f"--blends: unknown blend kind {kind!r}; choose one of {BLEND_KINDS}")
    try:
        alpha = float(weight)
    except ValueError:
        raise UserError(f"--blends takes A or KIND:A, got {text!r}") from None
    if not 0 <= alpha < 1:
        raise UserError(f"--blends weights must be in [0, 1), got {alpha:g}")
    return kind or None, alpha


def blend_variants(args: argparse.Namespace) -> list[Variant]:
    """Per-frame output, then for each ``--blends`` entry (parsed by :func:`blend_spec`) with
    a weight above 0 its kind, or each kind of ``--blend-kind``; weight 0 is the per-frame
    output itself."""
    variants: list[Variant] = [("", "none", 0.0, None)]
    for only, alpha in dict.fromkeys(args.blends):
        if alpha == 0:
            continue
        for kind in [only] if only else dict.fromkeys(args.blend_kind):
            blend = TemporalBlend(alpha, args.flow_size, kind)
            variants.append((f" + {kind} blend {alpha:g}", kind, alpha, blend))
    return variants


@torch.no_grad()
def stylize_and_score(
    path: Path,
    frames: torch.Tensor,
    style: int,
    args: argparse.Namespace,
    device: torch.device,
) -> list[tuple[float, float, Variant, torch.Tensor, dict[str, float]]]:
    """Every frame through the model once per ``--input-smooth`` value (and each strength and
    blend of its outputs): per value and variant, the outputs and their mean style and
    content losses (and, with ``--judge``, distances)."""
    net, info = load_model(path, device)
    if not 0 <= style < net.num_styles:
        raise UserError(f"{path} has styles 0..{net.num_styles - 1}, not {style}")
    if not info.loss:
        raise UserError(f"{path} records no loss settings (it was not exported by a training run)")
    loss_fn = PerceptualLoss.from_settings(info.loss).to(device).eval()
    sets = style_sets(info, args.styles, args.spiderverse_root)
    loss_fn.set_style_targets([s.load(args.style_size) for s in sets])
    mix = F.one_hot(torch.tensor([style]), net.num_styles).float().to(device)
    judge = style_judge(sets[style], str(device)) if args.judge else None
    scored = []
    for smooth in dict.fromkeys(args.input_smooth):
        for strength, variant, out, losses in shown_variants(
            net, frames, style, args, smooth, loss_fn, mix
        ):
            if judge is not None:
                every = args.judge_every
                losses.update(judge_distances(judge, out[::every], frames[::every]))
            scored.append((smooth, strength, variant, out, losses))
    return scored


def shown_variants(
    net: TransformerNet,
    frames: torch.Tensor,
    style: int,
    args: argparse.Namespace,
    smooth: float,
    loss_fn: PerceptualLoss,
    mix: torch.Tensor,
) -> list[tuple[float, Variant, torch.Tensor, dict[str, float]]]:
    """The clip through the network as ``stylize --video`` shows it with ``--input-smooth
    smooth``, per ``--strength`` and blend variant: the outputs and their mean style and
    content losses. Each call starts the stream afresh (its smoothing, guide and blends carry
    state); the strength is applied before the blend, as ``VideoStream`` does."""
    device = mix.device
    shown = [(s, v) for s in dict.fromkeys(args.strength) for v in blend_variants(args)]
    outputs: list[list[torch.Tensor]] = [[] for _ in shown]
    style_sums, content_sums = [0.0] * len(shown), [0.0] * len(shown)
    recurrence = Recurrence(args.flow_size) if net.config.recurrent else None
    smoothing = InputSmooth(smooth, args.flow_size)

    def guided(photo: np.ndarray, guide: np.ndarray) -> np.ndarray:
        out = net(torch.from_numpy(photo).to(device), style, torch.from_numpy(guide).to(device))
        return out.float().cpu().numpy()

    for batch in iter_batches(list(frames), BATCH):
        images = torch.stack(batch).to(device)
        seen = torch.from_numpy(smoothing(images.float().cpu().numpy())).to(device)
        # As VideoStream: the network sees the smoothed frames, the guide follows the clip's.
        plain_out = net(seen, style) if recurrence is None else recurrence(images, guided, seen)
        for i, (strength, (*_, blend)) in enumerate(shown):
            finished = mix_strength(plain_out.float(), images.float(), strength)
            out = finished if blend is None else blend(images, finished)
            _, parts = loss_fn(out, images, mix.expand(len(batch), -1))
            style_sums[i] += parts["style"].item() * len(batch)
            content_sums[i] += parts["content"].item() * len(batch)
            outputs[i].append(out.float().cpu())
    count = frames.shape[0]
    return [
        (strength, variant, torch.cat(outs), {"style": s / count, "content": c / count})
        for (strength, variant), outs, s, c in zip(
            shown, outputs, style_sums, content_sums, strict=True
        )
    ]


def style_judge(style: StyleSet, device: str = "cpu") -> Distances:
    """The issue's judge (``--judge``): the fixed VGG-19's distances, holding the one style
    image (index 0) of ``style`` at :data:`JUDGE_STYLE_SIZE`."""
    return Distances([style.load(JUDGE_STYLE_SIZE)[0]], device)


def judge_distances(
    judge: Distances, outputs: torch.Tensor, frames: torch.Tensor
) -> dict[str, float]:
    """Mean independent style and content distances of the outputs (``--judge``: the
    judge holds the one style image, index 0)."""
    per_frame = [judge(out, frame, 0) for out, frame in zip(outputs, frames, strict=True)]
    return {
        "style_distance": sum(d["style"] for d in per_frame) / len(per_frame),
        "content_distance": sum(d["content"] for d in per_frame) / len(per_frame),
    }
