"""Show what each style set holds: a table of frame counts and one thumbnail sheet per style.

    fastnst style-report data/styles/spiderverse            # the five universes
    fastnst style-report ../shared/data/styles --layout folder

``--layout spiderverse`` reads ROOT the way ``style=spiderverse`` does (a universe with no
frames shows its procedural fallback); ``--layout folder`` the way ``style=folder`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastnst.data.styles import folder_styles, spiderverse_styles
from fastnst.datasets.style_report import write_style_report
from fastnst.errors import UserError
from fastnst.files import atomic_write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastnst style-report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("root", type=Path, nargs="?", default=Path("data/styles/spiderverse"))
    parser.add_argument("--layout", choices=["spiderverse", "folder"], default="spiderverse")
    parser.add_argument(
        "--max-images",
        type=int,
        default=64,
        help="images per style, as in the style config (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/style_report"))
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--tile", type=int, default=128)
    args = parser.parse_args(argv)
    try:
        if args.layout == "spiderverse":
            styles = spiderverse_styles(args.root, max_images=args.max_images)
        else:
            styles = folder_styles(args.root, max_images=args.max_images)
        rows = write_style_report(styles, args.out, args.columns, args.tile)
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{'style':<16}{'source':<12}{'images':>7}  sheet")
    for row in rows:
        print(f"{row.name:<16}{row.source:<12}{row.images:>7}  {row.sheet}")
    summary = [{**row.__dict__, "sheet": str(row.sheet)} for row in rows]
    payload = json.dumps({"root": str(args.root), "styles": summary}, indent=1)
    atomic_write(args.out / "report.json", lambda tmp: tmp.write_text(payload))
    return 0
