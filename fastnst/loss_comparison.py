"""Two losses that differ in one option, the same Gatys optimisation with each, and every
image judged by *both* losses (``fastnst relu-vs-conv``, ``fastnst gram-vs-cov``).

Raw values of two different losses do not compare (their scales differ), so each run's image
is scored by both every ``every`` steps: an option gives the better image only if its image
wins under both judges. Writes a Markdown table, a JSON file, a loss plot and the final images.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastnst.devices import pick_device
from fastnst.errors import UserError, run_report_tool
from fastnst.evaluation.report import markdown_table, pyplot, write_json, write_text
from fastnst.evaluation.scores import ssim
from fastnst.files import atomic_write
from fastnst.images import load_image, resize_long_side
from fastnst.optimize.gatys import (
    GatysObjective,
    build_loss,
    gatys,
    load_loss_settings,
    save_image,
)

# run -> step -> judge -> {"total", "content", "style", "tv"}
Scores = dict[str, dict[int, dict[str, dict[str, float]]]]
# PerceptualLoss defaults of the settings a comparison must hold equal (older model files and
# loss files do not name them).
_DEFAULTS = {"tap": "relu", "style_stat": "gram", "vgg_weights": "caffe", "tv_weight": 0.0}
_SHARED = ("vgg_weights", "content_weight", "style_weight", "tv_weight", "tap", "style_stat")


@dataclass(frozen=True)
class LossOption:
    """The option under study: its key in the loss settings, the value of each run (the
    run's label), how to name a run in prose, and what to call the option."""

    key: str
    values: tuple[str, str]
    names: Mapping[str, str]  # value -> e.g. "post-relu"
    noun: str  # e.g. "tap point"
    title: str  # the report's heading
    prefix: str  # file names: PREFIX.md, PREFIX.json, PREFIX.png, PREFIX_VALUE.jpg


@dataclass(frozen=True)
class ComparisonRequest:
    content: str
    style: str
    losses: Mapping[str, str]  # value -> loss config name, .yaml or model file
    steps: int = 100
    every: int = 10
    size: int = 256
    optimizer: str = "lbfgs"
    device: str = "auto"
    out: Path = Path("outputs")
    command: str = ""


def setting(settings: Mapping[str, Any], key: str) -> Any:
    return settings.get(key, _DEFAULTS.get(key))


def check_one_difference(option: LossOption, settings: Mapping[str, Mapping[str, Any]]) -> None:
    """The comparison is only about ``option.key``: the same layers (their weights may be
    re-measured for each value) and the same everything else, or a one-line error."""
    first, second = (settings[value] for value in option.values)
    for value in option.values:
        if setting(settings[value], option.key) != value:
            raise UserError(
                f"the {option.names[value]} loss must have {option.key}: {value}, "
                f"got {setting(settings[value], option.key)!r}"
            )
    for key in ("content_layers", "style_layers"):
        if set(first[key]) != set(second[key]):
            raise UserError(
                f"the two loss files tap different {key}: {first[key]} vs {second[key]}"
            )
    for key in _SHARED:
        if key != option.key and setting(first, key) != setting(second, key):
            raise UserError(
                f"the loss files differ in {key}: {setting(first, key)} vs {setting(second, key)}"
            )


def run_comparison(option: LossOption, request: ComparisonRequest) -> Path:
    """Optimise once per value, score every checkpoint with both losses, write the report."""
    if request.steps < 1 or request.every < 1:
        raise UserError("--steps and --every must be positive")
    runs = option.values
    device = pick_device(request.device)
    settings = {value: load_loss_settings(request.losses[value]) for value in runs}
    check_one_difference(option, settings)
    photo = resize_long_side(load_image(request.content), request.size).unsqueeze(0).to(device)
    style = resize_long_side(load_image(request.style), request.size)
    losses = {value: build_loss(settings[value], [style], device) for value in runs}
    judges = {value: GatysObjective(losses[value], photo) for value in runs}
    checkpoints = [0] + list(range(request.every, request.steps + 1, request.every))
    scores: Scores = {value: {} for value in runs}
    finals: dict[str, torch.Tensor] = {}

    for run in runs:
        print(
            f"optimising with the {option.names[run]} loss, {request.steps} steps "
            f"at {request.size} px"
        )

        def judge(step: int, image: torch.Tensor, run: str = run) -> None:
            if step in checkpoints:
                with torch.no_grad():
                    scores[run][step] = {value: judges[value](image)[1] for value in runs}

        judge(0, photo)
        result = gatys(
            photo,
            losses[run],
            request.steps,
            optimizer=request.optimizer,
            init="content",
            on_step=judge,
        )
        finals[run] = result.image
    out = Path(request.out)
    for run in runs:
        save_image(finals[run], out / f"{option.prefix}_{run}.jpg")
    plot(out / f"{option.prefix}.png", option, scores, checkpoints)
    data = {
        "command": request.command,
        "device": str(device),
        "size": request.size,
        "steps": request.steps,
        "optimizer": request.optimizer,
        "option": option.key,
        "settings": settings,
        "scores": {run: {str(k): v for k, v in scores[run].items()} for run in runs},
        "final_ssim": {run: ssim(finals[run], photo) for run in runs},
    }
    data["verdict"] = verdict(option, scores, request.steps)
    write_json(out / f"{option.prefix}.json", data)
    write_text(out / f"{option.prefix}.md", report(option, data, checkpoints, scores))
    return out / f"{option.prefix}.md"


def verdict(option: LossOption, scores: Scores, last: int) -> str:
    """Which run's final image has the lower style loss under each judge, and so overall."""
    runs = option.values
    wins = {}
    for judge in runs:
        final = {run: scores[run][last][judge]["style"] for run in runs}
        wins[judge] = min(final, key=final.get)
    if len(set(wins.values())) == 1:
        name = option.names[wins[runs[0]]]
        return (
            f"the {name} run ends with the lower style loss under both losses: "
            f"{name} optimises style better here"
        )
    return (
        f"each run ends with the lower style loss under its own loss only: neither "
        f"{option.noun} gives a better image by both measures; the difference is in how the "
        "loss is defined"
    )


def plot(path: Path, option: LossOption, scores: Scores, steps: Sequence[int]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True)
    for col, judge in enumerate(option.values):
        for row, term in enumerate(("style", "content")):
            ax = axes[row][col]
            for run, style in zip(option.values, ("-o", "--s"), strict=True):
                values = [scores[run][s][judge][term] for s in steps]
                ax.plot(steps, values, style, markersize=3, label=f"optimised {option.names[run]}")
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_title(f"{term} loss, judged by the {option.names[judge]} loss", fontsize=9)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("optimisation step")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def report(
    option: LossOption, data: Mapping[str, Any], steps: Sequence[int], scores: Scores
) -> str:
    runs = option.values
    terms = ("style", "content")
    header = ["step"] + [
        f"{term} (run {run} / judge {judge})" for run in runs for judge in runs for term in terms
    ]
    rows = [
        [step]
        + [scores[run][step][judge][term] for run in runs for judge in runs for term in terms]
        for step in steps
    ]
    ssims = ", ".join(f"{option.names[run]} {data['final_ssim'][run]:.4f}" for run in runs)
    return "\n".join(
        [
            f"# {option.title}",
            "",
            f"Written by `{data['command']}` on {data['device']}: {data['steps']} "
            f"{data['optimizer']} steps from the photo at {data['size']} px, once per "
            f"{option.noun}. `run` is the loss that was optimised, `judge` the loss that scores "
            "the image.",
            "",
            markdown_table(header, rows),
            "",
            f"SSIM of the final image against the photo: {ssims}.",
            "",
            f"Verdict: {data['verdict']}.",
            "",
            f"![losses]({option.prefix}.png)",
            "",
            "| " + " | ".join(f"optimised {option.names[run]}" for run in runs) + " |",
            "|---|---|",
            "| " + " | ".join(f"![{run}]({option.prefix}_{run}.jpg)" for run in runs) + " |",
            "",
        ]
    )


def build_parser(
    option: LossOption, prog: str, description: str, loss_flags: Mapping[str, tuple[str, str]]
) -> argparse.ArgumentParser:
    """The options every comparison command shares; ``loss_flags`` maps each value to its
    ``--FLAG`` and that flag's default loss (a packaged config name, .yaml or model)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--content", required=True, help="content photo")
    parser.add_argument("--style", required=True, help="style image")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=10, help="score both losses every N steps")
    parser.add_argument("--size", type=int, default=256, help="long side in px")
    parser.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    for value in option.values:
        flag, default = loss_flags[value]
        parser.add_argument(
            f"--{flag}",
            default=default,
            help=f"the {option.names[value]} loss: name, .yaml or model (default {default})",
        )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default=f"outputs/{option.prefix}", help="folder for results")
    return parser


def main_for(
    option: LossOption,
    parser: argparse.ArgumentParser,
    loss_flags: Mapping[str, tuple[str, str]],
    argv: list[str] | None,
) -> int:
    """A comparison command's ``main``: parse, run, report one ``error:`` line or the path."""

    def body(args: argparse.Namespace) -> Path:
        losses = {
            value: getattr(args, loss_flags[value][0].replace("-", "_")) for value in option.values
        }
        return run_comparison(
            option,
            ComparisonRequest(
                content=args.content,
                style=args.style,
                losses=losses,
                steps=args.steps,
                every=args.every,
                size=args.size,
                optimizer=args.optimizer,
                device=args.device,
                out=Path(args.out),
                command=args.command,
            ),
        )

    return run_report_tool(parser, body, argv)
