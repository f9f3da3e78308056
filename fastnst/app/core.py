"""What the web app does, without the web page: the models on offer, stylizing an uploaded
photo or clip within the app's limits, the style gallery, and one folder for its files.

Gradio-free, so every handler is tested in-process; :mod:`fastnst.app.handlers` and
:mod:`fastnst.app.ui` put them on a page.
Models run through the same backend choice as ``fastnst stylize`` (onnxruntime on a CPU, so
stylizing here imports no torch) and images travel as NumPy arrays.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from fastnst.errors import UserError
from fastnst.images import open_rgb
from fastnst.modelfile import ModelFileError, read_model_file
from fastnst.models import SUFFIX, bundled_models
from fastnst.runtime.arrays import MAX_STRENGTH, array_to_pil, pil_to_array, resize_long_side
from fastnst.runtime.backends import load_stylizer
from fastnst.runtime.onnx_backend import check_weights

# Chelsea the cat, from scikit-image's sample data (CC0, photographer Stefan van der Walt):
# each style's gallery tile when the model carries no image of the style.
SAMPLE_PHOTO = Path(__file__).with_name("sample.jpg")
THUMB_SIZE = 160
LOADED_MODELS = 4  # networks kept in memory; the least recently used is dropped first
VIDEO_SIZES = ((426, 240), (640, 360), (854, 480), (1280, 720), (1920, 1080), (3840, 2160))


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; shown on the page, enforced by the handlers."""

    upload_mb: float = 100.0
    image_megapixels: float = 16.0
    video_seconds: float = 10.0
    video_megapixels: float = 0.25

    def images(self) -> str:
        return (
            f"Photos up to {self.image_megapixels:g} megapixels; files up to {self.upload_mb:g} MB."
        )

    def videos(self) -> str:
        fits = [f"{w}×{h}" for w, h in VIDEO_SIZES if w * h <= self.video_megapixels * 1e6]
        example = f" ({fits[-1]} fits)" if fits else ""
        return (
            f"Clips up to {self.video_seconds:g} s and {self.video_megapixels:g} megapixels a "
            f"frame{example}; files up to {self.upload_mb:g} MB."
        )


class Workspace:
    """The app's one temporary folder: uploaded and newly made models, results, training
    runs. Job folders older than ``max_age_s`` go as new ones are made; all of it at close."""

    def __init__(self, parent: str | Path | None = None, max_age_s: float = 3600.0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fastnst-app-", dir=parent))
        self.models = self.root / "models"
        self.jobs = self.root / "jobs"
        self.models.mkdir()
        self.jobs.mkdir()
        self.max_age_s = max_age_s

    def job_dir(self, kind: str) -> Path:
        self.sweep()
        return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=self.jobs))

    def sweep(self) -> None:
        """Remove job folders not touched for ``max_age_s`` (their results were served)."""
        cutoff = time.time() - self.max_age_s
        for job in self.jobs.iterdir():
            if job.stat().st_mtime < cutoff:
                shutil.rmtree(job, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def safe_name(text: str) -> str:
    """A file-name-safe form of ``text`` (letters, digits, ``-_.``), for models and results."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    return cleaned[:60] or "model"


def shown(error: Exception, path: str | Path, name: str) -> UserError:
    """``error`` with the server's temporary ``path`` replaced by the name the user uploaded."""
    return UserError(str(error).replace(str(path), name))


class ModelShelf:
    """The models a user can pick: the bundled ones, then those uploaded or made in the app.
    Each is loaded once on the app's backend and device (a few kept, least recently used
    dropped); ``backend`` is ``fastnst stylize --backend``'s choice."""

    def __init__(self, workspace: Workspace, device: str = "auto", backend: str = "auto") -> None:
        self.workspace = workspace
        self.device = device
        self.backend = backend
        self.paths: dict[str, Path] = dict(bundled_models())
        self._loaded: OrderedDict[Path, Any] = OrderedDict()
        self._galleries: dict[Path, list[tuple[Image.Image, str]]] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self.paths)

    def path(self, name: str) -> Path:
        if name not in self.paths:
            raise UserError(f"unknown model {name!r}; this app has {', '.join(self.paths)}")
        return self.paths[name]

    def add(self, source: str | Path, name: str = "") -> str:
        """Put a model file on the shelf under a new name (``name`` or the file's, made unique)
        after loading it as ``fastnst stylize`` would: a damaged or foreign file is refused
        with the loader's reason. Returns the name."""
        source = Path(source)
        label = source.name
        if not source.is_file():
            raise UserError(f"model not found: {label} (bundled models: {', '.join(self.paths)})")
        if not source.name.endswith(SUFFIX):
            raise UserError(f"{label} is not a {SUFFIX} model file")
        try:
            check_weights(source, *read_model_file(source))
        except ModelFileError as exc:
            raise shown(exc, source, label) from None
        base = safe_name(name or source.name[: -len(SUFFIX)])
        unique, count = base, 1
        while unique in self.paths:
            count += 1
            unique = f"{base}-{count}"
        target = self.workspace.models / f"{unique}{SUFFIX}"
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        self.paths[unique] = target
        return unique

    def style_names(self, name: str) -> list[str]:
        return list(read_model_file(self.path(name))[0].style_names)

    def stylizer(self, name: str) -> Any:
        """The model as :func:`~fastnst.runtime.backends.load_stylizer` makes it: NumPy
        images in and out, on onnxruntime or torch."""
        path = self.path(name)
        with self._lock:
            if path not in self._loaded:
                # No spinning: a live stream shares the CPU with the browser (locally) and
                # with the server's own decoding; spinning workers cut its rate from 15.6 to
                # 12 frames/s (docs/BENCHMARKS.md, "Live webcam").
                self._loaded[path] = load_stylizer(path, self.backend, self.device, spin=False)
                while len(self._loaded) > LOADED_MODELS:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(path)
            return self._loaded[path]

    def gallery(self, name: str) -> list[tuple[Image.Image, str]]:
        """One tile per style, in the model's order: the style's own image when the model
        carries one (``extra["style_thumbnails"]``), else the sample photo in that style."""
        path = self.path(name)
        if path not in self._galleries:
            stylizer = self.stylizer(name)
            carried = read_model_file(path)[0].extra.get("style_thumbnails") or {}
            sample = pil_to_array(square(open_rgb(SAMPLE_PHOTO)))[None]
            eye = np.eye(len(stylizer.style_names), dtype=np.float32)
            tiles = []
            for index, style in enumerate(stylizer.style_names):
                if style in carried:
                    tile = image_from_uri(carried[style])
                else:
                    tile = array_to_pil(stylizer(sample, eye[index]))
                tiles.append((tile, style))
            self._galleries[path] = tiles
        return self._galleries[path]


def square(image: Image.Image) -> Image.Image:
    """The centre square of ``image`` at :data:`THUMB_SIZE` px: a gallery tile's shape."""
    return ImageOps.fit(image, (THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR)


def thumbnail_uri(image: Image.Image) -> str:
    """A small centre square of ``image`` as a JPEG data URI (a style's gallery tile)."""
    buffer = io.BytesIO()
    square(image.convert("RGB")).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_from_uri(uri: str) -> Image.Image:
    _, _, data = uri.partition("base64,")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def blend_spec(names: list[str], weights: list[float]) -> str:
    """Blend slider values → a style spec ``a:0.6,b:0.4`` (weights are normalised later)."""
    weights = [
        number(w or 0, f"the weight of {n}", 0, 1e6) for n, w in zip(names, weights, strict=False)
    ]
    parts = [f"{n}:{w:g}" for n, w in zip(names, weights, strict=False) if w > 0]
    if not parts:
        raise UserError("move at least one blend slider above 0")
    return ",".join(parts)


def one_style(stylizer: Any, spec: str) -> np.ndarray:
    """The weights of one style or blend; ``all`` and empty choices are refused."""
    if not spec or spec.strip() == "all":
        raise UserError("choose a style")
    return stylizer.styles(spec)[0][1]


def number(value: object, field: str, low: float, high: float) -> float:
    """A request's numeric field as a float in [low, high], or one line naming the field:
    the API passes on whatever a client sent (text, null, NaN)."""
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"{field} must be a number, got {value!r}") from None
    if not low <= result <= high:  # NaN fails too
        raise UserError(f"{field} must be between {low:g} and {high:g}, got {value!r}")
    return result


def check_strength(strength: float) -> float:
    return number(strength, "strength", 0.0, MAX_STRENGTH)


# The video and webcam tabs' steadiness is `stylize --input-smooth`: the share of the previous
# frame the model sees where the flow is trusted; past 0.9 the frames would lag the scene for
# nothing (the flicker it removes saturates by 0.7-0.85; docs/VIDEO.md).
MAX_SMOOTH = 0.9


def check_smooth(smooth: float) -> float:
    return number(smooth, "steadiness", 0.0, MAX_SMOOTH)


def stylize_photo(
    stylizer: Any,
    photo_path: str | Path,
    spec: str,
    strength: float = 1.0,
    keep_color: bool = False,
    max_size: int = 0,
    limits: Limits = Limits(),
    name: str = "",
) -> tuple[Image.Image, Image.Image]:
    """The photo (shrunk to ``max_size`` on its long side if set) and its stylization.
    ``name`` is how the user knows the file, for messages."""
    strength = check_strength(strength)
    weights = one_style(stylizer, spec)
    try:
        image = open_rgb(photo_path, int(limits.image_megapixels * 1e6))
    except UserError as exc:
        raise shown(exc, photo_path, name or Path(photo_path).name) from None
    photo = pil_to_array(image)
    if max_size and max_size > 0 and max(photo.shape[-2:]) > max_size:
        photo = resize_long_side(photo, int(max_size))
    batch = photo[None]
    out = stylizer(batch, weights, strength, bool(keep_color), stylizer.auto_tile(batch.shape))
    return array_to_pil(photo), array_to_pil(out)


@dataclass(frozen=True)
class Clip:
    """What the app needs to know of an uploaded video before stylizing it."""

    frames: int
    seconds: float
    width: int
    height: int


def probe_clip(path: str | Path, limits: Limits, name: str = "") -> Clip:
    """Open the video, read its length and size, and refuse it if over the app's limits."""
    from fastnst.infer.video import open_video

    label = name or Path(path).name
    try:
        container = open_video(Path(path))
    except UserError as exc:
        raise shown(exc, path, label) from None
    with container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = (container.duration or 0) / 1e6
        rate = float(stream.average_rate or stream.guessed_rate or 30)
        frames = stream.frames or round(seconds * rate)
        width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise UserError(f"{label}: cannot read the size of its video stream")
    if seconds > limits.video_seconds:
        raise UserError(
            f"{label} is {seconds:.1f} s long; this app takes clips up to "
            f"{limits.video_seconds:g} s (fastnst app --max-video-seconds raises it)"
        )
    if width * height > limits.video_megapixels * 1e6:
        raise UserError(
            f"{label} is {width}×{height} ({width * height / 1e6:.2f} megapixels a frame); this "
            f"app takes up to {limits.video_megapixels:g} (fastnst app --max-video-megapixels "
            "raises it)"
        )
    return Clip(frames, seconds, width, height)


def stylize_clip(
    stylizer: Any,
    source: str | Path,
    target: Path,
    spec: str,
    strength: float = 1.0,
    keep_color: bool = False,
    limits: Limits = Limits(),
    on_frames: Callable[[int, int], None] | None = None,
    name: str = "",
    smooth: float | None = None,
) -> int:
    """Stylize a clip into ``target`` (sound kept) as ``fastnst stylize --video`` does with
    its defaults (the frames smoothed as the model sees them, ``smooth`` = its
    ``--input-smooth``, None: the default; a recurrent model's guided by its previous output
    and blended); ``on_frames(done, total)`` after each batch. Returns the number of frames
    written."""
    from fastnst.infer.temporal_blend import VideoStream
    from fastnst.infer.video import stylize_video

    strength = check_strength(strength)
    if smooth is not None:
        smooth = check_smooth(smooth)
    weights = one_style(stylizer, spec)
    clip = probe_clip(source, limits, name)
    stream = VideoStream(stylizer.recurrent, smooth=smooth)
    done = 0

    def frames_fn(frames: Any) -> Any:
        nonlocal done
        out = stream(stylizer, frames, weights, strength, bool(keep_color))
        done += frames.shape[0]
        if on_frames is not None:
            on_frames(done, max(done, clip.frames))
        return out

    # Tensors straight from the decoder on torch's GPU, NumPy frames on onnxruntime.
    device = getattr(stylizer, "tensor_device", None)
    batch = 8 if stylizer.on_gpu else 2
    try:
        return stylize_video(Path(source), target, frames_fn, device, batch, show_progress=False)
    except UserError as exc:
        raise shown(exc, source, name or Path(source).name) from None
