"""``fastnst stylize``: stylize images, folders, videos or a webcam with an exported model.

Images travel as NumPy arrays whichever backend runs the model, so on the onnxruntime
backend this command never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from fastnst.errors import Terminated, UserError, check_finite
from fastnst.files import atomic_write
from fastnst.images import DEFAULT_MAX_PIXELS, animation_frames, find_images, open_rgb
from fastnst.infer.temporal_blend import (
    BLEND_KINDS,
    DEFAULT_BLEND,
    DEFAULT_FLOW_SIZE,
    DEFAULT_GLUE,
    DEFAULT_SMOOTH,
    InputSmooth,
    LastFlow,
    TemporalBlend,
    VideoStream,
    default_blend,
    default_kind,
)
from fastnst.modelfile import read_model_file
from fastnst.models import bundled_models
from fastnst.runtime.arrays import MAX_STRENGTH, array_to_pil, pil_to_array, resize_long_side
from fastnst.runtime.backends import BACKENDS, load_stylizer
from fastnst.runtime.lattice import ShiftAveraged

# Smallest tile: below this the halo every tile carries makes tiling many times slower than
# the whole image (a 1-px tile ran 9,801 tiles x 17 passes on a 100x100 photo).
MIN_TILE = 64
SHEET_TILE = 256


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnst stylize", description=__doc__)
    parser.add_argument(
        "--model", help="a bundled model's name (see --list-models) or a .safetensors file"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="an image or a folder of images")
    source.add_argument("--video", help="a video file")
    source.add_argument("--webcam", nargs="?", const="0", help="camera index (default 0) or source")
    source.add_argument(
        "--info", action="store_true", help="print the model's styles and settings, then exit"
    )
    source.add_argument(
        "--list-models", action="store_true", help="list the bundled models and their styles"
    )
    parser.add_argument("--output", help="image, folder or video to write (webcam: record to it)")
    parser.add_argument("--style", default="0", help="index, name, blend a:0.7,b:0.3, or all")
    parser.add_argument("--sheet", action="store_true", help="with --style all: one contact sheet")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="auto: torch on a CUDA GPU when torch is installed, else onnxruntime",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="auto", help="auto (fp16 on GPU), fp32, fp16, bf16")
    parser.add_argument(
        "--max-size", type=int, default=0, help="images: shrink the long side to N px"
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_PIXELS / 1e6,
        help="refuse larger images (default %(default)g: guards against decompression bombs)",
    )
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help=f"0 = photo, 1 = full style, up to {MAX_STRENGTH:g} = bolder strokes (their "
        "contrast around a 4-px blur times the strength)",
    )
    parser.add_argument("--preserve-color", action="store_true", help="keep the photo's colours")
    parser.add_argument(
        "--shift-average",
        action="store_true",
        help="average 4 runs on the photo moved against the network's 4-px grid: removes the "
        "fine hatching some styles leave (4x the time)",
    )
    regions = parser.add_mutually_exclusive_group()
    regions.add_argument(
        "--mask", help="image: style only where it is white (black keeps the photo)"
    )
    regions.add_argument(
        "--regions",
        help="a label image (each colour but black is a region, in RGB order) or a .npy weight "
        "map [K, H, W]; --style lists one style per region: a,b,...",
    )
    parser.add_argument(
        "--feather", type=float, default=4.0, help="softness of mask/region edges in px"
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=-1,
        help="tile size for large images; 0 never tiles, -1 (default) when needed",
    )
    parser.add_argument("--batch", type=int, default=0, help="video frames per batch (0: auto)")
    parser.add_argument(
        "--temporal-blend",
        type=float,
        default=None,
        metavar="A",
        help="video, webcam: blend each frame with the previous output moved along the "
        f"optical flow, weight A in [0, 1) where the flow is trusted (needs OpenCV); default "
        f"{DEFAULT_BLEND} ({DEFAULT_GLUE} for the glue), 0 for none",
    )
    parser.add_argument(
        "--blend-kind",
        choices=BLEND_KINDS,
        default=None,
        help="the temporal blend's kind: glue (a still model's default: the previous output "
        "kept whole where it still fits, repainted where not; A: how much the photo under a "
        "kept stroke may change before it is repainted), detail (a recurrent model's default: "
        "the blend keeps the fresh frame's stroke contrast), flow (the strokes averaged: "
        "calmer, less style), plain (averaged without the flow: ghosts on motion; for "
        "comparison)",
    )
    parser.add_argument(
        "--input-smooth",
        type=float,
        default=None,
        metavar="B",
        help="video, webcam: average each frame the network sees with the previous one moved "
        "along the optical flow, share B in [0, 1) where the flow is trusted: steadier strokes "
        f"without averaging them (needs OpenCV); default {DEFAULT_SMOOTH}, 0 with "
        "--mask/--regions",
    )
    parser.add_argument(
        "--flow-size",
        type=int,
        default=DEFAULT_FLOW_SIZE,
        help=f"long side the flow is computed at (default {DEFAULT_FLOW_SIZE})",
    )
    parser.add_argument("--crf", type=int, default=18, help="x264 quality (lower is better)")
    parser.add_argument("--preset", default="veryfast", help="x264 speed preset")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads (0: the CPUs this process may use)"
    )
    parser.add_argument(
        "--max-frames", type=int, default=0, help="video, webcam: stop after N frames"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if not args.model and not args.list_models:
        raise UserError("--model is required (a bundled name from --list-models, or a file)")
    if not 0.0 <= args.strength <= MAX_STRENGTH:
        raise UserError(f"--strength must be between 0 and {MAX_STRENGTH:g}, got {args.strength}")
    if args.max_size < 0:
        raise UserError("--max-size must be positive")
    if args.tile < -1 or 0 < args.tile < MIN_TILE:
        raise UserError(f"--tile must be 0 (never), -1 (when needed) or at least {MIN_TILE} px")
    if args.batch < 0 or args.max_frames < 0 or args.max_megapixels <= 0:
        raise UserError("--batch, --max-frames and --max-megapixels cannot be negative")
    if args.video and args.max_size:
        raise UserError("--max-size applies to images; a video keeps its own size")
    if (args.mask or args.regions) and (args.style == "all" or args.sheet or args.webcam):
        raise UserError("--mask/--regions take one style (or one per region), not all or webcams")
    if args.feather < 0:
        raise UserError("--feather cannot be negative")
    if args.temporal_blend is not None and not 0.0 <= args.temporal_blend < 1.0:
        raise UserError(f"--temporal-blend must be in [0, 1), got {args.temporal_blend}")
    if args.temporal_blend and args.input:
        raise UserError("--temporal-blend applies to video and webcam, not to images")
    if args.input_smooth is not None and not 0.0 <= args.input_smooth < 1.0:
        raise UserError(f"--input-smooth must be in [0, 1), got {args.input_smooth}")
    if args.input_smooth and args.input:
        raise UserError("--input-smooth applies to video and webcam, not to images")
    if args.blend_kind and (args.input or args.temporal_blend == 0):
        raise UserError("--blend-kind changes the temporal blend: give a video and its blend")
    if args.flow_size < 16:
        raise UserError("--flow-size must be at least 16 px")
    source = args.input or args.video
    if source and args.output and Path(args.output).resolve() == Path(source).resolve():
        raise UserError("--output is the input itself; write the result somewhere else")
    if args.sheet and args.style != "all":
        raise UserError("--sheet needs --style all")
    if (args.input or args.video) and not args.output:
        raise UserError("--output is required")


def describe_model(path: str) -> str:
    """What a user needs before stylizing: the style names with their indices, the network
    size (speed) and how it was trained."""
    info, state = read_model_file(path)
    net = info.net
    parameters = sum(array.size for array in state.values())
    recurrent = bool(net.get("recurrent"))
    kind = default_kind(recurrent)
    lines = [
        f"model: {path} (format version {info.format_version})",
        "styles: " + ", ".join(f"{i}={name}" for i, name in enumerate(info.style_names)),
        f"network: width {net.get('width', 1.0)}, {net.get('num_residual')} residual blocks, "
        f"{parameters:,} parameters"
        + (", recurrent" if recurrent else ", still")
        + f" (video frames seen smoothed, --input-smooth {DEFAULT_SMOOTH}, and blended, "
        + f"--blend-kind {kind} --temporal-blend {default_blend(kind)}, by default"
        + ("; each guided by the previous output)" if recurrent else ")"),
    ]
    if info.steps:
        lines.append(
            f"trained: {info.steps} steps at {info.image_size} px, "
            f"{info.vgg_weights or 'unknown'} VGG-19, style weight "
            f"{info.loss.get('style_weight', '?')}"
            + (
                f", relaxed style loss ({info.loss['relax_warps']} warps)"
                if info.loss.get("relax_warps")
                else ""
            )
            + f", created {info.created or 'unknown'}"
        )
    sources = info.extra.get("style_sources") or {}
    for name in info.style_names:
        if name in sources:
            lines.append(f"style {name}: {sources[name]}")
    for key, value in (info.extra.get("provenance") or {}).items():
        lines.append(f"provenance {key}: {value}")
    return "\n".join(lines)


def list_models() -> str:
    """The bundled models, one line each with their styles: what ``--model NAME`` takes."""
    lines = []
    for name, path in bundled_models().items():
        info, _ = read_model_file(path)
        lines.append(f"{name}: {len(info.style_names)} styles: {', '.join(info.style_names)}")
    return "\n".join(lines) or "no bundled models in this installation"


def _save(image: Image.Image, path: Path) -> None:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"unknown image format for output {path}")
    atomic_write(path, lambda tmp: image.save(tmp, format=fmt))


def _contact_sheet(photo: Image.Image, results: list[tuple[str, Image.Image]]) -> Image.Image:
    """Original first, then each style, labelled, in rows of up to four."""
    tiles = [("original", photo), *results]
    thumbs = []
    for label, image in tiles:
        thumb = image.copy()
        thumb.thumbnail((SHEET_TILE, SHEET_TILE))
        thumbs.append((label, thumb))
    columns = min(4, len(thumbs))
    rows = -(-len(thumbs) // columns)
    cell_w, cell_h = SHEET_TILE + 8, SHEET_TILE + 24
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (label, thumb) in enumerate(thumbs):
        x, y = (index % columns) * cell_w + 4, (index // columns) * cell_h + 4
        draw.text((x, y), label, fill="black")
        sheet.paste(thumb, (x, y + 16))
    return sheet


def stylize_images(args: argparse.Namespace, stylizer: Any) -> int:
    source, target = Path(args.input), Path(args.output)
    styles = stylizer.styles(args.style)
    if source.is_dir():
        images = find_images(source)
        if not images:
            raise UserError(f"no images found in {source}")
        jobs = [(path, target / path.relative_to(source)) for path in images]
    else:
        if not source.exists():
            raise UserError(f"no such file or folder: {source}")
        out = target / source.name if target.is_dir() else target
        jobs = [(source, out)]
    failures = 0
    for path, out in jobs:
        try:
            _stylize_one(path, out, styles, args, stylizer)
        except UserError as exc:
            if len(jobs) == 1:
                raise
            failures += 1
            print(f"skipped: {exc}", file=sys.stderr)
    if failures:
        raise UserError(f"{failures} of {len(jobs)} images could not be read (see above)")
    return 0


def _stylize_one(
    path: Path, out: Path, styles: list, args: argparse.Namespace, stylizer: Any
) -> None:
    if Image.registered_extensions().get(out.suffix.lower()) is None:
        raise UserError(f"unknown image format for output {out}")
    photo = pil_to_array(open_rgb(path, int(args.max_megapixels * 1e6)))
    frames = animation_frames(path)
    if frames > 1:
        print(
            f"warning: {path} is animated ({frames} frames): only its first frame is "
            "stylized (--video stylizes every frame)",
            file=sys.stderr,
        )
    if args.max_size and max(photo.shape[-2:]) > args.max_size:
        photo = resize_long_side(photo, args.max_size)
    batch = photo[None]
    tile = stylizer.auto_tile(batch.shape) if args.tile < 0 else args.tile
    if args.mask or args.regions:
        results = [("regions", array_to_pil(_region_stylizer(args, stylizer)(batch)))]
    else:
        keep = args.preserve_color
        results = [
            (label, array_to_pil(stylizer(batch, weights, args.strength, keep, tile)))
            for label, weights in styles
        ]
    if args.sheet:
        _save(_contact_sheet(array_to_pil(photo), results), out)
    elif len(results) == 1:
        _save(results[0][1], out)
    else:
        for label, image in results:
            _save(image, out.with_name(f"{out.stem}_{label}{out.suffix}"))


def _region_stylizer(args: argparse.Namespace, stylizer: Any) -> Callable:
    """``--mask`` (with one style or blend) or ``--regions`` (one style per region)."""
    from fastnst.infer.regions import RegionStylizer

    if args.regions:
        rows = [stylizer.styles(name)[0][1] for name in args.style.split(",")]
    else:
        rows = [stylizer.styles(args.style)[0][1]]
    return RegionStylizer(
        stylizer,
        Path(args.regions or args.mask),
        np.stack(rows),
        regions=bool(args.regions),
        feather=args.feather,
        strength=args.strength,
        keep_color=args.preserve_color,
    )


def _frame_device(args: argparse.Namespace, stylizer: Any) -> Any:
    """Where video frames are made: the torch device (tensors straight from the decoder),
    or None for NumPy frames (the onnx backend, and the region maps, which are NumPy)."""
    if args.mask or args.regions:
        return None
    return getattr(stylizer, "tensor_device", None)


def _frame_fn(args: argparse.Namespace, stylizer: Any) -> Callable[[Any], Any]:
    """The video/webcam frames' function: stylize and blend (``args.blend_kind`` is set by
    :func:`main` when not given: :func:`default_kind`)."""
    if args.mask or args.regions:
        stylize = _region_stylizer(args, stylizer)
        flows = LastFlow(args.flow_size, keep=max(8, args.batch))  # a batch's pairs, once
        smooth = InputSmooth(args.input_smooth, args.flow_size, flows)
        blend = TemporalBlend(args.temporal_blend, args.flow_size, args.blend_kind, flows)
        return lambda frames: blend(frames, stylize(smooth(frames)))
    styles = stylizer.styles(args.style)
    if len(styles) != 1:
        raise UserError("video and webcam take one style or one blend, not 'all'")
    weights = styles[0][1]
    # A recurrent model's frames are each guided by the previous output (docs/VIDEO.md).
    stream = VideoStream(
        stylizer.recurrent,
        args.temporal_blend,
        args.flow_size,
        args.blend_kind,
        args.input_smooth,
    )
    return lambda frames: stream(stylizer, frames, weights, args.strength, args.preserve_color)


def stylize_video_file(args: argparse.Namespace, stylizer: Any) -> int:
    from fastnst.infer.video import stylize_video

    batch = args.batch or (8 if stylizer.on_gpu else 2)
    count = stylize_video(
        Path(args.video),
        Path(args.output),
        _frame_fn(args, stylizer),
        _frame_device(args, stylizer),
        batch,
        crf=args.crf,
        preset=args.preset,
        show_progress=not args.quiet,
        max_frames=args.max_frames,
    )
    print(f"wrote {count} frames to {args.output}")
    return 0


def webcam(args: argparse.Namespace, stylizer: Any) -> int:
    from fastnst.infer.webcam import run_webcam

    record = Path(args.output) if args.output else None
    device = _frame_device(args, stylizer)
    run_webcam(args.webcam, _frame_fn(args, stylizer), device, record, args.max_frames)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_finite(args)
        _check_args(args)
        if args.list_models:
            print(list_models())
            return 0
        if args.info:
            print(describe_model(args.model))
            return 0
        if args.threads < 0:
            raise UserError("--threads cannot be negative")
        stylizer = load_stylizer(
            args.model, args.backend, args.device, args.precision, args.threads
        )
        if args.shift_average:
            stylizer = ShiftAveraged(stylizer)
        regions = bool(args.mask or args.regions)  # they show the photo itself
        args.blend_kind = args.blend_kind or default_kind(stylizer.recurrent, regions)
        if args.temporal_blend is None:
            args.temporal_blend = default_blend(args.blend_kind)
        if args.input_smooth is None:  # smoothed only when asked
            args.input_smooth = 0.0 if regions else DEFAULT_SMOOTH
        if args.video:
            return stylize_video_file(args, stylizer)
        if args.webcam is not None:
            return webcam(args, stylizer)
        return stylize_images(args, stylizer)
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        if not out_of_gpu_memory(exc):
            raise
        print(
            "error: out of GPU memory; try --tile 512, a smaller --batch or --max-size",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            raise  # the dispatcher reports it and exits 143
        print("error: interrupted", file=sys.stderr)
        return 130


def out_of_gpu_memory(exc: BaseException) -> bool:
    """torch's CUDA out-of-memory error, recognised without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)
