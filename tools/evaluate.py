"""Evaluate an exported model against its own training loss and against Gatys optimisation.

Per style and photo: total, style and content loss (the loss settings stored in the model),
SSIM and MSE against the photo, and seconds per image. For chosen photo/style pairs it also
runs Gatys et al. (L-BFGS from the photo, the same loss) and reports the loss after
50/100/300/500 steps and how many steps reach the network's loss (Johnson et al.'s
comparison). Writes a Markdown report, a JSON file and JPEG grids (matplotlib).

    python tools/evaluate.py --model outputs/.../model.safetensors \\
        --content ../shared/data/content --styles ../shared/data/styles --out docs/quality
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import torch  # noqa: E402

from fastnst.data.styles import StyleSet, folder_styles  # noqa: E402
from fastnst.errors import UserError, run_report_tool  # noqa: E402
from fastnst.evaluation import (  # noqa: E402
    LossMeter,
    PhotoStyleScore,
    markdown_table,
    means_table,
    mse,
    per_style_means,
    score_output,
    scores_table,
    ssim,
    steps_to_reach,
    time_forward,
    write_json,
    write_text,
)
from fastnst.export import atomic_write, load_model  # noqa: E402
from fastnst.images import center_square, find_images, load_image, resize_long_side  # noqa: E402
from fastnst.infer.stylize import pick_device  # noqa: E402
from fastnst.optimize import gatys  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="exported .safetensors model")
    parser.add_argument("--content", required=True, help="photo or folder of photos")
    parser.add_argument(
        "--styles", required=True, nargs="+",
        help="folder(s) of style images, named as the model's styles (file stem or subfolder)",
    )
    parser.add_argument("--only", default="", help="comma-separated style names (default: all)")
    parser.add_argument("--size", type=int, default=256, help="long side of photos in px")
    parser.add_argument("--style-size", type=int, default=256, help="long side of style images")
    parser.add_argument(
        "--gatys", action="append", default=None, metavar="PHOTO:STYLE",
        help="photo stem and style for the Gatys comparison (repeatable; default: first pair)",
    )
    parser.add_argument("--gatys-steps", default="50,100,300,500", help="steps to report")
    parser.add_argument(
        "--gatys-size", type=int, default=0, help="long side there (default --size)"
    )
    parser.add_argument("--no-gatys", action="store_true", help="skip the Gatys comparison")
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes per image")
    parser.add_argument("--thumb", type=int, default=160, help="grid cell size in px")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default="outputs/evaluate", help="folder for report, JSON, grids")
    return parser


def style_sets(roots: Sequence[str]) -> dict[str, StyleSet]:
    sets: dict[str, StyleSet] = {}
    for root in roots:
        for style in folder_styles(root):
            sets.setdefault(style.name, style)
    return sets


def pick_styles(model_styles: list[str], available: dict[str, StyleSet], only: str) -> list[str]:
    wanted = [s.strip() for s in only.split(",") if s.strip()] or model_styles
    unknown = [name for name in wanted if name not in model_styles]
    if unknown:
        raise UserError(f"--only names styles the model lacks: {', '.join(unknown)}")
    missing = [name for name in wanted if name not in available]
    if missing:
        raise UserError(f"no style images for {', '.join(missing)} under the --styles folder(s)")
    return wanted


def parse_steps(text: str) -> list[int]:
    try:
        steps = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UserError(f"--gatys-steps must be integers like 50,100,300, got {text!r}") from None
    if not steps or steps[0] < 1:
        raise UserError("--gatys-steps must be positive integers")
    return steps


def thumb(image: torch.Tensor, size: int) -> Any:
    return center_square(image.cpu().float(), size).clamp(0, 1).permute(1, 2, 0).numpy()


def save_grid(
    path: Path, cells: list[list[torch.Tensor | None]], titles: list[str], size: int
) -> None:
    """A rows x columns figure of square thumbnails (None = empty cell), written as JPEG."""
    rows, cols = len(cells), len(titles)
    inches = size / 100
    figsize = (cols * inches, rows * inches + 0.3)
    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.axis("off")
            if image is not None:
                ax.imshow(thumb(image, size))
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - 0.3 / (rows * inches + 0.3),
                        wspace=0.02, hspace=0.02)

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="jpg", dpi=100, pil_kwargs={"quality": 85})

    atomic_write(path, write)
    plt.close(fig)


def compare_with_gatys(
    args: argparse.Namespace,
    pair: str,
    photos: dict[str, torch.Tensor],
    net: Any,
    style_names: list[str],
    meter: LossMeter,
    device: torch.device,
) -> tuple[dict[str, Any], list[torch.Tensor]]:
    photo_name, _, style_name = pair.partition(":")
    if photo_name not in photos or style_name not in style_names:
        raise UserError(
            f"--gatys {pair!r}: photos are {', '.join(photos)}; styles {', '.join(style_names)}"
        )
    size = args.gatys_size or args.size
    photo = resize_long_side(photos[photo_name], size).unsqueeze(0).to(device)
    index = style_names.index(style_name)
    with torch.no_grad():
        network_output = net(photo, index)
    network = meter(network_output, photo, index)
    network_seconds = time_forward(net, photo, index, args.repeats)
    report_steps = parse_steps(args.gatys_steps)
    mix = torch.nn.functional.one_hot(torch.tensor([index]), len(style_names))
    snapshots: dict[int, tuple[torch.Tensor, float]] = {}
    start = time.perf_counter()

    def keep(step: int, image: torch.Tensor) -> None:
        if step in report_steps:
            snapshots[step] = (image.clone(), time.perf_counter() - start)

    print(f"Gatys: {photo_name} x {style_name}, {report_steps[-1]} L-BFGS steps at {size} px")
    # The meter's own loss module and style targets: Gatys is scored exactly like the network.
    result = gatys(photo, meter.loss_fn, report_steps[-1], optimizer="lbfgs", init="content",
                   style_mix=mix, on_step=keep)
    seconds_per_step = (time.perf_counter() - start) / report_steps[-1]
    rows = []
    for step in report_steps:
        image, elapsed = snapshots[step]
        entry = result.history[step]
        rows.append({
            "step": step, "total": entry["total"], "style": entry["style"],
            "content": entry["content"], "ssim": ssim(image, photo), "mse": mse(image, photo),
            "seconds": elapsed,
        })
    reach = steps_to_reach(result.history, network["total"])
    summary = {
        "photo": photo_name, "style": style_name, "size": size,
        "network": {**network, "ssim": ssim(network_output, photo),
                    "mse": mse(network_output, photo), "seconds": network_seconds},
        "gatys": rows,
        "gatys_start": result.history[0],
        "gatys_seconds_per_step": seconds_per_step,
        "steps_to_reach_network_loss": reach,
    }
    images = [photo[0], network_output[0]] + [snapshots[s][0][0] for s in report_steps]
    return summary, images


def gatys_section(summary: dict[str, Any], figure: str) -> str:
    net = summary["network"]
    rows = [["network (1 forward pass)", net["total"], net["style"], net["content"], net["ssim"],
             net["mse"], net["seconds"]]]
    rows += [[f"Gatys, {r['step']} steps", r["total"], r["style"], r["content"], r["ssim"],
              r["mse"], r["seconds"]] for r in summary["gatys"]]
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
    return "\n".join([
        f"### {summary['photo']} x {summary['style']} ({summary['size']} px)",
        "",
        markdown_table(header, rows),
        "",
        verdict,
        "",
        f"![Gatys comparison]({figure})",
        "",
    ])


def run(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    device = pick_device(args.device)
    net, info = load_model(args.model, device)
    styles = style_sets(args.styles)
    names = pick_styles(info.style_names, styles, args.only)
    photo_paths = find_images(args.content)
    if not photo_paths:
        raise UserError(f"no photos in {args.content}")
    photos = {p.stem: resize_long_side(load_image(p), args.size) for p in photo_paths}
    if not info.loss:
        raise UserError(f"{args.model} stores no loss settings; cannot measure its loss")
    print(f"style targets for {len(info.style_names)} styles at {args.style_size} px")
    meter = LossMeter(
        info.loss, [styles[n].load(args.style_size) for n in info.style_names], device
    )
    scores: list[PhotoStyleScore] = []
    grid: list[list[torch.Tensor | None]] = [
        [None] + [styles[n].load(args.style_size)[0] for n in names]
    ]
    for photo_name, photo in photos.items():
        batch = photo.unsqueeze(0).to(device)
        row: list[torch.Tensor | None] = [photo]
        for name in names:
            index = info.style_names.index(name)
            seconds = time_forward(net, batch, index, args.repeats)
            with torch.no_grad():
                output = net(batch, index)
            scores.append(score_output(meter, photo_name, name, index, batch, output, seconds))
            row.append(output[0].cpu())
            print(f"{name:>16} x {photo_name:<12} loss {scores[-1].total:.4g}")
        grid.append(row)
    save_grid(out / "grid.jpg", grid, ["photo"] + names, args.thumb)

    comparisons = []
    if not args.no_gatys:
        pairs = args.gatys or [f"{next(iter(photos))}:{names[0]}"]
        for number, pair in enumerate(pairs):
            summary, images = compare_with_gatys(
                args, pair, photos, net, info.style_names, meter, device
            )
            figure = f"gatys_{number}.jpg"
            titles = ["photo", "network"] + [f"Gatys {r['step']}" for r in summary["gatys"]]
            save_grid(out / figure, [images], titles, args.thumb)
            summary["figure"] = figure
            comparisons.append(summary)

    means = per_style_means(scores)
    result = {
        "command": args.command, "model": str(args.model), "device": str(device),
        "model_info": {"steps": info.steps, "image_size": info.image_size, "net": info.net,
                       "style_names": info.style_names, "loss": info.loss},
        "size": args.size, "style_size": args.style_size,
        "scores": scores, "per_style": means, "gatys": comparisons,
    }
    write_json(out / "evaluation.json", result)
    write_text(out / "evaluation.md", report_markdown(result, means, scores, comparisons))
    return out / "evaluation.md"


def report_markdown(
    result: dict[str, Any],
    means: dict[str, dict[str, float]],
    scores: list[PhotoStyleScore],
    comparisons: list[dict[str, Any]],
) -> str:
    info = result["model_info"]
    loss = info["loss"]
    parts = [
        "# Evaluation report",
        "",
        f"Written by `{result['command']}` on {result['device']}.",
        "",
        f"Model: `{result['model']}`, {info['steps']} training steps at {info['image_size']} px, "
        f"net {info['net']}. Photos at {result['size']} px (long side), style targets at "
        f"{result['style_size']} px. Losses use the model's own loss settings "
        f"(`{loss.get('vgg_weights')}` VGG, taps after `{loss.get('tap', 'relu')}`, "
        f"style weight {loss.get('style_weight')}); SSIM and MSE compare with the photo; "
        "seconds are the median of timed forward passes on that device.",
        "",
        "![photos x styles](grid.jpg)",
        "",
        "## Mean over photos, per style",
        "",
        means_table(means),
        "",
    ]
    if comparisons:
        parts += ["## Network vs Gatys optimisation (same loss)", ""]
        parts += [gatys_section(c, c["figure"]) for c in comparisons]
    parts += ["## Every photo and style", "", scores_table(scores), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    return run_report_tool(__file__, build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
