"""Evaluate an exported model against its own training loss and against Gatys optimisation.

Per style and photo: total, style and content loss (the loss settings stored in the model),
SSIM and MSE against the photo, and seconds per image. For chosen photo/style pairs it also
runs Gatys et al. (L-BFGS from the photo, the same loss) and reports the loss after
50/100/300/500 steps and how many steps reach the network's loss (Johnson et al.'s
comparison). With ``--content-retention`` it also asks an ImageNet classifier
(EfficientNet-Lite0, the ``retention`` extra) whether each stylized image keeps the photo's
class, for the network and for Gatys (seed 002). Writes a Markdown report, a JSON file and
JPEG grids.

    fastnst evaluate --model outputs/.../model.safetensors \\
        --content ../shared/data/content --styles ../shared/data/styles --out docs/quality
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fastnst.errors import UserError, run_report_tool
from fastnst.evaluation.run import EvaluationRequest, evaluate_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="exported .safetensors model")
    parser.add_argument("--content", required=True, help="photo or folder of photos")
    parser.add_argument(
        "--styles",
        nargs="*",
        default=[],
        help="folder(s) of style images, named as the model's styles (file stem or subfolder); "
        "Spider-Verse universes not found there use their frames or built-in texture",
    )
    parser.add_argument("--only", default="", help="comma-separated style names (default: all)")
    parser.add_argument("--size", type=int, default=256, help="long side of photos in px")
    parser.add_argument("--style-size", type=int, default=256, help="long side of style images")
    parser.add_argument(
        "--gatys",
        action="append",
        default=None,
        metavar="PHOTO:STYLE",
        help="photo stem and style for the Gatys comparison (repeatable; default: first pair)",
    )
    parser.add_argument("--gatys-steps", default="50,100,300,500", help="steps to report")
    parser.add_argument(
        "--gatys-size", type=int, default=0, help="long side there (default --size)"
    )
    parser.add_argument("--no-gatys", action="store_true", help="skip the Gatys comparison")
    parser.add_argument(
        "--content-retention",
        action="store_true",
        help="top-1/top-5 agreement of an ImageNet classifier on photo and stylized image",
    )
    parser.add_argument(
        "--retention-gatys-steps",
        type=int,
        default=50,
        help="with --content-retention: also judge Gatys after this many L-BFGS steps on every "
        "photo and style at --gatys-size (0 or --no-gatys: network only)",
    )
    parser.add_argument(
        "--max-photos",
        type=int,
        default=0,
        help="score this many photos, evenly spaced over the sorted folder (default: all)",
    )
    parser.add_argument(
        "--grid-photos", type=int, default=0, help="photo rows in grid.jpg (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes per image")
    parser.add_argument("--thumb", type=int, default=160, help="grid cell size in px")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--loss",
        default=None,
        help="judge with these loss settings (a packaged name, .yaml or model file) instead of "
        "the model's own, to score models of different loss networks on one scale",
    )
    parser.add_argument("--out", default="outputs/evaluate", help="folder for report, JSON, grids")
    return parser


def parse_steps(text: str) -> list[int]:
    """``50,100,300`` → sorted distinct step counts."""
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UserError(f"--gatys-steps must be integers like 50,100,300, got {text!r}") from None


def run(args: argparse.Namespace) -> Path:
    return evaluate_model(
        EvaluationRequest(
            model=args.model,
            content=args.content,
            styles=args.styles,
            out=Path(args.out),
            only=[name.strip() for name in args.only.split(",") if name.strip()],
            size=args.size,
            style_size=args.style_size,
            gatys_pairs=[] if args.no_gatys else args.gatys,
            gatys_steps=() if args.no_gatys else parse_steps(args.gatys_steps),
            gatys_size=args.gatys_size,
            repeats=args.repeats,
            thumb=args.thumb,
            device=args.device,
            command=args.command,
            max_photos=args.max_photos,
            grid_photos=args.grid_photos,
            content_retention=args.content_retention,
            retention_gatys_steps=0 if args.no_gatys else args.retention_gatys_steps,
            loss=args.loss,
        )
    )


def main(argv: list[str] | None = None) -> int:
    return run_report_tool(build_parser(), run, argv)
