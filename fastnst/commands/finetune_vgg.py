"""Fine-tune VGG-19 as a classifier of a style tree's styles; write its features for the loss.

    fastnst finetune-vgg --styles ../shared/data/styles --out vgg.safetensors --steps 300
    fastnst train style=folder style.dir=... loss.vgg_weights=vgg.safetensors

``--styles`` is a ``style=folder`` tree: one subfolder of frames (or one image) per style.
Prints each style's accuracy on its held-out crops (never trained on) and writes the
convolutions, in the layout ``loss.vgg_weights=FILE`` reads, with the input convention in
the file's metadata (``loss.vgg_preprocess`` needs no setting).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from fastnst.data.styles import folder_styles
from fastnst.devices import pick_device
from fastnst.errors import UserError, run_command
from fastnst.vgg_finetune import FinetuneSettings, finetune, save_features


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst finetune-vgg",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = FinetuneSettings()
    parser.add_argument("--styles", required=True, type=Path, help="style tree (style=folder)")
    parser.add_argument("--out", required=True, type=Path, help="features file (.safetensors)")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--crop", type=int, default=defaults.crop, help="crop size in px")
    parser.add_argument(
        "--lr", type=float, default=defaults.conv_lr, help="learning rate of the convolutions"
    )
    parser.add_argument("--head-lr", type=float, default=defaults.head_lr)
    parser.add_argument(
        "--train-from", default=defaults.train_from, help="lowest convolution to fine-tune"
    )
    parser.add_argument(
        "--head-layer", default=defaults.head_layer, help="tap the classifier head reads"
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=defaults.holdout,
        help="share of each style held out: of its images, or a strip of a single image",
    )
    parser.add_argument("--eval-crops", type=int, default=defaults.eval_crops)
    parser.add_argument("--max-images", type=int, default=64, help="images per style at most")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> Path:
    if args.out.suffix != ".safetensors":
        raise UserError(f"--out must end in .safetensors, got {args.out.name}")
    settings = FinetuneSettings(
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        conv_lr=args.lr,
        head_lr=args.head_lr,
        holdout=args.holdout,
        eval_crops=args.eval_crops,
        head_layer=args.head_layer,
        train_from=args.train_from,
        seed=args.seed,
    )
    settings.check()
    styles = folder_styles(args.styles, max_images=args.max_images, seed=args.seed)
    device = pick_device(args.device)
    model, result = finetune(styles, settings, device, progress=not args.quiet)
    print(f"{'style':<20}{'held-out accuracy':>18}  split")
    for name, accuracy in result.accuracy.items():
        print(f"{name:<20}{accuracy:>18.3f}  {result.splits[name]}")
    print(
        f"mean held-out accuracy {result.mean_accuracy:.3f} (chance {1 / len(styles):.3f}); "
        f"training loss over the last tenth of steps {result.train_loss:.3f}"
    )
    metadata = {
        "styles": json.dumps(list(result.accuracy)),
        "heldout_accuracy": json.dumps(result.accuracy),
        "settings": json.dumps(asdict(settings)),
    }
    return save_features(model, args.out, metadata)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), "no weight file was written", args)
