"""Sample style frames from film clips into a style folder, skipping bad and repeated frames.

    fastnst extract-frames clips/miles_*.mp4 --out data/styles/spiderverse/miles

Scene cuts, a minimum spacing and a per-scene cap spread the frames over the film; dark,
flat, blurry and near-duplicate frames are dropped and letterbox bars cropped. A
``manifest.json`` beside the frames records source, timestamp, scene and hashes; running
again on the same clips adds nothing twice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastnst.datasets.extract import ExtractOptions, extract_frames
from fastnst.datasets.quality import QualityThresholds
from fastnst.errors import UserError, check_finite


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults, quality = ExtractOptions(), QualityThresholds()
    parser = argparse.ArgumentParser(
        prog="fastnst extract-frames",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("clips", nargs="+", type=Path, help="video files (anything FFmpeg reads)")
    parser.add_argument("--out", type=Path, required=True, help="style folder to add frames to")
    parser.add_argument(
        "--min-spacing",
        type=float,
        default=defaults.min_spacing,
        help="seconds between frames taken from one clip (default %(default)s)",
    )
    parser.add_argument(
        "--scene-threshold",
        type=float,
        default=defaults.scene_threshold,
        help="colour-histogram change in [0, 1] that counts as a cut",
    )
    parser.add_argument("--max-per-scene", type=int, default=defaults.max_per_scene)
    parser.add_argument(
        "--max-hash-distance",
        type=int,
        default=defaults.max_hash_distance,
        help="bits of pHash and dHash within which two frames are the same",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=defaults.max_side,
        help="shrink saved frames to this long side (0 keeps the clip's size)",
    )
    parser.add_argument("--min-brightness", type=float, default=quality.min_brightness)
    parser.add_argument("--min-contrast", type=float, default=quality.min_contrast)
    parser.add_argument(
        "--min-sharpness",
        type=float,
        default=quality.min_sharpness,
        help="variance of the Laplacian at 512 px long side",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_finite(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.min_spacing < 0 or args.max_per_scene < 1 or args.max_side < 0:
        print(
            "error: --min-spacing and --max-side must be >= 0, --max-per-scene >= 1",
            file=sys.stderr,
        )
        return 1
    options = ExtractOptions(
        min_spacing=args.min_spacing,
        scene_threshold=args.scene_threshold,
        max_per_scene=args.max_per_scene,
        max_hash_distance=args.max_hash_distance,
        max_side=args.max_side,
        quality=QualityThresholds(args.min_brightness, args.min_contrast, args.min_sharpness),
    )
    try:
        summaries = extract_frames(args.clips, args.out, options, progress=not args.quiet)
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: frames written so far are kept and listed", file=sys.stderr)
        return 130
    for s in summaries:
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(s.rejected.items())) or "none"
        print(
            f"{s.clip.name}: {s.decoded} frames, {s.scenes} scenes, {s.written} written, "
            f"{s.already_listed} already listed, dropped: {dropped}"
        )
    print(f"{args.out}: {len(list(args.out.glob('*.jpg')))} frames")
    return 0
