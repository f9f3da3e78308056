"""Build, list and export the project's persistent FiftyOne datasets.

fastnst datasets content photos ../shared/data/photos  # then train with data.name=photos
fastnst datasets styles spiderverse data/styles/spiderverse
fastnst datasets export spiderverse exported/ --format tree
fastnst datasets list
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastnst.errors import UserError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fastnst datasets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    content = commands.add_parser("content", help="a dataset of every image below a folder")
    styles = commands.add_parser("styles", help="a style-set tree, labelled by style folder")
    for command in (content, styles):
        command.add_argument("name")
        command.add_argument("folder", type=Path)
        command.add_argument("--overwrite", action="store_true")
    export = commands.add_parser("export", help="write a dataset to a folder")
    export.add_argument("name")
    export.add_argument("folder", type=Path)
    export.add_argument("--format", choices=["tree", "fiftyone"], default="tree")
    commands.add_parser("list", help="the datasets in this FiftyOne database")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    from fastnst.datasets import fiftyone_sets as sets

    try:
        fo = sets.import_fiftyone()
        if args.command == "content":
            print(sets.describe(sets.build_content_dataset(args.name, args.folder, args.overwrite)))
        elif args.command == "styles":
            print(sets.describe(sets.build_style_dataset(args.name, args.folder, args.overwrite)))
        elif args.command == "export":
            if not fo.dataset_exists(args.name):
                raise UserError(f"no FiftyOne dataset named {args.name!r}")
            print(sets.export_dataset(fo.load_dataset(args.name), args.folder, args.format))
        else:
            for name in fo.list_datasets():
                print(sets.describe(fo.load_dataset(name)))
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
