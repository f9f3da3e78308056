"""Frames/s of the app's live webcam tab on the server side: a 640x480 camera frame shrunk
to each size and stylized (:func:`fastnst.app.live.stylize_frame`: resize, conversion and
the model), on the onnxruntime backend unless told otherwise.

    /work/cpu .venv/bin/python tools/bench_live.py --model classics-lite --sizes 320 400 480

The browser's round trip (JPEG encode, upload, the result's download) comes on top: the
app's browser test prints the rate a page really receives.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fastnst.app.live import stylize_frame
from fastnst.runtime.backends import BACKENDS, load_stylizer

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO.parent / "shared" / "data" / "content" / "chelsea.png"


def camera_frame(width: int = 640, height: int = 480) -> np.ndarray:
    """A photo cropped to a camera's 4:3 frame (a flat frame would flatter no one, but a
    real one is what a webcam sends)."""
    with Image.open(PHOTO) as photo:
        return np.asarray(ImageOps.fit(photo.convert("RGB"), (width, height)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="classics-lite")
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 400, 480])
    parser.add_argument("--backend", default="onnx", choices=BACKENDS)
    parser.add_argument("--frames", type=int, default=60, help="timed frames per size")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    stylizer = load_stylizer(args.model, args.backend, "cpu")
    weights = stylizer.styles("0")[0][1]
    frame = camera_frame()
    rows = []
    for size in args.sizes:
        for _ in range(5):  # warm-up: first runs allocate
            out = stylize_frame(stylizer, frame, weights, size)
        started = time.perf_counter()
        for _ in range(args.frames):
            stylize_frame(stylizer, frame, weights, size)
        seconds = (time.perf_counter() - started) / args.frames
        rows.append(
            {
                "size": size,
                "shape": f"{out.shape[1]}x{out.shape[0]}",
                "ms_per_frame": round(seconds * 1000, 1),
                "frames_per_s": round(1 / seconds, 1),
            }
        )
        print(f"{size:4d} px ({rows[-1]['shape']}): {seconds * 1000:6.1f} ms, {1 / seconds:5.1f}/s")
    if args.json:
        meta = {"model": args.model, "backend": stylizer.engine, "cpu": platform.processor()}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
