"""What a perfectly steady stylization scores under issue 21's judge: a lower bound.

    python tools/anchored_bound.py --model /tmp/models/classics-v1.safetensors --model classics \
        --photos ../shared/data/content --style 5 --noise 0.011 0.004 --json bound.json

A clip is made from one still photo by a known camera motion (a smooth random pan with a
little rotation and zoom, frame by frame, ``--speed`` pixels a frame on average as
cockatoo's DIS flow at 512 px) plus each frame's own sensor noise (``--noise``: standard
deviation per channel; 0.011 makes cockatoo's floor, 0.004 bikes'). Such a clip has an
ideal stylization: the network's output on the first frame, moved with the scene (the
strokes glued to it, nothing repainted; beyond the first frame's edges its mirror image,
glued too). The first frame rather than a larger canvas, because the network paints
differently when the framing changes, even by a few pixels: so the glued strokes are as
strong as the per-frame ones. The glued output's warping error under the judge (DIS flow
and masks from the input frames, as ``fastnst eval-video``) is what no method can go below
at that texture, since the judge's flow and its bilinear warp are not exact and the
strokes' contrast turns each small error into error the photo's own texture does not.
Real clips (``--clip``) get the per-frame columns only: their true motion is unknown.

Per photo, noise and model the table gives the floor (the input's own error), the ideal
("glued") output and the network's per-frame output as multiples of it under the judge,
the glued output under the exact flow (the judge's flow error taken away), and the judge's
style distance of both outputs (the target's axis).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fastnst.distances import Distances
from fastnst.evaluation.video_models import judge_distances, style_judge, style_sets
from fastnst.export import load_model
from fastnst.files import atomic_write
from fastnst.images import find_images, load_image
from fastnst.infer.temporal_blend import Recurrence
from fastnst.model import TransformerNet
from fastnst.video.metrics import masked_warp_error, warping_errors
from fastnst.video.pairs import read_frames
from fastnst.video.warp import pixel_grid

MARGIN = 0.15  # the canvas is this much larger than the frame on each side


def camera_path(frames: int, speed: float, seed: int) -> list[np.ndarray]:
    """``frames`` affine maps (2x3, frame pixel → canvas pixel, about the frame's centre):
    a smooth pan of mean ``speed`` px a frame (two sinusoids per axis), rotation within
    ±1.5° and zoom within ±3 %, all starting at rest at a random phase."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64)
    periods = rng.uniform(frames / 2, frames * 1.5, size=(2, 2))
    phases = rng.uniform(0, 2 * math.pi, size=(2, 2))

    def path(axis: int) -> np.ndarray:
        # Each wave's amplitude in proportion to its period: both move at the same speed.
        pairs = zip(periods[axis], phases[axis], strict=True)
        return sum(p / (2 * math.pi) * np.sin(2 * math.pi * t / p + f) for p, f in pairs)

    shift = np.stack([path(0), path(1)], 1)
    steps = np.linalg.norm(np.diff(shift, axis=0), axis=1).mean()
    shift = (shift - shift[0]) * speed / steps
    angle = np.radians(1.5) * np.sin(2 * math.pi * t / rng.uniform(frames, 2 * frames))
    zoom = 1 + 0.03 * np.sin(2 * math.pi * t / rng.uniform(frames, 2 * frames) + rng.uniform(0, 6))
    maps = []
    for k in range(frames):
        c, s = math.cos(angle[k]) * zoom[k], math.sin(angle[k]) * zoom[k]
        maps.append(np.array([[c, -s, shift[k, 0]], [s, c, shift[k, 1]]]))
    return maps


def placed(
    maps: list[np.ndarray], frame: tuple[int, int], canvas: tuple[int, int]
) -> list[np.ndarray]:
    """The maps about the frame's centre, moved so the frame starts centred on the canvas."""
    (h, w), (ch, cw) = frame, canvas
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    out = []
    for m in maps:
        a = m[:, :2]
        offset = np.array([(cw - 1) / 2, (ch - 1) / 2]) + m[:, 2] - a @ centre
        out.append(np.concatenate([a, offset[:, None]], 1))
    return out


def render(canvas: torch.Tensor, maps: list[np.ndarray], frame: tuple[int, int]) -> torch.Tensor:
    """``[T, 3, H, W]``: the canvas ``[3, CH, CW]`` seen through each map (bicubic)."""
    image = canvas.permute(1, 2, 0).numpy().astype(np.float32)
    h, w = frame
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    views = [
        cv2.warpAffine(image, m, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT) for m in maps
    ]
    return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).clamp(0, 1)


def exact_flows(
    maps: list[np.ndarray], frame: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward flow t → t−1 of the rendered frames, and where it lands inside the frame."""
    h, w = frame
    grid = pixel_grid(h, w, dtype=torch.float64).reshape(-1, 2).numpy()
    flows, masks = [], []
    for before, now in zip(maps[:-1], maps[1:], strict=True):
        on_canvas = grid @ now[:, :2].T + now[:, 2]
        previous = np.linalg.solve(before[:, :2], (on_canvas - before[:, 2]).T).T
        flow = (previous - grid).reshape(h, w, 2)
        x, y = previous[:, 0], previous[:, 1]
        inside = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).reshape(h, w)
        flows.append(torch.from_numpy(flow).permute(2, 0, 1).float())
        masks.append(torch.from_numpy(inside).float()[None])
    return torch.stack(flows), torch.stack(masks)


def relative_to_first(maps: list[np.ndarray]) -> list[np.ndarray]:
    """Each frame's map onto the first frame's pixels (frame t pixel → frame 0 pixel)."""
    first_inverse = np.linalg.inv(np.vstack([maps[0], [0, 0, 1]]))
    return [(first_inverse @ np.vstack([m, [0, 0, 1]]))[:2] for m in maps]


def canvas_for(photo: torch.Tensor, frame: tuple[int, int]) -> torch.Tensor:
    """The photo scaled to cover the frame plus the margin, centre-cropped to that size."""
    ch, cw = (round(side * (1 + 2 * MARGIN)) for side in frame)
    h, w = photo.shape[-2:]
    scale = max(ch / h, cw / w)
    size = (max(ch, round(h * scale)), max(cw, round(w * scale)))
    resized = F.interpolate(photo[None], size=size, mode="bicubic", antialias=scale < 1)[0]
    top, left = (size[0] - ch) // 2, (size[1] - cw) // 2
    return resized[:, top : top + ch, left : left + cw].clamp(0, 1)


@torch.no_grad()
def per_frame(net: TransformerNet, frames: torch.Tensor, style: int, guided: bool) -> torch.Tensor:
    """The network frame by frame, as ``stylize --video`` runs it (a recurrent one guided by
    its previous output along the flow unless not ``guided``), no blend, no input smoothing."""
    if not (net.config.recurrent and guided):
        return torch.cat([net(frame[None], style) for frame in frames]).float()

    def step(photo: np.ndarray, guide: np.ndarray) -> np.ndarray:
        return net(torch.from_numpy(photo), style, torch.from_numpy(guide)).float().numpy()

    return Recurrence()(frames, step)


def mean_style(judge: Distances, outputs: torch.Tensor, frames: torch.Tensor, every: int) -> float:
    """The judge's style distance over every ``every``-th frame."""
    return judge_distances(judge, outputs[::every], frames[::every])["style_distance"]


def runs(nets: dict[str, TransformerNet], still: bool) -> list[tuple[str, bool]]:
    """``(model, guided)`` per output: a recurrent model as it runs on video, then
    (``still``) its still path; any other model once."""
    return [
        (name, guided)
        for name, net in nets.items()
        for guided in ((True, False) if net.config.recurrent and still else (True,))
    ]


def label(name: str, guided: bool) -> str:
    return Path(name).stem + ("" if guided else " still")


def photo_paths(roots: list[Path]) -> list[Path]:
    """Every image under each folder of ``roots``, and each file as it is."""
    return [p for root in roots for p in (find_images(root) if root.is_dir() else [root])]


def known_camera_clip(
    photo_path: Path, frame: tuple[int, int], args: argparse.Namespace, index: int
) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``index``-th photo as a clip (``args``: frames, speed, seed): the camera's maps,
    the clean frames, and their exact backward flow with where it lands inside the frame."""
    canvas = canvas_for(load_image(photo_path), frame)
    maps = placed(camera_path(args.frames, args.speed, args.seed + index), frame, canvas.shape[-2:])
    clean = render(canvas, maps, frame)
    return maps, clean, *exact_flows(maps, frame)


def with_noise(clean: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """Each frame with its own Gaussian sensor noise (``noise``: std per channel)."""
    generator = torch.Generator().manual_seed(seed)
    return (clean + noise * torch.randn(clean.shape, generator=generator)).clamp(0, 1)


@torch.no_grad()
def measure(
    args: argparse.Namespace, nets: dict[str, TransformerNet], judge: Distances
) -> list[dict]:
    """Every photo made into a clip per noise level: the rows of the table."""
    frame = (args.height, args.width)
    shown = runs(nets, args.still)
    rows = []
    for index, photo_path in enumerate(photo_paths(args.photos)):
        maps, clean, flow, inside = known_camera_clip(photo_path, frame, args, index)
        from_first = relative_to_first(maps)
        glued = {
            name: render(net(clean[:1], args.style)[0].float(), from_first, frame)
            for name, net in nets.items()
        }
        # The glued outputs do not depend on the noise: their exact-flow error and their
        # style are measured once per photo.
        exact = {
            name: float(masked_warp_error(out[1:], out[:-1], flow, inside).mean())
            for name, out in glued.items()
        }
        glued_style = {
            name: mean_style(judge, out, clean, args.judge_every) for name, out in glued.items()
        }
        for noise in args.noise:
            frames = with_noise(clean, noise, args.seed + index)
            outputs = [per_frame(nets[name], frames, args.style, guided) for name, guided in shown]
            # One flow for every output of this clip: the floor, the glued ones, the networks'.
            floor, *errors = (
                e.mean for e in warping_errors(frames, [frames, *glued.values(), *outputs])
            )
            glued_err = dict(zip(glued, errors[: len(glued)], strict=True))
            for (name, guided), output, error in zip(
                shown, outputs, errors[len(glued) :], strict=True
            ):
                row = {
                    "photo": photo_path.name,
                    "noise": noise,
                    "model": label(name, guided),
                    "floor": floor,
                    "glued_x": glued_err[name] / floor,
                    "glued_exact_flow_x": exact[name] / floor,
                    "per_frame_x": error / floor,
                    "glued_style": glued_style[name],
                    "per_frame_style": mean_style(judge, output, frames, args.judge_every),
                }
                rows.append(row)
                print_row(row)
    return rows


def clip_spec(spec: str) -> tuple[str, int]:
    """``PATH`` or ``PATH:LONG_SIDE`` → the path and the long side (512 by default)."""
    path, _, side = spec.rpartition(":")
    return (path, int(side)) if side.isdigit() else (spec, 512)


@torch.no_grad()
def measure_clips(
    args: argparse.Namespace, nets: dict[str, TransformerNet], judge: Distances
) -> list[dict]:
    """The same models frame by frame on real clips (``PATH`` or ``PATH:LONG_SIDE``, 512 by
    default), where no glued output exists: the per-frame columns only."""
    rows = []
    for spec in args.clip:
        path, side = clip_spec(spec)
        frames = read_frames(path, side, args.frames)
        shown = runs(nets, args.still)
        outputs = [per_frame(nets[name], frames, args.style, guided) for name, guided in shown]
        floor, *errors = (e.mean for e in warping_errors(frames, [frames, *outputs]))
        for (name, guided), output, error in zip(shown, outputs, errors, strict=True):
            row = {
                "clip": Path(path).stem,
                "long_side": side,
                "model": label(name, guided),
                "floor": floor,
                "per_frame_x": error / floor,
                "per_frame_style": mean_style(judge, output, frames, args.judge_every),
            }
            rows.append(row)
            print(
                f"{row['clip'][:13]:<14}{row['model'][:21]:>22}{floor:>10.2e}"
                f"{row['per_frame_x']:>9.2f}{row['per_frame_style']:>10.3f}",
                flush=True,
            )
    return rows


HEADER = (
    f"{'photo':<14}{'noise':>7}{'model':>22}{'floor':>10}{'glued x':>9}{'exact x':>9}"
    f"{'frame x':>9}{'glued st':>10}{'frame st':>10}"
)


def print_row(row: dict) -> None:
    print(
        f"{row['photo'][:13]:<14}{row['noise']:>7.3f}{row['model'][:21]:>22}{row['floor']:>10.2e}"
        f"{row['glued_x']:>9.2f}{row['glued_exact_flow_x']:>9.2f}{row['per_frame_x']:>9.2f}"
        f"{row['glued_style']:>10.3f}{row['per_frame_style']:>10.3f}",
        flush=True,
    )


def summary(rows: list[dict]) -> list[dict]:
    """Per model and noise: the geometric mean of each multiple, the mean of each distance."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["noise"]), []).append(row)
    out = []
    for (model, noise), group in groups.items():
        geo = {
            k: math.exp(sum(math.log(r[k]) for r in group) / len(group))
            for k in ("glued_x", "glued_exact_flow_x", "per_frame_x")
        }
        mean = {
            k: sum(r[k] for r in group) / len(group)
            for k in ("floor", "glued_style", "per_frame_style")
        }
        out.append({"photo": f"{len(group)} photos", "noise": noise, "model": model, **mean, **geo})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="repeat for several")
    parser.add_argument("--photos", type=Path, action="append", default=[])
    parser.add_argument(
        "--clip", action="append", default=[], help="a real clip, PATH or PATH:LONG_SIDE"
    )
    parser.add_argument("--style-dir", type=Path, default=Path("../shared/data/styles"))
    parser.add_argument("--style", type=int, default=5)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--speed", type=float, default=5.5, help="mean pan, px a frame")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.011])
    parser.add_argument("--judge-every", type=int, default=3, help="judge every k-th frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--still", action="store_true", help="also a recurrent model's still path, unguided"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.photos and not args.clip:
        parser.error("give --photos or --clip (or both)")
    loaded = {str(path): load_model(path) for path in args.model}
    nets = {name: net.eval() for name, (net, _) in loaded.items()}
    info = next(iter(loaded.values()))[1]
    judge = style_judge(style_sets(info, args.style_dir, Path())[args.style])
    record: dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    record["photos"] = [str(p) for p in args.photos]
    if args.photos:
        print(HEADER)
        record["rows"] = measure(args, nets, judge)
        record["summary"] = summary(record["rows"])
        print("geometric means over the photos (distances: arithmetic)")
        print(HEADER)
        for row in record["summary"]:
            print_row(row)
    if args.clip:
        print(f"{'clip':<14}{'model':>22}{'floor':>10}{'frame x':>9}{'frame st':>10}")
        record["clips"] = measure_clips(args, nets, judge)
    if args.json:
        atomic_write(args.json, lambda p: p.write_text(json.dumps(record, indent=2)))


if __name__ == "__main__":
    main()
