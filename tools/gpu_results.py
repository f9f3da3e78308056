"""The bookkeeping of ``tools/gpu_run.sh``: the training's step count, and results.json.

    python tools/gpu_results.py plan-steps BENCH_JSON BATCH SECONDS
        # steps the training can do in SECONDS at bench_train's measured speed
    python tools/gpu_results.py write --work W --out OUT --dry-run 0 --budget 420 --started T

``write`` reads what the steps left in the work folder (steps.tsv, the benchmark JSONs, the
JUnit report of the CUDA tests, the training runs' folders) and writes at most four files to
OUT, all directly in it (the device tool returns 8 files of 16 MiB at most, 2 folders deep):
results.json, the exported models (still and video) and logs.tar.gz. It needs only the
standard library, and torch only to name the versions, so a broken step never keeps the
report from being written.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

# What the device tool returns: each file at most 16 MiB.
MAX_FILE = 16 * 2**20
# The training steps and the models they export (returned beside the report).
MODEL_NAMES = {"train": "classics-gpu.safetensors", "train_video": "classics-video-gpu.safetensors"}
SKIPPED_SUFFIXES = (".ckpt", ".safetensors")
# The Dumoulin schedule's length: more steps than that are never planned.
FULL_SCHEDULE = 40_000
# Share of the measured speed that is planned on: the real run also loads photos, logs and
# draws sample grids, which the benchmark's synthetic batches do not.
SPEED_MARGIN = 0.8


def plan_steps(bench_json: Path, batch: int, seconds: float) -> int:
    """Steps that fit in ``seconds`` at the speed bench_train measured for ``batch``, so the
    cosine schedule ends when the time does; without a measurement, the full schedule (the
    trainer's max_time then stops it)."""
    try:
        rows = json.loads(bench_json.read_text())["results"]
        speed = max(r["steps_per_sec"] for r in rows if r["batch"] == batch)
    except (OSError, ValueError, KeyError, TypeError):
        return FULL_SCHEDULE
    return max(100, min(FULL_SCHEDULE, int(speed * seconds * SPEED_MARGIN)))


def read_steps(work: Path) -> list[dict]:
    """steps.tsv (name, exit code or skipped/notime, milliseconds, limit, why) as entries."""
    entries = []
    path = work / "steps.tsv"
    lines = path.read_text().splitlines() if path.is_file() else []
    for line in lines:
        name, code, millis, limit, why = (line.split("\t") + [""] * 5)[:5]
        entry: dict = {"name": name, "seconds": round(int(millis or 0) / 1000, 1)}
        if code == "skipped":
            entry["status"] = "skipped"
        elif code == "notime":
            entry["status"] = "failed"
            why = why or "no time was left for it"
        else:
            entry["status"] = "ok" if code == "0" else "failed"
            entry["exit_code"] = int(code)
            if code in ("124", "137"):
                why = f"timed out after its limit of {limit} s"
        entry["limit_s"] = int(limit or 0)
        if why:
            entry["note"] = why
        if (work / "logs" / f"{name}.log").is_file():
            entry["log"] = f"logs.tar.gz:logs/{name}.log"
        entries.append(entry)
    return entries


def junit_figures(path: Path) -> dict:
    """Counts, each test's outcome and the figures the tests recorded (``record_property``)."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    figures: dict = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    figures["passed"] = figures["tests"] - figures["failures"] - figures["errors"]
    figures["passed"] -= figures["skipped"]
    tests = {}
    for case in suite.iter("testcase"):
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = f"{kind}: {(found.get('message') or '')[:300]}"
        recorded = {}
        for prop in case.iter("property"):
            try:
                recorded[prop.get("name")] = json.loads(prop.get("value"))
            except (TypeError, ValueError):
                recorded[prop.get("name")] = prop.get("value")
        tests[case.get("name")] = {
            "outcome": outcome,
            "seconds": float(case.get("time", 0)),
            **recorded,
        }
    figures["results"] = tests
    return figures


def model_header(path: Path) -> dict:
    """The fastnst header of a .safetensors model, read without torch."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return json.loads(header.get("__metadata__", {}).get("fastnst", "{}"))


def train_figures(work: Path, out: Path, step: str = "train") -> dict:
    """Planned steps and time, the steps done, and the exported model (copied to OUT) of a
    training step (``train`` or ``train_video``: its run folder is ``work/step``)."""
    figures: dict = {}
    plan = work / f"{step}_plan.txt"
    if plan.is_file():
        steps, seconds, batch = (int(v) for v in plan.read_text().split())
        figures.update(planned_steps=steps, max_time_s=seconds, batch=batch)
    name = MODEL_NAMES[step]
    model = work / step / name
    if model.is_file():
        header = model_header(model)
        shutil.copyfile(model, out / name)
        figures["model"] = name
        figures["steps"] = header.get("steps")
        figures["images_seen"] = (header.get("steps") or 0) * figures.get("batch", 0)
        figures["provenance"] = header.get("extra", {}).get("provenance")
        if "planned_steps" in figures:
            figures["stopped_by"] = (
                "max_steps" if header.get("steps", 0) >= figures["planned_steps"] else "max_time"
            )
    checkpoint = work / step / "checkpoints" / "last.ckpt"
    figures["last_ckpt"] = checkpoint.is_file()  # written, not returned (over 16 MiB)
    return figures


def step_figures(name: str, work: Path, out: Path) -> dict:
    """What each step measured, from the files it wrote."""
    files = {
        "infer_model": "infer_model.json",
        "infer_video": "infer_video.json",
        "bench_train": "bench_train.json",
    }
    try:
        if name == "cuda_tests":
            return junit_figures(work / "cuda_tests.xml")
        if name in MODEL_NAMES:
            return train_figures(work, out, name)
        if name == "install":
            return {"wheels": sorted(p.name for p in (work / "site").glob("*.dist-info"))}
        if name in files:
            report = json.loads((work / files[name]).read_text())
            section = {"infer_model": "model", "infer_video": "video"}.get(name, "results")
            return {"rows": report.get(section, []), "device": report.get("device")}
    except (OSError, ValueError, ET.ParseError, KeyError, AttributeError) as exc:
        return {"unreadable": f"{type(exc).__name__}: {exc}"}
    return {}


def versions() -> dict:
    """Python, torch, CUDA, cuDNN, Lightning, the GPU and its driver (what is there to say)."""
    found: dict = {"python": platform.python_version(), "machine": platform.machine()}
    try:
        import torch

        found.update(torch=torch.__version__, cuda=torch.version.cuda)
        found["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        found["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    except Exception as exc:  # noqa: BLE001 - the report must be written whatever broke
        found["torch"] = f"not importable: {exc}"
    for package in ("lightning", "hydra", "av", "safetensors", "numpy"):
        try:
            found[package] = __import__(package).__version__
        except Exception:  # noqa: BLE001
            found[package] = None
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv"]
        found["nvidia_smi"] = subprocess.run(
            query, capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found["nvidia_smi"] = None
    return found


def write_logs(work: Path, out: Path) -> None:
    """logs.tar.gz: the step logs, the step outputs and the training folder without its
    checkpoints; without the TensorBoard events if that is what makes it too large."""

    def pack(keep) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for path in sorted(work.rglob("*")):
                relative = path.relative_to(work)
                # Not the wheels' install, the clips' flow cache, the checkpoints (over 16
                # MiB) nor the models (returned beside the logs).
                wanted = (
                    relative.parts[0] not in ("site", "flow_cache")
                    and path.suffix not in SKIPPED_SUFFIXES
                )
                if path.is_file() and wanted and keep(relative):
                    tar.add(path, arcname=str(relative))
        return buffer.getvalue()

    for keep in (
        lambda relative: True,
        lambda relative: "tfevents" not in relative.name,
        lambda relative: relative.parts[0] == "logs" or len(relative.parts) == 1,
    ):
        data = pack(keep)
        if len(data) <= MAX_FILE:
            (out / "logs.tar.gz").write_bytes(data)
            return


def write(args: argparse.Namespace) -> int:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    steps = read_steps(args.work)
    for entry in steps:
        entry["figures"] = step_figures(entry["name"], args.work, out)
    results = {
        "dry_run": args.dry_run == "1",
        "started": datetime.fromtimestamp(args.started, timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - args.started, 1),
        "budget_s": args.budget,
        "versions": versions(),
        "steps": steps,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    write_logs(args.work, out)
    for entry in steps:
        why = f"  {entry['note']}" if "note" in entry else ""
        print(f"{entry['name']:12s} {entry['status']:8s} {entry['seconds']:7.1f} s{why}")
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0 if all(e["status"] != "failed" for e in steps) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan-steps")
    plan.add_argument("bench_json", type=Path)
    plan.add_argument("batch", type=int)
    plan.add_argument("seconds", type=float)
    report = commands.add_parser("write")
    report.add_argument("--work", type=Path, required=True)
    report.add_argument("--out", type=Path, required=True)
    report.add_argument("--dry-run", default="0")
    report.add_argument("--budget", type=int, required=True)
    report.add_argument("--started", type=int, required=True)
    args = parser.parse_args()
    if args.command == "plan-steps":
        print(plan_steps(args.bench_json, args.batch, args.seconds))
        return 0
    return write(args)


if __name__ == "__main__":
    sys.exit(main())
