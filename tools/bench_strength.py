"""What ``--strength`` above 1 (bolder strokes) costs a frame, on each path.

    OMP_NUM_THREADS=2 .venv/bin/python tools/bench_strength.py --json docs/benchmarks/strength.json

Times the 4-px Gaussian and the gain on one random frame per size (mean of ``--repeats``
after a warm-up): the onnx backend's path with OpenCV and with NumPy alone, and the torch
backend's depthwise conv on the CPU. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastnst.files import atomic_write
from fastnst.infer.stylize import bolder_strokes as torch_bolder
from fastnst.runtime.arrays import blur_numpy, bolder_strokes

STRENGTH = 1.2


def mean_ms(run: Callable[[Any], object], frame: Any, repeats: int) -> float:
    run(frame)
    start = time.perf_counter()
    for _ in range(repeats):
        run(frame)
    return 1000 * (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'frame':>10} {'onnx, OpenCV ms':>16} {'onnx, NumPy ms':>15} {'torch CPU ms':>13}")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        frame = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
        tensor = torch.from_numpy(frame)
        row = {
            "size": size,
            "opencv_ms": mean_ms(partial(bolder_strokes, strength=STRENGTH), frame, args.repeats),
            "numpy_ms": mean_ms(
                partial(bolder_strokes, strength=STRENGTH, blur=blur_numpy), frame, args.repeats
            ),
            "torch_cpu_ms": mean_ms(partial(torch_bolder, strength=STRENGTH), tensor, args.repeats),
        }
        rows.append(row)
        print(
            f"{size:>10} {row['opencv_ms']:>16.1f} {row['numpy_ms']:>15.1f} "
            f"{row['torch_cpu_ms']:>13.1f}"
        )
    if args.json:
        report = {"threads": torch.get_num_threads(), "strength": STRENGTH, "rows": rows}
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
