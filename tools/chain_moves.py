"""What moving a stylized picture again and again does to its strokes: the network's output
on one photo, moved by a random shift of under half a pixel each frame (the fractions of a
pixel a pan leaves) with each kernel, and by the glue as it ships (kept whole, sampled from
its anchor). Prints each one's energy per band of spatial
frequency against the picture's own, and draws the pictures side by side:

    python tools/chain_moves.py --model fastnst/models/classics.safetensors \\
        --photo ../shared/data/content/amber.jpg --moves 60 --out docs/video/anchor_chain.jpg
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from fastnst.files import atomic_write
from fastnst.images import load_image, resize_long_side
from fastnst.infer.glue import Glue
from fastnst.runtime.backends import load_stylizer
from fastnst.runtime.flow import FlowFn, positions, warp

BANDS = ((0.0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.5))  # cycles per pixel
WAYS = ("bicubic", "clamped", "bilinear", "glue")


def band_energy(image: np.ndarray) -> np.ndarray:
    """The luma's spectral energy (mean removed) in each of :data:`BANDS`."""
    luma = image.mean(0)
    power = np.abs(np.fft.fft2(luma - luma.mean())) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(luma.shape[1]), np.fft.fftfreq(luma.shape[0])))
    return np.array([power[(radius >= lo) & (radius < hi)].sum() for lo, hi in BANDS])


def shifts(moves: int, seed: int) -> np.ndarray:
    """``[moves, 2]`` uniform shifts in [-0.5, 0.5) px, x and y."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (moves, 2)).astype(np.float32)


def moved(picture: np.ndarray, way: str, steps: np.ndarray) -> list[np.ndarray]:
    """``picture`` (``[3, H, W]``) after each of ``steps`` (``[N, 2]`` shifts): moved on
    by OpenCV's bicubic alone, the glue's clamped bicubic or bilinear, or shown by the glue
    (a still photo under it, so every pixel is kept)."""
    size = picture.shape[-2:]
    flows = [np.broadcast_to(step[:, None, None], (2, *size)).copy() for step in steps]
    if way == "glue":
        photo = np.full_like(picture, 0.5)
        queue = iter(flows)
        trusted = np.ones(size, np.float32)
        flow_fn: FlowFn = lambda previous, current: (next(queue), trusted)  # noqa: E731
        glue = Glue(0.1, flow_fn, lambda carried, fresh, mask: fresh)
        glue(photo, picture)
        return [glue(photo, picture) for _ in flows]
    out, shown = picture, []
    for flow in flows:
        out = bicubic_move(out, flow) if way == "bicubic" else warp(out, flow, way == "clamped")
        shown.append(out)
    return shown


def bicubic_move(picture: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """OpenCV's bicubic alone along ``flow`` (the glue's kernel before it was clamped)."""
    xs, ys = positions(flow)
    planes = np.ascontiguousarray(picture.transpose(1, 2, 0))
    remapped = cv2.remap(planes, xs, ys, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(remapped.transpose(2, 0, 1), 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fastnst/models/classics.safetensors")
    parser.add_argument("--photo", required=True)
    parser.add_argument("--style", default="5")
    parser.add_argument("--long-side", type=int, default=384)
    parser.add_argument("--moves", type=int, default=60)
    parser.add_argument("--report", type=int, nargs="+", default=[10, 30, 60])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=".jpg or .png: the pictures")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    stylizer = load_stylizer(args.model, "onnx", "cpu")
    photo = resize_long_side(load_image(args.photo), args.long_side).numpy()[None]
    picture = stylizer(photo, stylizer.styles(args.style)[0][1])[0]
    base = band_energy(picture)
    steps = shifts(args.moves, args.seed)
    report: dict = {"bands": BANDS, "moves": args.moves, "ways": {}}
    finals = [picture]
    print("energy per band against the picture's own: " + ", ".join(f"{a}-{b}" for a, b in BANDS))
    for way in WAYS:
        shown = moved(picture, way, steps)
        ratios = {n: band_energy(shown[n - 1]) / base for n in args.report}
        rows = {n: [round(float(x), 3) for x in ratio] for n, ratio in ratios.items()}
        report["ways"][way] = rows
        for n, row in rows.items():
            print(f"{way:>9} after {n:>3} moves: {row}")
        finals.append(shown[-1])
    if args.json:
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    if args.out:
        grid = np.concatenate(finals, -1)
        image = (np.clip(grid, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
        encoded = cv2.imencode(args.out.suffix, image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        atomic_write(args.out, lambda tmp: tmp.write_bytes(encoded[1].tobytes()))


if __name__ == "__main__":
    main()
