"""``fastnst app``: the web app on http://127.0.0.1:7860 (this machine only, unless asked)."""

from __future__ import annotations

import argparse
import atexit
import os
import sys

import gradio as gr

from fastnst.app.core import Limits, ModelShelf, Workspace
from fastnst.app.handlers import StyleApp
from fastnst.app.live import LIVE_MODEL
from fastnst.app.ui import CSS, build, device_concurrency
from fastnst.errors import UserError, check_finite
from fastnst.models import bundled_models
from fastnst.runtime.backends import BACKENDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst app",
        description="The web app: stylize photos and clips, blend styles, add your own style. "
        "Serves http://127.0.0.1:7860 (this machine only) unless told otherwise.",
    )
    parser.add_argument(
        "--model", default="classics", help="a bundled model's name or a .safetensors file"
    )
    parser.add_argument(
        "--live-model",
        help=f"the Webcam tab's model (default {LIVE_MODEL} when bundled, else --model's): "
        "a bundled name or a .safetensors file",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
    parser.add_argument(
        "--share", action="store_true", help="also open a public gradio.live link (off by default)"
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="as fastnst stylize's: auto is torch on a CUDA GPU when installed, else onnxruntime",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    limits = Limits()
    parser.add_argument(
        "--max-upload-mb", type=float, default=limits.upload_mb, help="largest upload (%(default)g)"
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=limits.image_megapixels,
        help="largest photo (%(default)g)",
    )
    parser.add_argument(
        "--max-video-seconds",
        type=float,
        default=limits.video_seconds,
        help="longest clip (%(default)g)",
    )
    parser.add_argument(
        "--max-video-megapixels",
        type=float,
        default=limits.video_megapixels,
        help="largest video frame (%(default)g)",
    )
    return parser


def create(
    model: str,
    limits: Limits | None = None,
    device: str = "auto",
    workspace: Workspace | None = None,
    train_overrides: tuple[str, ...] = (),
    backend: str = "auto",
    live_model: str | None = None,
) -> tuple[StyleApp, gr.Blocks]:
    """The app's state and its page, queued for the device: what ``fastnst app`` serves
    (tests launch it on a free port). ``model`` and ``live_model`` (the Webcam tab's; by
    default :data:`~fastnst.app.live.LIVE_MODEL`, else ``model``) are bundled names or
    model files."""
    workspace = workspace or Workspace()
    shelf = ModelShelf(workspace, device, backend)

    def on_shelf(source: str) -> str:
        return source if source in bundled_models() else shelf.add(source)

    name = on_shelf(model)
    if live_model is None:
        live_model = LIVE_MODEL if LIVE_MODEL in bundled_models() else model
    live = name if live_model == model else on_shelf(live_model)  # one file, one entry
    app = StyleApp(shelf, limits or Limits(), name, train_overrides, live)
    page = build(app)
    concurrency = device_concurrency(shelf.stylizer(name).on_gpu)
    page.queue(default_concurrency_limit=concurrency)
    return app, page


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_finite(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not 1 <= args.port <= 65535:
        print(f"error: --port must be in 1..65535, got {args.port}", file=sys.stderr)
        return 1
    limits = Limits(
        args.max_upload_mb, args.max_megapixels, args.max_video_seconds, args.max_video_megapixels
    )
    if min(limits.upload_mb, limits.image_megapixels, limits.video_seconds) <= 0 or (
        limits.video_megapixels <= 0
    ):
        print("error: the --max-* limits must be positive", file=sys.stderr)
        return 1
    workspace = Workspace()
    # Again at exit: a request still in flight while the server stops may write a file late.
    atexit.register(workspace.close)
    # Gradio's own copies of uploads and results go in the workspace too: all removed at exit.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(workspace.root / "gradio"))
    app = None
    try:
        app, page = create(
            args.model,
            limits,
            args.device,
            workspace,
            backend=args.backend,
            live_model=args.live_model,
        )
        _, local, public = page.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            max_file_size=int(limits.upload_mb * 2**20),
            css=CSS,
            footer_links=["api"],
            prevent_thread_lock=True,
            quiet=True,
        )
        reach = f"public link: {public}" if public else "no public link (--share makes one)"
        print(f"fastnst app: {local} (model {app.default_model}; {reach}); Ctrl-C stops it")
        page.block_thread()
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if app is not None and app.job is not None:
            app.job.cleanup()
        workspace.close()
    return 0
