"""Frame pairs for the temporal stage: ``(previous, current, flow, mask)``.

``flow`` is the backward flow ``current -> previous`` (``[2, S, S]``, pixels) and ``mask``
``[1, S, S]`` is 1 where ``warp(previous, flow)`` must equal ``current``.

* :class:`SyntheticPairs` makes pairs from still photos with a random camera motion (affine
  plus perspective) and, optionally, a pasted object moving on its own. The flow and the
  mask are exact, so no video and no flow estimator is needed.
* :class:`VideoClipPairs` takes consecutive frames of real videos; their flow is estimated
  once (OpenCV) and cached on disk beside a key of the video and the settings.
* :class:`VideoClipChains` takes runs of more than two consecutive frames, ``(frames, flows,
  masks)``: a recurrent network run along them sees its own carried output warped again and
  again, as at inference.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from fastnst.data.content import ContentItem
from fastnst.errors import UserError
from fastnst.files import atomic_write
from fastnst.images import (
    ImageReadError,
    open_rgb,
    pil_to_tensor,
    resize_long_side,
    resize_short_side,
)
from fastnst.video.flow import flow_pair
from fastnst.video.warp import pixel_grid, sample_at

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})
Pair = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Motion:
    """Ranges of the random camera motion between two frames (frame size ``S``)."""

    shift: float = 0.04  # translation, fraction of S
    rotate: float = 3.0  # degrees
    zoom: float = 0.04  # relative scale change
    perspective: float = 0.02  # corner displacement from the projective part, fraction of S
    object_prob: float = 0.5  # chance of a pasted object moving on its own
    object_shift: float = 0.06  # its own motion, fraction of S


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_motion(
    size: int, motion: Motion, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A 3×3 homography about the frame centre: current-frame pixel → previous-frame pixel."""
    c = (size - 1) / 2
    angle = math.radians(_uniform(-motion.rotate, motion.rotate, generator))
    scale = 1 + _uniform(-motion.zoom, motion.zoom, generator)
    tx, ty = (_uniform(-motion.shift, motion.shift, generator) * size for _ in range(2))
    px, py = (_uniform(-motion.perspective, motion.perspective, generator) / size for _ in range(2))
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    to_centre = torch.tensor([[1, 0, -c], [0, 1, -c], [0, 0, 1]], dtype=torch.float64)
    back = torch.tensor([[1, 0, c + tx], [0, 1, c + ty], [0, 0, 1]], dtype=torch.float64)
    core = torch.tensor([[cos, -sin, 0], [sin, cos, 0], [px, py, 1]], dtype=torch.float64)
    return back @ core @ to_centre


def apply_homography(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` points (x, y) through a 3×3 homography."""
    flat = points.reshape(-1, 2).double()
    mapped = torch.cat([flat, torch.ones_like(flat[:, :1])], 1) @ matrix.T
    return (mapped[:, :2] / mapped[:, 2:]).reshape(points.shape).float()


def synthetic_pair(
    source: torch.Tensor,
    size: int,
    motion: Motion = Motion(),
    generator: torch.Generator | None = None,
) -> Pair:
    """Two ``size``² views of ``source`` ``[3, H, W]`` (each side ≥ 1.2·size) related by a
    random homography, with the exact backward flow and trust mask.

    Both frames are sampled from ``source`` (the previous one at a random place and scale),
    so they are equally sharp. A pasted disc cut from elsewhere in ``source`` may move on
    its own: what it uncovers or covers, and a pixel's width around its edge, are masked.
    """
    h, w = source.shape[-2:]
    frame_scale = _uniform(0.85, min(1.15, min(h, w) / (1.2 * size)), generator)
    span = (size - 1) * frame_scale
    margin_x, margin_y = (w - 1 - span), (h - 1 - span)
    if margin_x < 0 or margin_y < 0:
        raise ValueError(f"source {w}x{h} is too small for {size}px frames")
    x0 = _uniform(0.1, 0.9, generator) * margin_x
    y0 = _uniform(0.1, 0.9, generator) * margin_y
    framing = torch.tensor(
        [[frame_scale, 0, x0], [0, frame_scale, y0], [0, 0, 1]], dtype=torch.float64
    )
    camera = random_motion(size, motion, generator)
    grid = pixel_grid(size, size)
    in_previous = apply_homography(camera, grid)  # current pixel → previous-frame position
    previous = sample_at(source[None], apply_homography(framing, grid)[None])[0]
    current = sample_at(source[None], apply_homography(framing @ camera, grid)[None])[0]
    inside = (in_previous >= 0).all(-1) & (in_previous <= size - 1).all(-1)
    flow = (in_previous - grid).permute(2, 0, 1)
    mask = inside.float()
    if float(torch.rand((), generator=generator)) < motion.object_prob:
        previous, current, flow, mask = _paste_moving_disc(
            source, previous, current, flow, mask, in_previous, motion, generator
        )
    return previous, current, flow, mask[None]


def _paste_moving_disc(
    source: torch.Tensor,
    previous: torch.Tensor,
    current: torch.Tensor,
    flow: torch.Tensor,
    mask: torch.Tensor,
    in_previous: torch.Tensor,
    motion: Motion,
    generator: torch.Generator | None,
) -> Pair:
    """A disc of texture at ``centre`` in the previous frame and ``centre + d`` in the current."""
    size = previous.shape[-1]
    h, w = source.shape[-2:]
    radius = _uniform(0.08, 0.2, generator) * size
    centre = torch.tensor([_uniform(0.25, 0.75, generator) * (size - 1) for _ in range(2)])
    move = torch.tensor([_uniform(-1, 1, generator) * motion.object_shift * size for _ in range(2)])
    patch_origin = torch.tensor(
        [_uniform(radius, w - 1 - radius, generator), _uniform(radius, h - 1 - radius, generator)]
    )
    grid = pixel_grid(size, size)

    def render(frame: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offset = grid - at
        texture = sample_at(source[None], (patch_origin + offset)[None])[0]
        distance = offset.norm(dim=-1) - radius  # signed: negative inside the disc
        return torch.where(distance <= 0, texture, frame), distance

    previous, _ = render(previous, centre)
    current, distance_now = render(current, centre + move)
    distance_before = (in_previous - centre).norm(dim=-1) - radius
    on_disc = distance_now <= 0
    flow = torch.where(on_disc, -move.view(2, 1, 1), flow)
    was_covered = distance_before < 1.5  # background seen now but hidden (or at the edge) before
    near_edge = distance_now.abs() < 1.5
    back_inside = ((grid - move) >= 0).all(-1) & ((grid - move) <= size - 1).all(-1)
    trusted = torch.where(on_disc, back_inside, mask.bool() & ~was_covered) & ~near_edge
    return previous, current, flow, trusted.float()


class SyntheticPairs(Dataset):
    """Random synthetic pairs from content photos (paths or PIL images), ``length`` per epoch."""

    def __init__(
        self,
        items: Sequence[ContentItem],
        size: int = 256,
        length: int | None = None,
        motion: Motion = Motion(),
    ) -> None:
        if not items:
            raise UserError("no content images for synthetic video pairs")
        self.items = list(items)
        self.size = size
        self.length = length or len(self.items)
        self.motion = motion

    def __len__(self) -> int:
        return self.length

    def _source(self, index: int) -> torch.Tensor:
        """The photo, randomly flipped, resized so its short side is 1.25-1.8× the frame."""
        for _ in range(20):
            try:
                item = self.items[index % len(self.items)]
                image = pil_to_tensor(item if isinstance(item, Image.Image) else open_rgb(item))
                break
            except ImageReadError as exc:
                log.warning("skipping unreadable content image: %s", exc)
                index = random.randrange(len(self.items))
        else:
            raise UserError("20 content images in a row could not be read; check the folder")
        if float(torch.rand(())) < 0.5:
            image = image.flip(-1)
        return resize_short_side(image, round(self.size * _uniform(1.25, 1.8, None)))

    def __getitem__(self, index: int) -> Pair:
        return synthetic_pair(self._source(index), self.size, self.motion)


def find_videos(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    found = (p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
    return sorted(p for p in found if p.is_file())


def read_frames(
    path: str | Path,
    long_side: int | None = None,
    max_frames: int | None = None,
    step: int = 1,
    min_short_side: int = 0,
) -> torch.Tensor:
    """Decode ``path`` into ``[T, 3, H, W]`` RGB in [0, 1]: every ``step``-th frame, at most
    ``max_frames``, resized so the long side is ``long_side``, or larger where the short side
    would fall below ``min_short_side`` (a wide clip must still hold a training crop)."""
    import av  # the [video] extra: only real clips need it, synthetic pairs do not

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such video: {path}")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index % step:
                    continue
                image = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
                image = image.float().div_(255.0)
                if long_side:
                    image = resize_long_side(image, long_side)
                if min(image.shape[-2:]) < min_short_side:
                    image = resize_short_side(image, min_short_side)
                frames.append(image)
                if max_frames and len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, OSError) as exc:
        raise UserError(f"cannot read video {path}: {exc}") from None
    if len(frames) < 2:
        raise UserError(f"{path} has fewer than two frames")
    return torch.stack(frames)


@dataclass(frozen=True)
class ClipSettings:
    long_side: int = 512
    min_short_side: int = 0
    max_frames: int = 300
    step: int = 1
    method: str = "dis"


def clip_cache(video: Path, cache_dir: Path, settings: ClipSettings) -> Path:
    """The cached frames, flows and masks of ``video`` (computed and written on first use).

    The key holds the video's path, size and modification time and the settings, so an
    edited video or new settings get a new entry; a cache file is written whole or not at all.
    """
    stat = video.stat()
    key = f"{video.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{settings}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    path = cache_dir / f"{video.stem}-{digest}.pt"
    if path.is_file():
        return path
    log.info("computing optical flow for %s (cached in %s)", video, path)
    frames = read_frames(
        video, settings.long_side, settings.max_frames, settings.step, settings.min_short_side
    )
    flows, masks = [], []
    for start in range(1, frames.shape[0], 16):
        stop = min(start + 16, frames.shape[0])
        flow, mask = flow_pair(frames[start - 1 : stop - 1], frames[start:stop], settings.method)
        flows.append(flow.half())
        masks.append(mask.bool())
    entry = {
        "frames": frames.mul(255).round().to(torch.uint8),
        "flows": torch.cat(flows),
        "masks": torch.cat(masks),
    }
    atomic_write(path, lambda tmp: torch.save(entry, tmp))
    return path


class VideoClipPairs(Dataset):
    """Consecutive frame pairs of every video below ``root``, random ``size``² crops."""

    frames_per_item = 2

    def __init__(
        self,
        root: str | Path,
        cache_dir: str | Path,
        size: int = 256,
        length: int | None = None,
        settings: ClipSettings = ClipSettings(),
    ) -> None:
        videos = find_videos(root)
        if not videos:
            raise UserError(f"no videos found at {root}")
        self.size = size
        settings = replace(settings, min_short_side=max(settings.min_short_side, size))
        self.clips = [
            torch.load(clip_cache(v, Path(cache_dir), settings), mmap=True) for v in videos
        ]
        links = self.frames_per_item - 1  # flows an item spans
        self.starts = [
            (c, t)
            for c, clip in enumerate(self.clips)
            for t in range(len(clip["masks"]) - links + 1)
        ]
        if not self.starts:
            raise UserError(f"no video at {root} has {self.frames_per_item} frames")
        self.length = length or len(self.starts)

    def __len__(self) -> int:
        return self.length

    def crop(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``frames_per_item`` frames from a random start and place: ``[K, 3, S, S]`` frames
        in [0, 1], ``[K-1, 2, S, S]`` backward flows and ``[K-1, 1, S, S]`` masks."""
        clip_index, t = self.starts[index % len(self.starts)]
        clip = self.clips[clip_index]
        h, w = clip["frames"].shape[-2:]
        top = int(torch.randint(h - self.size + 1, ()))
        left = int(torch.randint(w - self.size + 1, ()))
        window = (..., slice(top, top + self.size), slice(left, left + self.size))
        stop = t + self.frames_per_item
        frames = clip["frames"][t:stop][window].float() / 255.0
        return (
            frames,
            clip["flows"][t : stop - 1][window].float(),
            clip["masks"][t : stop - 1][window].float(),
        )

    def __getitem__(self, index: int) -> Pair:
        frames, flows, masks = self.crop(index)
        return frames[0], frames[1], flows[0], masks[0]


def check_chain_length(chain_length: int) -> int:
    """``data.chain_length`` itself, or one error line: a chain is at least a pair."""
    if chain_length < 2:
        raise UserError(f"data.chain_length must be >= 2, got {chain_length}")
    return chain_length


class VideoClipChains(VideoClipPairs):
    """Runs of ``chain_length`` consecutive frames: ``(frames, flows, masks)``, shaped as
    :meth:`VideoClipPairs.crop` says."""

    def __init__(self, *args: object, chain_length: int = 3, **kwargs: object) -> None:
        self.frames_per_item = check_chain_length(chain_length)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.crop(index)


def stack_pairs(pairs: Sequence[Pair]) -> Pair:
    """Pairs → batched ``(previous, current, flow, mask)``."""
    return tuple(torch.stack(parts) for parts in zip(*pairs, strict=True))  # type: ignore[return-value]
