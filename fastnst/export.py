"""The shareable model file: one ``.safetensors`` with the network weights and a JSON header.

Loading goes through safetensors alone, so opening a model file never unpickles anything.
``fastnst export CKPT`` turns a training checkpoint into such a file.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import save_file

from fastnst.errors import run_main
from fastnst.files import atomic_write
from fastnst.model import NetConfig, TransformerNet
from fastnst.modelfile import (  # noqa: F401 - re-exported: the names callers import from here
    FORMAT_NAME,
    FORMAT_VERSION,
    ModelFileError,
    ModelInfo,
    non_finite,
    read_model_file,
)


def save_model(
    net: TransformerNet,
    path: str | Path,
    info: ModelInfo,
    verify: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``net`` and ``info`` to ``path`` atomically; with ``verify``, reload and check
    that the file reproduces the network's output exactly before keeping it.

    ``dtype=torch.float16`` halves the file (bundled models); loading always gives fp32
    weights, and the check then compares with the network's fp16-rounded weights."""
    path = Path(path)
    if len(info.style_names) != net.num_styles:
        raise ValueError(f"{len(info.style_names)} style names for {net.num_styles} styles")
    info.net = net.config.to_dict()
    info.created = info.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    state = {k: v.detach().cpu().to(dtype).contiguous() for k, v in net.state_dict().items()}
    broken = non_finite({k: v.float().numpy() for k, v in state.items()})
    if broken:
        raise ModelFileError(
            f"not writing {path}: the network has NaN or infinite weights ({broken}); "
            "training diverged (lower the learning rate or the loss weights)"
        )
    # The check runs on the CPU in fp32 whatever device trained the network: a GPU's TF32
    # convolutions (cuDNN's default) differ from fp32 by ~1e-3, far above the check's 1e-5,
    # and that difference says nothing about the file.
    reference = copy.deepcopy(net).to("cpu", torch.float32)
    if dtype != torch.float32:
        reference.load_state_dict({k: v.float() for k, v in state.items()})

    def write(tmp: Path) -> None:
        save_file(state, str(tmp), metadata={FORMAT_NAME: info.to_json()})
        if verify:
            _check_same_output(reference, load_model(tmp)[0])

    atomic_write(path, write)
    return path


@torch.no_grad()
def _check_same_output(original: TransformerNet, reloaded: TransformerNet) -> None:
    probe = torch.rand(1, 3, 37, 45, generator=torch.Generator().manual_seed(0))
    styles = torch.arange(original.num_styles) % original.num_styles
    was_training = original.training
    original.eval()
    try:
        for style in styles.tolist():
            a = original(probe, style)
            b = reloaded(probe, style)
            if not torch.allclose(a, b, atol=1e-5, rtol=0):
                raise RuntimeError(
                    f"exported model differs from the trained one (max {(a - b).abs().max():.2e})"
                )
    finally:
        original.train(was_training)


def read_info(path: str | Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """Parse a model file (:func:`fastnst.modelfile.read_model_file`) with torch weights."""
    info, arrays = read_model_file(path)
    state = {key: torch.from_numpy(value.copy()) for key, value in arrays.items()}
    _check_weights(Path(path), info, state)
    return info, state


def _check_weights(path: Path, info: ModelInfo, state: dict[str, torch.Tensor]) -> None:
    """The header's network fits the stored tensors, checked on the meta device (no memory)
    before anything is built: a header claiming width 1000 would otherwise allocate tens of
    GB. (The residual count and finite weights are checked by
    :func:`fastnst.modelfile.read_model_file`.)"""
    try:
        with torch.device("meta"):
            skeleton = TransformerNet(NetConfig(**info.net))
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has a damaged network description ({exc})") from None
    mismatch = _state_mismatch(skeleton.state_dict(), state)
    if mismatch:
        raise ModelFileError(f"{path}: weights do not match the architecture ({mismatch})")


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[TransformerNet, ModelInfo]:
    """Build the network a model file describes, in eval mode, on ``device``."""
    info, state = read_info(path)
    net = TransformerNet(NetConfig(**info.net))
    net.load_state_dict(state, strict=True)
    return net.to(device).eval(), info


def _state_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """One short line on how ``found`` differs from ``expected`` ("" if it does not), instead
    of torch's listing of every key."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = [k for k in expected if k in found and found[k].shape != expected[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if extra:
        parts.append(f"{len(extra)} unexpected, e.g. {extra[0]}")
    if shapes:
        key = shapes[0]
        parts.append(
            f"{len(shapes)} of another shape, e.g. {key}: {list(found[key].shape)} in the file, "
            f"{list(expected[key].shape)} in the network"
        )
    return "; ".join(parts)


def add_styles(
    base: str | Path,
    addition: str | Path,
    output: str | Path,
    thumbnails: dict[str, str] | None = None,
) -> Path:
    """Write ``base``'s styles followed by ``addition``'s as one model file at ``output``.

    ``addition`` must be a CIN fine-tune of ``base`` (``finetune=cin``: the same convolutions,
    only the γ/β tables trained), so a style is one more row of each table and ``base``'s
    styles stay exactly as they were. ``thumbnails`` (name → a small image as a data URI)
    go into ``extra["style_thumbnails"]`` for apps that show styles by their image."""
    base_net, base_info = load_model(base)
    new_net, new_info = load_model(addition)
    clash = sorted(set(base_info.style_names) & set(new_info.style_names))
    if clash:
        raise ModelFileError(f"{base} already has a style named {', '.join(clash)}")
    base_state, new_state = base_net.state_dict(), new_net.state_dict()
    tables = (".gamma", ".beta")
    shared = [k for k in base_state if not k.endswith(tables)]
    if (base_net.config.width, base_net.config.num_residual) != (
        new_net.config.width,
        new_net.config.num_residual,
    ) or not all(torch.equal(base_state[k], new_state[k]) for k in shared):
        raise ModelFileError(f"{addition} is not a CIN fine-tune of {base}: other convolutions")
    names = [*base_info.style_names, *new_info.style_names]
    merged = TransformerNet(NetConfig(**{**base_net.config.to_dict(), "num_styles": len(names)}))
    merged.load_state_dict(
        {
            k: torch.cat((v, new_state[k])) if k.endswith(tables) else v
            for k, v in base_state.items()
        }
    )
    extra = copy.deepcopy(base_info.extra)
    sources = extra.setdefault("style_sources", {})
    sources.update(new_info.extra.get("style_sources") or {})
    for name in new_info.style_names:
        sources.setdefault(name, f"added by a CIN fine-tune of {Path(base).name}")
    added = extra.setdefault("added_styles", {})
    for name in new_info.style_names:
        added[name] = new_info.extra.get("provenance") or {"steps": new_info.steps}
    if thumbnails:
        extra.setdefault("style_thumbnails", {}).update(thumbnails)
    info = dataclasses.replace(base_info, style_names=names, extra=extra, created="")
    stored = next(iter(read_info(base)[1].values())).dtype  # fp16 in the bundled models
    return save_model(merged, output, info, dtype=stored)


def export_checkpoint(ckpt_path: str | Path, output: str | Path | None = None) -> Path:
    """Export a Lightning training checkpoint (its ``fastnst`` block) to a model file."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise ModelFileError(f"checkpoint not found: {ckpt_path}")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch's many reasons all mean "not loadable safely"
        raise ModelFileError(
            f"{ckpt_path} is not a PyTorch checkpoint that loads safely (weights only)"
        ) from None
    if not isinstance(ckpt, dict) or "fastnst" not in ckpt:
        raise ModelFileError(f"{ckpt_path} is a checkpoint, but not one written by fastnst train")
    block = ckpt["fastnst"]
    net = TransformerNet(NetConfig(**block["net"]))
    prefix = "net."
    net.load_state_dict(
        {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    )
    info = ModelInfo(**{**block["info"], "steps": int(ckpt.get("global_step", 0))})
    output = Path(output) if output else ckpt_path.with_suffix(".safetensors")
    return save_model(net, output, info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastnst export",
        description="Export a checkpoint to a model file, and a model to ONNX/TorchScript.",
    )
    parser.add_argument("checkpoint", help="Lightning .ckpt from training, or a .safetensors model")
    parser.add_argument(
        "-o",
        "--output",
        help="model file to write (default: beside the .ckpt); from a model file, the one "
        "--onnx or --torchscript file",
    )
    parser.add_argument("--onnx", nargs="?", const="", help="also write ONNX (default: beside it)")
    parser.add_argument(
        "--torchscript", nargs="?", const="", help="also write TorchScript .pt (default: beside it)"
    )
    args = parser.parse_args(argv)
    try:
        source = Path(args.checkpoint)
        if source.suffix == ".safetensors":
            if args.onnx is None and args.torchscript is None:
                raise ModelFileError(f"{source} is a model file already: add --onnx/--torchscript")
            if args.output:  # -o names the one runtime file asked for
                if args.onnx is not None and args.torchscript is not None:
                    raise ModelFileError(
                        "-o names one file: give the paths as --onnx PATH --torchscript PATH"
                    )
                if args.onnx or args.torchscript:
                    raise ModelFileError("give the output once: -o or --onnx/--torchscript PATH")
                if args.onnx is not None:
                    args.onnx = args.output
                else:
                    args.torchscript = args.output
            path = source
        else:
            path = export_checkpoint(source, args.output)
            print(f"exported model: {path}")
        if args.onnx is not None or args.torchscript is not None:
            from fastnst.export_runtimes import export_onnx, export_torchscript

            net, _ = load_model(path)
            if args.onnx is not None:
                print(f"exported onnx: {export_onnx(net, args.onnx or path.with_suffix('.onnx'))}")
            if args.torchscript is not None:
                script = args.torchscript or path.with_suffix(".pt")
                print(f"exported torchscript: {export_torchscript(net, script)}")
    except (ModelFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main("export", main))
