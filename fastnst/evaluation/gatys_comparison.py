"""The network against Gatys optimisation on one photo and style, both scored by the same
loss (Johnson et al.'s comparison): the loss after chosen step counts, how many steps reach
the network's loss, and the report's section."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fastnst.errors import UserError
from fastnst.evaluation.report import markdown_table
from fastnst.evaluation.scores import LossMeter, mse, ssim, time_forward
from fastnst.images import resize_long_side
from fastnst.model import TransformerNet
from fastnst.optimize.gatys import gatys


def steps_to_reach(history: Sequence[Mapping[str, float]], target: float) -> int | None:
    """The first step count whose total loss is at or below ``target`` (None: never)."""
    for entry in history:
        if entry["total"] <= target:
            return int(entry["step"])
    return None


def compare_with_gatys(
    pair: str,
    photos: Mapping[str, torch.Tensor],
    net: TransformerNet,
    style_names: list[str],
    meter: LossMeter,
    device: torch.device,
    size: int,
    steps: Sequence[int],
    repeats: int,
) -> tuple[dict[str, Any], list[torch.Tensor]]:
    """The network against L-BFGS Gatys optimisation from the photo, on one photo and style
    at ``size`` px, both scored by the same loss, after each of ``steps``; the network is
    timed over ``repeats`` passes. Returns the summary and the images for its figure."""
    photo_name, _, style_name = pair.partition(":")
    if photo_name not in photos or style_name not in style_names:
        raise UserError(
            f"--gatys {pair!r}: photos are {', '.join(photos)}; styles {', '.join(style_names)}"
        )
    photo = resize_long_side(photos[photo_name], size).unsqueeze(0).to(device)
    index = style_names.index(style_name)
    with torch.no_grad():
        network_output = net(photo, index)
    network = meter(network_output, photo, index)
    network_seconds = time_forward(net, photo, index, repeats)
    report_steps = sorted(set(steps))
    mix = torch.nn.functional.one_hot(torch.tensor([index]), len(style_names))
    snapshots: dict[int, tuple[torch.Tensor, float]] = {}
    start = time.perf_counter()

    def keep(step: int, image: torch.Tensor) -> None:
        if step in report_steps:
            snapshots[step] = (image.clone(), time.perf_counter() - start)

    print(f"Gatys: {photo_name} x {style_name}, {report_steps[-1]} L-BFGS steps at {size} px")
    # The meter's own loss module and style targets: Gatys is scored exactly like the network.
    result = gatys(
        photo,
        meter.loss_fn,
        report_steps[-1],
        optimizer="lbfgs",
        init="content",
        style_mix=mix,
        on_step=keep,
    )
    seconds_per_step = (time.perf_counter() - start) / report_steps[-1]
    rows = []
    for step in report_steps:
        image, elapsed = snapshots[step]
        entry = result.history[step]
        rows.append(
            {
                "step": step,
                "total": entry["total"],
                "style": entry["style"],
                "content": entry["content"],
                "ssim": ssim(image, photo),
                "mse": mse(image, photo),
                "seconds": elapsed,
            }
        )
    reach = steps_to_reach(result.history, network["total"])
    summary = {
        "photo": photo_name,
        "style": style_name,
        "size": size,
        "network": {
            **network,
            "ssim": ssim(network_output, photo),
            "mse": mse(network_output, photo),
            "seconds": network_seconds,
        },
        "gatys": rows,
        "gatys_start": result.history[0],
        "gatys_seconds_per_step": seconds_per_step,
        "steps_to_reach_network_loss": reach,
    }
    images = [photo[0], network_output[0]] + [snapshots[s][0][0] for s in report_steps]
    return summary, images


def gatys_section(summary: Mapping[str, Any], figure: str) -> str:
    """The report's Markdown for one Gatys comparison, with a one-sentence verdict."""
    net = summary["network"]
    rows = [
        [
            "network (1 forward pass)",
            net["total"],
            net["style"],
            net["content"],
            net["ssim"],
            net["mse"],
            net["seconds"],
        ]
    ]
    rows += [
        [
            f"Gatys, {r['step']} steps",
            r["total"],
            r["style"],
            r["content"],
            r["ssim"],
            r["mse"],
            r["seconds"],
        ]
        for r in summary["gatys"]
    ]
    reach = summary["steps_to_reach_network_loss"]
    last = summary["gatys"][-1]["step"]
    verdict = (
        f"Gatys optimisation reaches the network's total loss ({net['total']:.4g}) after "
        f"**{reach} steps** ({reach * summary['gatys_seconds_per_step']:.1f} s here), against "
        f"{net['seconds']:.3f} s for the network."
        if reach is not None
        else f"Gatys optimisation stays above the network's total loss ({net['total']:.4g}) "
        f"for all {last} steps: the network's loss is lower than {last} steps of optimisation."
    )
    if reach == 0:
        verdict = (
            f"The unchanged photo (step 0, total {summary['gatys_start']['total']:.4g}) already "
            f"scores at or below the network ({net['total']:.4g}): the network has not learned "
            "this style yet."
        )
    header = ["result", "total loss", "style loss", "content loss", "SSIM", "MSE", "seconds"]
    return "\n".join(
        [
            f"### {summary['photo']} x {summary['style']} ({summary['size']} px)",
            "",
            markdown_table(header, rows),
            "",
            verdict,
            "",
            f"![Gatys comparison]({figure})",
            "",
        ]
    )
