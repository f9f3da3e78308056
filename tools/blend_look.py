"""A few frames of a clip as ``stylize --video`` shows them, one row per blend kind under the
clip's own row (what the warping error and the Gram matrices do not see: smears, streaks):

    python tools/blend_look.py --clip clips/eval/bikes.mp4 --strength 1.2 --frames 14 15 29 \
        --kinds detail glue --out docs/video/glue_bikes.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fastnst.files import atomic_write
from fastnst.infer.temporal_blend import BLEND_KINDS, VideoStream
from fastnst.runtime.backends import load_stylizer
from fastnst.video.pairs import read_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fastnst/models/classics-video.safetensors")
    parser.add_argument("--clip", required=True)
    parser.add_argument("--style", default="5")
    parser.add_argument("--long-side", type=int, default=512)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 15, 29])
    parser.add_argument("--kinds", nargs="+", choices=BLEND_KINDS, default=["detail", "glue"])
    parser.add_argument("--out", type=Path, required=True, help=".jpg or .png")
    args = parser.parse_args()

    frames = read_frames(args.clip, args.long_side, max(args.frames) + 1).numpy()
    stylizer = load_stylizer(args.model, "onnx", "cpu")
    weights = stylizer.styles(args.style)[0][1]
    rows = [frames]
    for kind in args.kinds:  # each a fresh stream with stylize's defaults for that kind
        stream = VideoStream(stylizer.recurrent, blend_kind=kind)
        shown = [stream(stylizer, frame[None], weights, args.strength) for frame in frames]
        rows.append(np.concatenate(shown))
    grid = np.concatenate([np.concatenate(list(row[args.frames]), -1) for row in rows], -2)
    image = (np.clip(grid, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)[:, :, ::-1]
    encoded = cv2.imencode(args.out.suffix, image, [cv2.IMWRITE_JPEG_QUALITY, 82])[1]
    atomic_write(args.out, lambda tmp: tmp.write_bytes(encoded.tobytes()))


if __name__ == "__main__":
    main()
