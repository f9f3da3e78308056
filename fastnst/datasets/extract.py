"""Sample style frames from film clips into one style folder (``fastnst extract-frames``).

Per clip: decode every frame, detect scene cuts on small thumbnails, and take a candidate
at most every ``min_spacing`` seconds and at most ``max_per_scene`` per shot. A candidate
has its letterbox bars cropped, then is dropped if dark, flat, blurry or a near-duplicate
of any frame already in the folder. Frames already in the manifest count as taken but are
not written again, so re-running on the same clips adds nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from fastnst.datasets.manifest import FrameRecord, Manifest, clip_fingerprint
from fastnst.datasets.phash import dhash, phash, to_hex
from fastnst.datasets.quality import QualityThresholds, letterbox_box, reject_reason, sharpness
from fastnst.datasets.scenes import SceneCutDetector
from fastnst.errors import UserError
from fastnst.files import atomic_write

THUMBNAIL_WIDTH = 96


@dataclass(frozen=True)
class ExtractOptions:
    min_spacing: float = 2.0  # seconds between two frames taken from one clip
    scene_threshold: float = 0.35  # colour-histogram distance that counts as a cut
    max_per_scene: int = 3
    max_hash_distance: int = 6  # bits, on both pHash and dHash, to call two frames the same
    max_side: int = 0  # shrink saved frames to this long side; 0 keeps the clip's size
    quality: QualityThresholds = field(default_factory=QualityThresholds)


@dataclass
class ClipSummary:
    """What happened to one clip: frames decoded, scenes seen, frames written and why not."""

    clip: Path
    decoded: int = 0
    scenes: int = 0
    written: int = 0
    already_listed: int = 0
    rejected: Counter = field(default_factory=Counter)


def check_clip(path: Path) -> None:
    """Fail before any work if ``path`` is not a readable video."""
    if not path.is_file():
        raise UserError(f"clip not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path} has no video stream")
    except av.FFmpegError as exc:
        raise UserError(f"cannot read video {path}: {exc}") from None


def _thumbnail(frame: av.VideoFrame) -> np.ndarray:
    height = max(2, round(THUMBNAIL_WIDTH * frame.height / frame.width))
    return frame.reformat(width=THUMBNAIL_WIDTH, height=height, format="rgb24").to_ndarray()


def _save_frame(image: Image.Image, path: Path) -> None:
    atomic_write(path, lambda tmp: image.save(tmp, format="JPEG", quality=95))


def extract_clip(
    clip: Path,
    manifest: Manifest,
    options: ExtractOptions = ExtractOptions(),  # noqa: B008 - frozen, safe to share
    progress: bool = True,
) -> ClipSummary:
    """Add the clip's good frames to ``manifest.folder`` and to ``manifest`` (not saved)."""
    source_id = clip_fingerprint(clip)
    summary = ClipSummary(clip)
    detector = SceneCutDetector(options.scene_threshold)
    next_try = float("-inf")
    taken_in_scene = 0
    retry = options.min_spacing / 4
    try:
        container = av.open(str(clip))
    except av.FFmpegError as exc:
        raise UserError(f"cannot read video {clip}: {exc}") from None
    with (
        container,
        tqdm(
            total=container.streams.video[0].frames or None,
            unit="frame",
            desc=clip.name,
            disable=not progress,
        ) as bar,
    ):
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frame_rate = float(stream.average_rate or 25)
        try:
            frames = container.decode(stream)
            for frame in frames:
                bar.update()
                summary.decoded += 1
                time = frame.time if frame.time is not None else summary.decoded / frame_rate
                if detector.update(_thumbnail(frame)):
                    taken_in_scene = 0
                if taken_in_scene >= options.max_per_scene or time < next_try:
                    continue
                key = (source_id, round(time * 1000))
                if manifest.has(key):
                    summary.already_listed += 1
                    taken_in_scene += 1
                    next_try = time + options.min_spacing
                    continue
                record = _consider(frame, time, detector.scene, clip, source_id, manifest, options)
                if isinstance(record, str):
                    summary.rejected[record] += 1
                    next_try = time + retry
                    continue
                manifest.add(record)
                summary.written += 1
                taken_in_scene += 1
                next_try = time + options.min_spacing
                bar.set_postfix(written=summary.written, refresh=False)
        except av.FFmpegError as exc:
            raise UserError(
                f"{clip}: decoding failed after {summary.decoded} frames ({exc})"
            ) from None
    summary.scenes = detector.scene + 1
    return summary


def _consider(
    frame: av.VideoFrame,
    time: float,
    scene: int,
    clip: Path,
    source_id: str,
    manifest: Manifest,
    options: ExtractOptions,
) -> FrameRecord | str:
    """Write the frame and return its record, or return why it was dropped."""
    rgb = frame.to_ndarray(format="rgb24")
    left, top, right, bottom = letterbox_box(rgb, options.quality.bar_level)
    picture = np.ascontiguousarray(rgb[top:bottom, left:right])
    reason = reject_reason(picture, options.quality)
    if reason:
        return reason
    image = Image.fromarray(picture)
    p_hash, d_hash = phash(image), dhash(image)
    if manifest.near_duplicate(p_hash, d_hash, options.max_hash_distance):
        return "duplicate"
    if options.max_side and max(image.size) > options.max_side:
        image.thumbnail((options.max_side, options.max_side), Image.Resampling.LANCZOS)
    name = f"{clip.stem}_{source_id[:8]}_{round(time * 1000):09d}.jpg"
    _save_frame(image, manifest.folder / name)
    return FrameRecord(
        file=name,
        source=str(clip.resolve()),
        source_id=source_id,
        timestamp=round(time, 3),
        scene=scene,
        phash=to_hex(p_hash),
        dhash=to_hex(d_hash),
        width=image.width,
        height=image.height,
        crop=(left, top, right, bottom),
        sharpness=round(sharpness(picture), 2),
    )


def extract_frames(
    clips: list[Path],
    out: Path,
    options: ExtractOptions = ExtractOptions(),  # noqa: B008 - frozen, safe to share
    progress: bool = True,
) -> list[ClipSummary]:
    """Extract from every clip into ``out``; the manifest is saved after each clip and on
    interruption, so finished work is never lost."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if not clips:
        raise UserError("no clips given")
    for clip in clips:
        check_clip(clip)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(out)
    summaries = []
    for clip in clips:
        try:
            summaries.append(extract_clip(clip, manifest, options, progress))
        finally:
            manifest.save()
    return summaries
