"""Training throughput benchmark: images/s, steps/s and peak memory per batch size.

It times the same work as one training step of ``train.py`` (network forward, perceptual
loss against the frozen VGG-19, backward, gradient clipping, Adam), with bf16 autocast and
channels_last on a GPU as the trainer uses them, on synthetic 256 px batches. Prints a table
and writes JSON; the last column projects the 40,000-step Dumoulin schedule.

    python tools/bench_train.py                       # 256 px, batch 4 and 16, current device
    python tools/bench_train.py --compile --steps 50  # GPU, torch.compile'd network
    python tools/bench_train.py --sizes 128 256 --precisions fp32 bf16   # CPU rows
    python tools/bench_train.py --curve 200 --photos ../shared/data/photos --sizes 128
        # loss over the first 200 real training steps: fp32 (two seeds: the noise) vs bf16
    python tools/bench_train.py --sizes 128 --batches 4 --precisions bf16 \
        --variants plain channels_last compile threads1 --photos ../shared/data/photos
        # what else helps a CPU: memory format, torch.compile, threads; data loading time
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from fastnst import CONF_DIR
from fastnst.data.content import ContentDataset, folder_content
from fastnst.data.textures import UNIVERSES, universe_textures
from fastnst.devices import describe_machine, pick_device
from fastnst.losses import PerceptualLoss
from fastnst.model import NetConfig, TransformerNet

REPO = Path(__file__).resolve().parents[1]
# CPU knobs the trainer could turn; each variant is timed on its own (``--variants``).
VARIANTS = ("plain", "channels_last", "compile", "channels_last+compile", "threads1")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def make_step(
    batch: int, size: int, device: torch.device, precision: str, args: argparse.Namespace
):
    """One training step's work (as the trainer does it) as a function of a content batch."""
    loss_cfg = yaml.safe_load((CONF_DIR / "loss" / "default.yaml").read_text())
    styles = [universe_textures(name, count=1, size=size) for name in UNIVERSES]
    net = TransformerNet(NetConfig(num_styles=len(styles), width=args.width)).to(device)
    loss_fn = PerceptualLoss.from_settings(loss_cfg).to(device)
    loss_fn.set_style_targets(styles)
    channels_last = device.type == "cuda" or args.channels_last
    if channels_last:
        net.to(memory_format=torch.channels_last)
        loss_fn.to(memory_format=torch.channels_last)
    step_fn = torch.compile(net) if args.compile else net
    loss_call = torch.compile(loss_fn) if args.compile else loss_fn
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def one_step(images: torch.Tensor) -> float:
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        mix = F.one_hot(torch.randint(len(styles), (batch,), device=device), len(styles)).float()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            total, _ = loss_call(step_fn(images, mix), images, mix)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        return float(total.detach())

    return one_step


def bench(
    batch: int,
    size: int,
    steps: int,
    warmup: int,
    device: torch.device,
    precision: str,
    args: argparse.Namespace,
) -> dict:
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    step = make_step(batch, size, device, precision, args)
    images = torch.rand(batch, 3, size, size, device=device)

    def one_step() -> None:
        step(images)

    start = time.perf_counter()
    for _ in range(warmup):
        one_step()
    if on_gpu:
        torch.cuda.synchronize(device)
    warmup_seconds = time.perf_counter() - start  # with --compile: the compilation
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
        "precision": precision,
        "steps": steps,
        "steps_per_sec": steps_per_sec,
        "warmup_steps": warmup,
        "warmup_seconds": warmup_seconds,
        "images_per_sec": steps_per_sec * batch,
        "peak_memory_mb": peak_memory_mb(device),
        "minutes_for_40k_steps": 40000 / steps_per_sec / 60,
    }


def data_ms_per_batch(photos: Path, size: int, batch: int, batches: int = 10) -> float:
    """Milliseconds to decode and crop one batch of real photos in the main process: what a
    DataLoader worker has to hide behind each training step."""
    dataset = ContentDataset(folder_content(photos), size)
    start = time.perf_counter()
    for i in range(batches * batch):
        dataset[i % len(dataset)]
    return (time.perf_counter() - start) / batches * 1000


def run_variants(args: argparse.Namespace, device: torch.device) -> dict:
    """Each CPU variant at the first size, batch and precision given, timed in ``--rounds``
    interleaved rounds (on a shared machine the load drifts; the median per variant is what
    the table shows)."""
    size, batch = args.sizes[0], args.batches[0]
    precision = (args.precisions or ["bf16"])[0]
    threads = torch.get_num_threads()
    rows = []
    for round_index in range(args.rounds):
        for variant in args.variants:
            args.channels_last = "channels_last" in variant
            args.compile = "compile" in variant
            torch.set_num_threads(1 if variant == "threads1" else threads)
            warmup = max(args.warmup or 1, 3 if args.compile else 1)  # compiling is untimed
            row = bench(batch, size, args.steps or 5, warmup, device, precision, args)
            rows.append({"variant": variant, "round": round_index, **row})
            print(
                f"round {round_index} {variant:>22}: {row['steps_per_sec']:.3f} steps/s "
                f"({warmup} untimed warm-up steps took {row['warmup_seconds']:.0f} s)"
            )
    torch.set_num_threads(threads)
    medians = {
        variant: statistics.median(r["steps_per_sec"] for r in rows if r["variant"] == variant)
        for variant in args.variants
    }
    for variant, value in medians.items():
        print(
            f"median {variant:>22}: {value:.3f} steps/s ({value / medians[args.variants[0]]:.2f}x)"
        )
    report: dict = {"variants": rows, "median_steps_per_sec": medians}
    if args.photos:
        report["data_ms_per_batch"] = data_ms_per_batch(args.photos, size, batch)
        print(f"data loading: {report['data_ms_per_batch']:.0f} ms per batch of {batch}")
    return report


def loss_curve(
    steps: int,
    size: int,
    batch: int,
    seed: int,
    precision: str,
    photos: Path,
    args: argparse.Namespace,
) -> list[float]:
    """Loss at each of the first ``steps`` training steps on random crops of real photos:
    the same crops and styles for every precision with the same seed."""
    torch.manual_seed(seed)
    step = make_step(batch, size, torch.device("cpu"), precision, args)
    dataset = ContentDataset(folder_content(photos), size)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    losses = []
    for i in range(steps):
        picks = [order[(i * batch + j) % len(order)] for j in range(batch)]
        losses.append(step(torch.stack([dataset[int(k)][0] for k in picks])))
    return losses


def run_curves(args: argparse.Namespace) -> dict:
    """fp32 twice (seeds 0 and 1: how much two runs differ anyway) and bf16 with seed 0."""
    runs = {"fp32 seed 0": ("fp32", 0), "fp32 seed 1": ("fp32", 1), "bf16 seed 0": ("bf16", 0)}
    size, batch = args.sizes[0], args.batches[0]
    curves = {}
    half = args.curve // 2  # compare the second half: past the first rapid fall
    for label, (precision, seed) in runs.items():
        curves[label] = loss_curve(args.curve, size, batch, seed, precision, args.photos, args)
        tail = curves[label][half:]
        print(f"{label}: mean loss over steps {half}-{args.curve}: {sum(tail) / len(tail):.4f}")
    means = {k: sum(v[half:]) / len(v[half:]) for k, v in curves.items()}
    print(
        f"seed noise (fp32 0 vs 1): {abs(means['fp32 seed 0'] - means['fp32 seed 1']):.4f}, "
        f"precision gap (fp32 vs bf16, seed 0): "
        f"{abs(means['fp32 seed 0'] - means['bf16 seed 0']):.4f}"
    )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        window = 10
        for label, values in curves.items():
            smooth = [
                sum(values[max(0, i - window + 1) : i + 1]) / min(window, i + 1)
                for i in range(len(values))
            ]
            ax.plot(smooth, label=label)
        ax.set(
            xlabel="step",
            ylabel=f"total loss (mean of {window} steps)",
            yscale="log",
            title=f"CPU training, {size} px, batch {batch}: fp32 vs bf16 autocast",
        )
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")
    return {"curve_size": size, "curve_batch": batch, "curves": curves, "second_half_means": means}


def main() -> None:
    parser = argparse.ArgumentParser(description="fastnst training throughput benchmark")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["fp32", "bf16"],
        default=None,
        help="default: bf16 on a GPU, fp32 on a CPU",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps (default 50 GPU, 3 CPU)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default 10 GPU, 1 CPU)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --variants: interleaved rounds")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the network and the loss"
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="channels_last on a CPU too (GPU: always)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=None,
        help="time these CPU variants at the first size/batch/precision",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--curve", type=int, default=0, help="loss curves over N real steps")
    parser.add_argument(
        "--photos", type=Path, help="with --curve or --variants: a folder of photos"
    )
    parser.add_argument("--plot", type=Path, help="with --curve: write the curves as a PNG")
    parser.add_argument("--json", type=Path, default=Path("outputs/bench_train.json"))
    args = parser.parse_args()
    device = pick_device(args.device)
    name = describe_machine()
    if args.curve:
        if args.photos is None:
            parser.error("--curve needs --photos")
        report = run_curves(args)
    elif args.variants:
        report = run_variants(args, device)
    else:
        steps = args.steps or (50 if device.type == "cuda" else 3)
        warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
        precisions = args.precisions or (["bf16"] if device.type == "cuda" else ["fp32"])
        rows = [
            bench(b, size, steps, warmup, device, precision, args)
            for size in args.sizes
            for precision in precisions
            for b in args.batches
        ]
        print(f"device: {name} ({device.type}, {torch.get_num_threads()} threads)")
        header = ("batch", "size", "precision", "steps/s", "images/s", "peak MB", "40k (min)")
        print("{:>5} {:>5} {:>9} {:>9} {:>9} {:>9} {:>10}".format(*header))
        for r in rows:
            print(
                f"{r['batch']:>5} {r['size']:>5} {r['precision']:>9} {r['steps_per_sec']:>9.2f} "
                f"{r['images_per_sec']:>9.1f} {r['peak_memory_mb']:>9.0f} "
                f"{r['minutes_for_40k_steps']:>10.1f}"
            )
        report = {"results": rows}
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
                **report,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
