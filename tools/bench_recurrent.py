"""The recurrent section of tools/bench_infer.py (``--sections recurrent``): what a video
frame costs a still and a recurrent model with the temporal defaults (issue 21: <= 1.3x)."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np


def bench_recurrent(
    still_model: str, recurrent_model: str, clip_path: Path, long_side: int, frames: int
) -> list[dict]:
    """Per-frame cost of a recurrent model on a real clip (onnxruntime): the still network
    alone, with the input smoothing, with the smoothing and the blend averaged along the flow
    (``--blend-kind flow``) or keeping the detail (``--blend-kind detail``), and with the
    smoothing and the glue, as `stylize` gives it by default; the recurrent network with its
    guide (flow, warp, 7-channel first conv), alone, with its defaults (the detail blend) and
    with the glue. Issue 21: <= 1.3x."""
    from fastnst.infer.temporal_blend import (
        DEFAULT_BLEND,
        DEFAULT_GLUE,
        DEFAULT_SMOOTH,
        Recurrence,
        VideoStream,
    )
    from fastnst.runtime.onnx_backend import OnnxStylizer

    clip = read_clip_frames(clip_path, frames + 2, long_side)
    still, recurrent = OnnxStylizer.load(still_model), OnnxStylizer.load(recurrent_model)
    weights = np.eye(len(still.style_names), dtype=np.float32)[5]
    recurrence = Recurrence()
    smoothed = VideoStream(recurrent=False, blend=0)  # smoothing only
    averaged = VideoStream(recurrent=False, blend_kind="flow")  # smoothing, blend averaged
    still_detail = VideoStream(recurrent=False, blend_kind="detail")  # one flow for both
    recurrent_default = VideoStream(recurrent=True)  # one flow for all three
    still_default = VideoStream(recurrent=False)  # what stylize runs: the glue
    recurrent_glued = VideoStream(recurrent=True, blend_kind="glue")

    def step(photo: np.ndarray, guide: np.ndarray) -> np.ndarray:
        return recurrent.guided(photo, weights, guide)

    both = f"input smoothing {DEFAULT_SMOOTH} + blend {DEFAULT_BLEND}"
    runs = {
        "still": lambda frame: still(frame, weights),
        f"still + input smoothing {DEFAULT_SMOOTH}": lambda frame: smoothed(still, frame, weights),
        f"still + {both}, averaged": lambda frame: averaged(still, frame, weights),
        f"still + {both}, detail kept": lambda frame: still_detail(still, frame, weights),
        "recurrent (guide + network)": lambda frame: recurrence(frame, step),
        f"recurrent + {both}, detail kept (its stylize default)": lambda frame: recurrent_default(
            recurrent, frame, weights
        ),
        f"still + input smoothing {DEFAULT_SMOOTH} + glue {DEFAULT_GLUE} (its stylize default)": (
            lambda frame: still_default(still, frame, weights)
        ),
        f"recurrent + input smoothing {DEFAULT_SMOOTH} + glue {DEFAULT_GLUE}": lambda frame: (
            recurrent_glued(recurrent, frame, weights)
        ),
    }
    for frame in clip[:2]:  # warm-up (the first recurrent frame has no guide)
        for run in runs.values():
            run(frame[None])
    # Interleaved frame by frame, so that a slow spell of a shared machine hits every run.
    seconds = dict.fromkeys(runs, 0.0)
    for frame in clip[2:]:
        for name, run in runs.items():
            start = time.perf_counter()
            run(frame[None])
            seconds[name] += time.perf_counter() - start
    rows = [
        {"run": name, "size": list(clip.shape[-2:]), "ms_per_frame": round(1000 * s / frames, 1)}
        for name, s in seconds.items()
    ]
    base = rows[0]["ms_per_frame"]
    size = f"{clip.shape[-1]}x{clip.shape[-2]}"
    print(f"\nrecurrent vs still, {size}, {frames} frames of {clip_path.stem}")
    print("| run | ms a frame | x still |\n|---|---|---|")
    for row in rows:
        row["x_still"] = round(row["ms_per_frame"] / base, 2)
        print(f"| {row['run']} | {row['ms_per_frame']} | {row['x_still']} |")
    return rows


def read_clip_frames(path: Path, count: int, long_side: int) -> np.ndarray:
    """The first ``count`` frames of a clip, float32 ``[T, 3, H, W]``, long side ``long_side``."""
    from fastnst.runtime.arrays import frames_to_array, resize_long_side

    with av.open(str(path)) as container:
        decoded = []
        for frame in container.decode(video=0):
            decoded.append(frame.to_ndarray(format="rgb24"))
            if len(decoded) == count:
                break
    return np.stack(
        [resize_long_side(image, long_side) for image in frames_to_array(np.stack(decoded))]
    )
