"""tools/gpu_run.sh in its dry run (every step on the CPU at toy size), and the carry folder
that tools/gpu_prepare.sh builds: what a lent GPU gets must have run before it comes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_training import REPO

from fastnst.export import load_model

from conftest import panning_frames, write_clip

sys.path.insert(0, str(REPO / "tools"))
from gpu_carry import fill_photos, repack_lzma, shrink_image  # noqa: E402
from gpu_results import plan_steps  # noqa: E402

STEPS = ["install", "cuda_tests", "infer_model", "infer_video", "bench_train", "train"]


def write_images(folder: Path, names: list[str], size: tuple[int, int]) -> Path:
    """Smooth random RGB images as JPEGs (``size`` is width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        texture = panning_frames(1, size[1], size[0], seed=seed)[0]
        array = (texture.permute(1, 2, 0) * 255).to(torch.uint8).numpy()
        Image.fromarray(array).save(folder / f"{name}.jpg", quality=90)
    return folder


def dry_run(tmp_path: Path, carry: Path, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "gpu_run.sh"), str(out)],
        env={
            **os.environ,
            "FASTNST_GPU_DRY_RUN": "1",
            "FASTNST_GPU_CARRY": str(carry),
            "PYTHON": sys.executable,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    return proc, out


def returned_files(out: Path) -> list[Path]:
    """What the device tool would bring back: at most 8 files of 16 MiB, 2 folders deep."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8
    for path in files:
        assert path.stat().st_size <= 16 * 2**20
        assert len(path.relative_to(out).parts) <= 3
    return files


def toy_carry(tmp_path: Path) -> Path:
    """A carry folder with 4 photos, 2 styles and a panning clip (no wheels: install is
    skipped)."""
    carry = tmp_path / "carry"
    write_images(carry / "photos", [f"p{i}" for i in range(4)], (80, 64))
    write_images(carry / "styles", ["ink", "sun"], (96, 72))
    (carry / "clips").mkdir()
    write_clip(carry / "clips" / "pan.mp4", panning_frames(8, 48, 64))
    return carry


def check_training(out: Path, steps: dict[str, dict], step: str = "train") -> None:
    """A training step planned and ran its 3 dry-run steps and its model came back."""
    training = steps[step]["figures"]
    assert training["steps"] == training["planned_steps"] == 3 and training["last_ckpt"]
    net, info = load_model(out / training["model"])
    assert info.style_names == ["ink", "sun"] and info.steps == 3
    assert net.config.recurrent == (step == "train_video")
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = tar.getnames()
    assert {f"logs/{name}.log" for name in steps} - {"logs/install.log"} <= set(names)
    assert not any(n.endswith((".ckpt", ".safetensors")) for n in names)


def test_dry_run_trains_on_the_benchmarked_plan(tmp_path: Path) -> None:
    """The default suite's share of the dry run: the training benchmark, the time-boxed
    training that plans its steps from it, and the video recipe on the carried clip, each
    exported and reported (the whole run is slow)."""
    proc, out = dry_run(
        tmp_path, toy_carry(tmp_path), FASTNST_GPU_STEPS="bench_train train train_video"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in returned_files(out)) == [
        "classics-gpu.safetensors",
        "classics-video-gpu.safetensors",
        "logs.tar.gz",
        "results.json",
    ]
    steps = {s["name"]: s for s in json.loads((out / "results.json").read_text())["steps"]}
    assert list(steps) == ["bench_train", "train", "train_video"]
    assert all(step["status"] == "ok" for step in steps.values()), steps
    (train_row,) = steps["bench_train"]["figures"]["rows"]
    assert train_row["batch"] == 2 and train_row["steps_per_sec"] > 0
    check_training(out, steps)
    check_training(out, steps, "train_video")
    provenance = steps["train_video"]["figures"]["provenance"]["command"]
    assert "stage=temporal" in provenance and "loss.style_weight=2" in provenance
    with tarfile.open(out / "logs.tar.gz") as tar:
        assert not any(name.startswith("flow_cache") for name in tar.getnames())


# Every step of the GPU run at toy size, the CUDA tests on the CPU included: about 90 s on
# the development machine, so marked slow; run it (-m slow) before spending a lent GPU.
@pytest.mark.slow
def test_dry_run_runs_every_step_and_reports_it(tmp_path: Path) -> None:
    proc, out = dry_run(tmp_path, toy_carry(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in returned_files(out)) == [
        "classics-gpu.safetensors",
        "logs.tar.gz",
        "results.json",
    ]
    results = json.loads((out / "results.json").read_text())
    assert results["dry_run"] is True and results["versions"]["torch"] == torch.__version__
    steps = {s["name"]: s for s in results["steps"]}
    assert list(steps) == STEPS
    assert steps["install"]["status"] == "skipped"  # no wheels in this carry folder
    assert all(steps[name]["status"] == "ok" for name in STEPS[1:]), results["steps"]
    tests = steps["cuda_tests"]["figures"]
    assert tests["passed"] == 7 and tests["failures"] == tests["errors"] == tests["skipped"] == 0
    half = tests["results"]["test_half_precision_inference_matches_fp32[fp16]"]["fp16_vs_fp32"]
    assert 0 < half["mean"] <= half["max"]
    (model_row,) = steps["infer_model"]["figures"]["rows"]
    assert model_row["size"] == "64x48" and model_row["frames_per_s"] > 0
    (video_row,) = steps["infer_video"]["figures"]["rows"]
    assert video_row["frames"] == 4 and video_row["frames_per_s"] > 0
    (train_row,) = steps["bench_train"]["figures"]["rows"]
    assert train_row["batch"] == 2 and train_row["steps_per_sec"] > 0
    check_training(out, steps)
    with tarfile.open(out / "logs.tar.gz") as tar:
        assert "cuda_tests.xml" in tar.getnames()


def test_a_failed_step_is_reported_and_the_next_still_runs(tmp_path: Path) -> None:
    """No photos in the carry folder: training fails; the steps after it still run and the
    report says which failed, with its log (and why train_video, without clips, did not)."""
    carry = tmp_path / "carry"
    write_images(carry / "styles", ["ink"], (64, 48))
    proc, out = dry_run(tmp_path, carry, FASTNST_GPU_STEPS="train train_video no_such_step")
    assert proc.returncode == 1
    steps = json.loads((out / "results.json").read_text())["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [
        ("train", "failed"),
        ("train_video", "skipped"),
        ("no_such_step", "skipped"),
    ]
    assert "no clips" in steps[1]["note"]
    with tarfile.open(out / "logs.tar.gz") as tar:
        log = tar.extractfile("logs/train.log").read().decode()
    assert "error: content folder not found" in log
    assert sorted(p.name for p in returned_files(out)) == ["logs.tar.gz", "results.json"]


def test_plan_steps_fits_the_schedule_to_the_time(tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"results": [{"batch": 16, "steps_per_sec": 20.0}]}))
    assert plan_steps(bench, 16, 100) == 1600  # 80 % of the measured speed
    assert plan_steps(bench, 16, 10**6) == 40_000  # never past the full schedule
    assert plan_steps(tmp_path / "missing.json", 16, 100) == 40_000  # max_time stops it


def test_wheels_are_repacked_with_lzma_and_keep_their_contents(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    members = {"demo/__init__.py": b"x = 1\n" * 500, "demo-1.0.dist-info/RECORD": b"r\n"}
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    repack_lzma(wheel)
    with zipfile.ZipFile(wheel) as archive:
        assert {i.filename: i.compress_type for i in archive.infolist()} == {
            name: zipfile.ZIP_LZMA for name in members
        }
        assert {name: archive.read(name) for name in members} == members


def test_photos_fill_the_room_and_are_shrunk(tmp_path: Path) -> None:
    source = write_images(tmp_path / "src", [f"p{i}" for i in range(8)], (640, 400))
    one = shrink_image(source / "p0.jpg", tmp_path / "one.jpg", short_side=320)
    with Image.open(one) as image:
        assert image.size == (512, 320)
    room = int(one.stat().st_size * 3.5)
    kept = fill_photos(source, tmp_path / "photos", room)
    assert 2 <= len(kept) <= 4
    assert sum(p.stat().st_size for p in kept) <= room
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == sorted(p.name for p in kept)
    with Image.open(tmp_path / "photos" / kept[0].name) as image:
        assert min(image.size) == 320
