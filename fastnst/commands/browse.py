"""Stylize a sample of photos with every style of a model and open them in the FiftyOne App.

    fastnst browse --model outputs/.../model.safetensors --content ../shared/data/content
    fastnst browse --model M --content DIR --remote      # on a server: forward the port

Each content photo is a group: the photo, each style's output and each style's frame sheet
(from ``--styles``, default data/styles/spiderverse) side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastnst.errors import UserError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fastnst browse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="exported .safetensors model")
    parser.add_argument("--content", type=Path, required=True, help="photo or folder of photos")
    parser.add_argument(
        "--styles",
        type=Path,
        default=Path("data/styles/spiderverse"),
        help="style-set tree with a folder per style name (for the sheets)",
    )
    parser.add_argument(
        "--num", type=int, default=8, help="photos to stylize (default %(default)s)"
    )
    parser.add_argument("--size", type=int, default=512, help="long side of the outputs")
    parser.add_argument("--out", type=Path, default=Path("outputs/browse"))
    parser.add_argument("--name", help="FiftyOne dataset name (default: fastnst-browse-<model>)")
    parser.add_argument(
        "--remote",
        action="store_true",
        help="serve the App without opening a browser (for servers)",
    )
    parser.add_argument("--port", type=int, default=5151)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--no-launch", action="store_true", help="build the dataset only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    from fastnst.datasets.browse import build_browse_dataset

    name = args.name or f"fastnst-browse-{args.model.stem}"
    try:
        dataset = build_browse_dataset(
            name,
            args.model,
            args.content,
            args.out / name,
            args.styles,
            args.num,
            args.size,
            device_name=args.device,
        )
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"FiftyOne dataset {name!r}: {len(dataset)} groups, slices {dataset.group_slices}")
    if args.no_launch:
        return 0
    import fiftyone as fo

    session = fo.launch_app(dataset, remote=args.remote, port=args.port, auto=not args.remote)
    if args.remote:
        print(f"App served on port {args.port}: ssh -N -L 5151:localhost:{args.port} <server>")
    session.wait()
    return 0
