"""Frame extraction: hashes, quality filters, scene cuts, manifest and re-runs, on a clip
made here (always runs) and on the shared real video (skipped when absent)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fastnst.datasets.extract import ExtractOptions, extract_frames
from fastnst.datasets.manifest import MANIFEST_NAME, Manifest
from fastnst.datasets.phash import dhash, hamming, phash
from fastnst.datasets.quality import QualityThresholds, letterbox_box, reject_reason
from fastnst.datasets.scenes import SceneCutDetector
from fastnst.errors import UserError
from fastnst.images import find_images

ROOT = Path(__file__).resolve().parents[1]
COCKATOO = ROOT.parent / "shared" / "data" / "video" / "cockatoo.mp4"
WIDTH, HEIGHT, FPS, SCENE_FRAMES, BAR = 192, 108, 10, 15, 12


def blocks(seed: int, shift: int) -> np.ndarray:
    """A sharp texture of random 8-pixel colour blocks, rolled ``shift`` pixels sideways."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (HEIGHT // 8 + 1, WIDTH // 8 + 1, 3), dtype=np.uint8)
    big = np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))[:HEIGHT, :WIDTH]
    return np.roll(big, shift, axis=1)


def scene_frames(kind: str, index: int) -> np.ndarray:
    if kind == "letterboxed":  # a still shot: one frame of it is enough
        frame = blocks(1, 0)
        frame[:BAR] = 0
        frame[-BAR:] = 0
        return frame
    if kind == "dark":
        return np.full((HEIGHT, WIDTH, 3), 4, dtype=np.uint8)
    if kind == "uniform":
        return np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
    if kind == "blurry":
        ramp = np.linspace(30, 220, WIDTH, dtype=np.float32)[None, :, None]
        return np.broadcast_to(ramp * np.array([1.0, 0.5, 0.2]), (HEIGHT, WIDTH, 3)).astype(
            np.uint8
        )
    if kind == "other":  # another shot, in another palette (warm, no blue)
        return blocks(2, 4 * index) // 2 + np.array([120, 60, 0], dtype=np.uint8)
    raise ValueError(kind)


# The last scene replays the first, bars and all: every frame of it is a near-duplicate.
SCENES = ["letterboxed", "dark", "uniform", "blurry", "other", "letterboxed"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "scenes.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.bit_rate = 4_000_000
        for kind in SCENES:
            for index in range(SCENE_FRAMES):
                frame = av.VideoFrame.from_ndarray(scene_frames(kind, index), format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


OPTIONS = ExtractOptions(min_spacing=0.5, max_per_scene=2)


def test_perceptual_hashes_match_copies_and_tell_images_apart() -> None:
    image = Image.fromarray(blocks(1, 0))
    copy = image.resize((150, 84)).resize(image.size)
    other = Image.fromarray(blocks(2, 0))
    for hash_fn in (phash, dhash):
        assert hamming(hash_fn(image), hash_fn(copy)) <= 6
        assert hamming(hash_fn(image), hash_fn(other)) > 12


def test_quality_filters_and_letterbox() -> None:
    thresholds = QualityThresholds()
    boxed = scene_frames("letterboxed", 0)
    left, top, right, bottom = letterbox_box(boxed)
    assert (left, right) == (0, WIDTH)
    assert BAR <= top <= BAR + 2 and HEIGHT - BAR - 2 <= bottom <= HEIGHT - BAR
    assert reject_reason(boxed[top:bottom], thresholds) is None
    assert reject_reason(scene_frames("dark", 0), thresholds) == "dark"
    assert reject_reason(scene_frames("uniform", 0), thresholds) == "uniform"
    assert reject_reason(scene_frames("blurry", 0), thresholds) == "blurry"
    # A dark frame is not all "bars": nothing is cropped from it.
    assert letterbox_box(scene_frames("dark", 0)) == (0, 0, WIDTH, HEIGHT)


def test_scene_cuts_on_hard_cuts_only() -> None:
    detector = SceneCutDetector()
    cuts = [detector.update(scene_frames(kind, i)) for kind in SCENES for i in range(4)]
    starts = [i for i, cut in enumerate(cuts) if cut]
    assert starts == [4 * s for s in range(len(SCENES))]


def test_extracts_filters_and_reruns_add_nothing(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "miles"
    (summary,) = extract_frames([clip], out, OPTIONS, progress=False)
    assert summary.decoded == len(SCENES) * SCENE_FRAMES
    assert summary.scenes == len(SCENES)
    assert summary.rejected["dark"] >= 1
    assert summary.rejected["uniform"] >= 1
    assert summary.rejected["blurry"] >= 1
    assert summary.rejected["duplicate"] >= 1

    manifest = json.loads((out / MANIFEST_NAME).read_text())["frames"]
    files = find_images(out)
    assert sorted(p.name for p in files) == sorted(r["file"] for r in manifest)
    assert len(files) == summary.written
    # Kept frames come only from the two good scenes: one of the still shot, two (the cap)
    # of the moving one, >= 0.5 s apart.
    scenes = [r["scene"] for r in manifest]
    assert sorted(scenes) == [0, 4, 4]
    times = sorted(r["timestamp"] for r in manifest)
    assert all(b - a >= 0.5 - 1e-6 for a, b in zip(times, times[1:], strict=False))
    for record in manifest:
        assert record["source"] == str(clip.resolve())
        assert len(record["phash"]) == len(record["dhash"]) == 16
        with Image.open(out / record["file"]) as image:
            assert image.size == (record["width"], record["height"])
        if record["scene"] == 0:  # letterbox bars cropped off
            assert record["height"] <= HEIGHT - 2 * BAR
            assert record["crop"][1] >= BAR

    (again,) = extract_frames([clip], out, OPTIONS, progress=False)
    assert again.written == 0
    assert again.already_listed == summary.written
    assert len(find_images(out)) == len(files)
    assert len(Manifest.load(out).frames) == len(manifest)


def test_a_renamed_copy_of_a_clip_adds_nothing(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "gwen"
    (first,) = extract_frames([clip], out, OPTIONS, progress=False)
    renamed = tmp_path / "renamed.mp4"
    renamed.write_bytes(clip.read_bytes())
    (second,) = extract_frames([renamed], out, OPTIONS, progress=False)
    assert first.written > 0
    assert second.written == 0


def test_bad_input_is_one_error_line_and_nothing_written(clip: Path, tmp_path: Path) -> None:
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    out = tmp_path / "punk"
    with pytest.raises(UserError, match="cannot read video"):
        extract_frames([clip, not_video], out, OPTIONS, progress=False)
    assert not out.exists()  # checked before any work
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastnst",
            "extract-frames",
            str(tmp_path / "missing.mp4"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: clip not found: {tmp_path / 'missing.mp4'}"
    ]


def test_damaged_manifest_is_reported_not_overwritten(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "mumbattan"
    out.mkdir()
    (out / MANIFEST_NAME).write_text("{broken")
    with pytest.raises(UserError, match="damaged"):
        extract_frames([clip], out, OPTIONS, progress=False)
    assert (out / MANIFEST_NAME).read_text() == "{broken"


@pytest.mark.skipif(not COCKATOO.is_file(), reason="shared data absent")
def test_real_video_via_cli(tmp_path: Path) -> None:
    out = tmp_path / "nueva_york"
    command = [
        sys.executable,
        "-m",
        "fastnst",
        "extract-frames",
        str(COCKATOO),
        "--out",
        str(out),
        "--min-spacing",
        "1",
        "--max-per-scene",
        "5",
        "--max-side",
        "640",
    ]
    first = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    frames = find_images(out)
    assert 1 <= len(frames) <= 5
    with Image.open(frames[0]) as image:
        assert max(image.size) == 640
    assert "cockatoo.mp4" in first.stderr  # the progress bar
    second = subprocess.run(command + ["--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"0 written, {len(frames)} already listed" in second.stdout
    assert find_images(out) == frames
