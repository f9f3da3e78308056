"""Training throughput benchmark: images/s, steps/s and peak memory per batch size.

It times the same work as one training step of ``train.py`` (network forward, perceptual
loss against the frozen VGG-19, backward, gradient clipping, Adam), with bf16 autocast and
channels_last on a GPU as the trainer uses them, on synthetic 256 px batches. Prints a table
and writes JSON; the last column projects the 40,000-step Dumoulin schedule.

    python tools/bench_train.py                       # 256 px, batch 4 and 16, current device
    python tools/bench_train.py --compile --steps 50  # GPU, torch.compile'd network
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from fastnst import CONF_DIR
from fastnst.data.textures import UNIVERSES, universe_textures
from fastnst.devices import pick_device
from fastnst.losses import PerceptualLoss
from fastnst.model import NetConfig, TransformerNet

REPO = Path(__file__).resolve().parents[1]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def bench(
    batch: int, size: int, steps: int, warmup: int, device: torch.device, args: argparse.Namespace
) -> dict:
    loss_cfg = yaml.safe_load((CONF_DIR / "loss" / "default.yaml").read_text())
    styles = [universe_textures(name, count=1, size=size) for name in UNIVERSES]
    net = TransformerNet(NetConfig(num_styles=len(styles), width=args.width)).to(device)
    loss_fn = PerceptualLoss(**loss_cfg).to(device)
    loss_fn.set_style_targets(styles)
    on_gpu = device.type == "cuda"
    if on_gpu:
        net.to(memory_format=torch.channels_last)
        loss_fn.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(device)
    step_fn = torch.compile(net) if args.compile else net
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    images = torch.rand(batch, 3, size, size, device=device)
    if on_gpu:
        images = images.contiguous(memory_format=torch.channels_last)

    def one_step() -> None:
        mix = F.one_hot(torch.randint(len(styles), (batch,), device=device), len(styles)).float()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
            total, _ = loss_fn(step_fn(images, mix), images, mix)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()

    for _ in range(warmup):
        one_step()
    if on_gpu:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if on_gpu:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    steps_per_sec = steps / elapsed
    return {
        "batch": batch,
        "size": size,
        "steps": steps,
        "steps_per_sec": steps_per_sec,
        "images_per_sec": steps_per_sec * batch,
        "peak_memory_mb": peak_memory_mb(device),
        "minutes_for_40k_steps": 40000 / steps_per_sec / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="fastnst training throughput benchmark")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps (default 50 GPU, 3 CPU)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default 10 GPU, 1 CPU)"
    )
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", type=Path, default=Path("outputs/bench_train.json"))
    args = parser.parse_args()
    device = pick_device(args.device)
    steps = args.steps or (50 if device.type == "cuda" else 3)
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    rows = [bench(b, args.size, steps, warmup, device, args) for b in args.batches]
    threads = torch.get_num_threads()
    print(f"device: {name} ({device.type}, {threads} threads), torch {torch.__version__}")
    header = ("batch", "size", "steps/s", "images/s", "peak MB", "40k steps (min)")
    print("{:>5} {:>5} {:>9} {:>9} {:>9} {:>16}".format(*header))
    for r in rows:
        print(
            f"{r['batch']:>5} {r['size']:>5} {r['steps_per_sec']:>9.2f} "
            f"{r['images_per_sec']:>9.1f} {r['peak_memory_mb']:>9.0f} "
            f"{r['minutes_for_40k_steps']:>16.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "device": name,
                "device_type": device.type,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "compile": args.compile,
                "width": args.width,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
