"""Post-ReLU vs post-conv VGG taps: the same Gatys optimisation with each, judged by both.

Both runs start from the photo and optimise for ``--steps`` L-BFGS steps, one with the
loss of ``fastnst/conf/loss/default.yaml`` (taps after each ReLU), one with ``post_conv.yaml``
(the same layers before their ReLU, with layer weights re-measured for those taps). Raw
loss values of two different losses do not compare, so every ``--every`` steps each image
is scored by *both* losses: a tap choice is better only if its image wins on both.
Writes a Markdown table, a JSON file, a loss plot and the final images.

    fastnst relu-vs-conv --content ../shared/data/content/chelsea.png \\
        --style ../shared/data/styles/starry_night.jpg --out docs/quality
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from fastnst.devices import pick_device
from fastnst.errors import UserError, run_report_tool
from fastnst.evaluation import markdown_table, pyplot, ssim, write_json, write_text
from fastnst.files import atomic_write
from fastnst.images import load_image, resize_long_side
from fastnst.optimize import (
    GatysObjective,
    build_loss,
    gatys,
    load_loss_settings,
    save_image,
)

TAPS = ("relu", "conv")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst relu-vs-conv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--content", required=True, help="content photo")
    parser.add_argument("--style", required=True, help="style image")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=10, help="score both losses every N steps")
    parser.add_argument("--size", type=int, default=256, help="long side in px")
    parser.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    parser.add_argument(
        "--relu-loss", default="default", help="loss with taps after the ReLU (name or .yaml)"
    )
    parser.add_argument(
        "--conv-loss", default="post_conv", help="the same layers tapped after the conv"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default="outputs/relu_vs_conv", help="folder for the results")
    return parser


def check_same_layers(relu: dict[str, Any], conv: dict[str, Any]) -> None:
    """The comparison is only about where a layer is read, so everything else must match."""
    if relu.get("tap", "relu") != "relu" or conv.get("tap") != "conv":
        raise UserError("--relu-loss must have tap: relu and --conv-loss tap: conv")
    for key in ("content_layers", "style_layers"):
        if set(relu[key]) != set(conv[key]):
            raise UserError(f"the two loss files tap different {key}: {relu[key]} vs {conv[key]}")
    for key in ("vgg_weights", "content_weight", "style_weight", "tv_weight"):
        if relu.get(key) != conv.get(key):
            raise UserError(f"the loss files differ in {key}: {relu.get(key)} vs {conv.get(key)}")


def run(args: argparse.Namespace) -> Path:
    if args.steps < 1 or args.every < 1:
        raise UserError("--steps and --every must be positive")
    device = pick_device(args.device)
    settings = {tap: load_loss_settings(getattr(args, f"{tap}_loss")) for tap in TAPS}
    check_same_layers(settings["relu"], settings["conv"])
    photo = resize_long_side(load_image(args.content), args.size).unsqueeze(0).to(device)
    style = resize_long_side(load_image(args.style), args.size)
    losses = {tap: build_loss(settings[tap], [style], device) for tap in TAPS}
    judges = {tap: GatysObjective(losses[tap], photo) for tap in TAPS}
    checkpoints = [0] + list(range(args.every, args.steps + 1, args.every))
    scores: dict[str, dict[int, dict[str, dict[str, float]]]] = {tap: {} for tap in TAPS}
    finals: dict[str, torch.Tensor] = {}

    for run_tap in TAPS:
        print(f"optimising with taps after {run_tap}, {args.steps} steps at {args.size} px")

        def judge(step: int, image: torch.Tensor, run_tap: str = run_tap) -> None:
            if step in checkpoints:
                with torch.no_grad():
                    scores[run_tap][step] = {tap: judges[tap](image)[1] for tap in TAPS}

        judge(0, photo)
        result = gatys(photo, losses[run_tap], args.steps, optimizer=args.optimizer,
                       init="content", on_step=judge)
        finals[run_tap] = result.image
    out = Path(args.out)
    for tap in TAPS:
        save_image(finals[tap], out / f"relu_vs_conv_{tap}.jpg")
    plot(out / "relu_vs_conv.png", scores, checkpoints)
    data = {
        "command": args.command, "device": str(device), "size": args.size, "steps": args.steps,
        "optimizer": args.optimizer, "settings": settings,
        "scores": {tap: {str(k): v for k, v in scores[tap].items()} for tap in TAPS},
        "final_ssim": {tap: ssim(finals[tap], photo) for tap in TAPS},
    }
    data["verdict"] = verdict(scores, args.steps)
    write_json(out / "relu_vs_conv.json", data)
    write_text(out / "relu_vs_conv.md", report(data, checkpoints, scores))
    return out / "relu_vs_conv.md"


def verdict(scores: dict[str, dict[int, dict[str, dict[str, float]]]], last: int) -> str:
    """Which run's final image has the lower style loss under each judge, and so overall."""
    wins = {}
    for judge_tap in TAPS:
        final = {run_tap: scores[run_tap][last][judge_tap]["style"] for run_tap in TAPS}
        wins[judge_tap] = min(final, key=final.get)
    if wins["relu"] == wins["conv"]:
        return (
            f"the post-{wins['relu']} run ends with the lower style loss under both losses: "
            f"post-{wins['relu']} taps optimise style better here"
        )
    return (
        "each run ends with the lower style loss under its own loss only: neither tap point "
        "gives a better image by both measures; the difference is in how the loss is defined"
    )


def plot(
    path: Path, scores: dict[str, dict[int, dict[str, dict[str, float]]]], steps: list[int]
) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True)
    for col, judge_tap in enumerate(TAPS):
        for row, term in enumerate(("style", "content")):
            ax = axes[row][col]
            for run_tap, style in zip(TAPS, ("-o", "--s"), strict=True):
                values = [scores[run_tap][s][judge_tap][term] for s in steps]
                ax.plot(steps, values, style, markersize=3, label=f"optimised post-{run_tap}")
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_title(f"{term} loss, measured with post-{judge_tap} taps", fontsize=9)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("L-BFGS step")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def report(
    data: dict[str, Any],
    steps: list[int],
    scores: dict[str, dict[int, dict[str, dict[str, float]]]],
) -> str:
    header = ["step"] + [
        f"{term} (run {run_tap} / judge {judge_tap})"
        for run_tap in TAPS for judge_tap in TAPS for term in ("style", "content")
    ]
    rows = [
        [step] + [
            scores[run_tap][step][judge_tap][term]
            for run_tap in TAPS for judge_tap in TAPS for term in ("style", "content")
        ]
        for step in steps
    ]
    return "\n".join([
        "# Post-ReLU vs post-conv VGG taps",
        "",
        f"Written by `{data['command']}` on {data['device']}: {data['steps']} "
        f"{data['optimizer']} steps from the photo at {data['size']} px, once per tap point. "
        "`run` is the loss that was optimised, `judge` the loss that scores the image.",
        "",
        markdown_table(header, rows),
        "",
        "SSIM of the final image against the photo: "
        f"post-relu {data['final_ssim']['relu']:.4f}, post-conv {data['final_ssim']['conv']:.4f}.",
        "",
        f"Verdict: {data['verdict']}.",
        "",
        "![losses](relu_vs_conv.png)",
        "",
        "| optimised post-ReLU | optimised post-conv |",
        "|---|---|",
        "| ![relu](relu_vs_conv_relu.jpg) | ![conv](relu_vs_conv_conv.jpg) |",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    return run_report_tool(build_parser(), run, argv)
