"""What the page's events do: the app's state shared by all sessions (:class:`StyleApp`) and
one handler per event, over :mod:`fastnst.app.core`, :mod:`fastnst.app.live` and
:mod:`fastnst.app.finetune`. A user error becomes a message on the page (never a
traceback); an unexpected one is logged on the server and reported in one line."""

from __future__ import annotations

import functools
import inspect
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from fastnst.app.core import (
    Limits,
    ModelShelf,
    Workspace,
    blend_spec,
    check_smooth,
    check_strength,
    number,
    one_style,
    safe_name,
    stylize_clip,
    stylize_photo,
)
from fastnst.app.finetune import MAX_STEPS, StyleJob
from fastnst.app.live import LiveStats, stylize_frame
from fastnst.errors import UserError
from fastnst.files import atomic_write
from fastnst.infer.cli import describe_model, out_of_gpu_memory
from fastnst.infer.temporal_blend import VideoStream
from fastnst.models import bundled_models

log = logging.getLogger("fastnst.app")

MAX_BLEND = 24  # blend sliders on the page; a model's styles past this are not blendable here
PREVIEW_SIZE = 1024  # long side of the before/after preview; the download is full size
POLL_S = 1.0


def friendly(fn: Callable) -> Callable:
    """Run a handler so that the user sees a one-line message for any failure: the message
    of a user error, or the kind of an unexpected one (its traceback goes to the log)."""

    def report(exc: BaseException) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, (UserError, OSError)):
            return gr.Error(str(exc), print_exception=False)
        if out_of_gpu_memory(exc):
            return gr.Error("out of GPU memory: lower the maximum size", print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(
            f"unexpected error ({type(exc).__name__}: {exc}); the server log has the details",
            print_exception=False,
        )

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise report(exc) from None

        return generator

    @functools.wraps(fn)
    def plain(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise report(exc) from None

    return plain


def upload(value: Any, what: str) -> tuple[Path, str]:
    """An unprocessed file input (Gradio's file data, a video's wrapper, or a path) as
    the server's path and the name the user gave it; none is a user error."""
    if isinstance(value, dict) and isinstance(value.get("video"), dict):
        value = value["video"]
    if isinstance(value, dict) and value.get("path"):
        path = Path(value["path"])
        return path, value.get("orig_name") or path.name
    if isinstance(value, (str, Path)) and str(value):
        return Path(value), Path(value).name
    raise UserError(f"upload {what} first")


def preview(image: Image.Image) -> Image.Image:
    small = image.copy()
    small.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
    return small


def duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


class StyleApp:
    """The app's state shared by all sessions: the models, the workspace, the limits, and the
    one fine-tune that may run at a time."""

    def __init__(
        self,
        shelf: ModelShelf,
        limits: Limits,
        default_model: str,
        train_overrides=(),
        live_model: str | None = None,
    ) -> None:
        self.shelf = shelf
        self.workspace: Workspace = shelf.workspace
        self.limits = limits
        self.default_model = default_model
        self.live_model = live_model or default_model
        self.train_overrides = tuple(train_overrides)
        self.job: StyleJob | None = None
        self._job_lock = threading.Lock()

    # Model picker ------------------------------------------------------------------------

    def model_changed(self, model: str) -> list[Any]:
        """Everything that depends on the model: gallery, style choices, blend sliders, info,
        and the Webcam tab's model choices (a model uploaded or trained joins them; the tab
        keeps its own model)."""
        names = self.shelf.style_names(model)
        gallery = self.shelf.gallery(model)
        sliders = [
            gr.update(visible=i < len(names), label=names[i] if i < len(names) else "", value=0)
            for i in range(MAX_BLEND)
        ]
        about = f"```\n{describe_model(str(self.shelf.path(model)))}\n```"
        styles = [gr.update(choices=names, value=names[0]) for _ in range(2)]
        return [gallery, *styles, gr.update(choices=self.shelf.names()), about, *sliders]

    def live_model_changed(self, model: str) -> Any:
        """The Webcam tab's style choices follow its own model."""
        names = self.shelf.style_names(model)
        return gr.update(choices=names, value=names[0])

    def model_uploaded(self, path: str | None) -> Any:
        """A refused file is a warning, not an error: the model picker stays usable."""
        try:
            if not path:
                raise UserError("upload a .safetensors model file")
            name = self.shelf.add(path)
        except UserError as exc:
            gr.Warning(str(exc))
            return gr.skip()
        gr.Info(f"model {name} loaded: {len(self.shelf.style_names(name))} styles")
        return gr.update(choices=self.shelf.names(), value=name)

    def gallery_selected(self, model: str, event: gr.SelectData) -> str:
        return self.shelf.style_names(model)[event.index]

    # Image tab -----------------------------------------------------------------------------

    def stylize(
        self,
        model: str,
        photo: Any,
        style: str,
        blend: bool,
        strength: float,
        keep_color: bool,
        max_size: float,
        *weights: float,
    ) -> tuple[Any, Any, str]:
        path, name = upload(photo, "a photo")
        spec = style
        if blend:
            spec = blend_spec(self.shelf.style_names(model), list(weights))
        started = time.perf_counter()
        before, after = stylize_photo(
            self.shelf.stylizer(model),
            path,
            spec,
            strength,
            keep_color,
            int(number(max_size or 0, "max size", 0, 1e6)),
            self.limits,
            name,
        )
        seconds = time.perf_counter() - started
        label = safe_name(spec.replace(":", "-").replace(",", "_"))
        target = self.workspace.job_dir("photo") / f"{safe_name(Path(name).stem)}_{label}.png"
        atomic_write(target, lambda tmp: after.save(tmp, format="PNG"))
        engine = self.shelf.stylizer(model).engine
        note = f"{after.width}×{after.height} px, {spec}, {seconds:.1f} s, {engine}"
        return (
            (preview(before), preview(after)),
            gr.update(value=str(target), visible=True, label=f"Download {target.name}"),
            note,
        )

    def stylize_api(self, photo: Any, style: str, strength: float, model: str) -> Image.Image:
        """``/stylize``: (image, style name, strength) → the stylized image, input size."""
        path, name = upload(photo, "an image")
        model = model or self.default_model
        stylizer = self.shelf.stylizer(model)
        return stylize_photo(stylizer, path, style, strength, False, 0, self.limits, name)[1]

    # Video tab -----------------------------------------------------------------------------

    def stylize_video(
        self,
        model: str,
        video: Any,
        style: str,
        strength: float,
        keep_color: bool,
        smooth: float | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's way to inject it
    ) -> tuple[str, str]:
        """The video tab: ``smooth`` is the steadiness slider (``stylize --input-smooth``)."""
        path, name = upload(video, "a video")
        target = self.workspace.job_dir("video") / f"{safe_name(Path(name).stem)}_{style}.mp4"
        progress(0.0, desc="starting")
        started = time.perf_counter()
        frames = stylize_clip(
            self.shelf.stylizer(model),
            path,
            target,
            style,
            strength,
            keep_color,
            self.limits,
            lambda done, total: progress((done, total), desc="frames", unit="frames"),
            name,
            smooth,
        )
        seconds = time.perf_counter() - started
        return str(target), f"{frames} frames in {duration(seconds)} ({frames / seconds:.1f}/s)"

    # Webcam tab ------------------------------------------------------------------------------

    def live(
        self,
        model: str,
        frame: Any,
        style: str,
        strength: float,
        keep_color: bool,
        size: int,
        smooth: float,
        stats: LiveStats | None,
    ) -> tuple[Any, Any, LiveStats]:
        """One streamed camera frame → the stylized frame and, when due, the rate this
        viewer gets (else the readout is left as it is). ``smooth`` is the steadiness
        slider (``stylize --input-smooth``)."""
        stats = stats or LiveStats()
        if frame is None:
            return gr.skip(), "waiting for the camera", stats
        stylizer = self.shelf.stylizer(model)
        strength, keep_color = check_strength(strength), bool(keep_color)
        key = (model, check_smooth(smooth), style, strength, keep_color)
        # Another look starts afresh: the blend would carry the old one for a few frames.
        if stats.stream is None or stats.stream_key != key:
            stats.stream = VideoStream(stylizer.recurrent, smooth=key[1])
            stats.stream_key = key
        started = time.perf_counter()
        out = stylize_frame(
            stylizer,
            frame,
            one_style(stylizer, style),
            int(number(size, "size", 16, 4096)),
            strength,
            keep_color,
            stats.stream,
        )
        seconds = time.perf_counter() - started
        readout = stats.record(seconds, out.shape, stylizer.engine)
        return out, gr.skip() if readout is None else readout, stats

    # Add your own style tab ------------------------------------------------------------------

    def add_style(
        self,
        model: str,
        files: list[str] | None,
        style_name: str,
        steps: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's way to inject it
    ):
        """Train the new style in a subprocess; every second, show its step, loss curve and
        preview; at the end put the extended model on the shelf and select it."""
        images = [(Path(f), Path(f).name) for f in files or []]
        base = self.shelf.path(model)
        # A bundled model goes by its name: the training resolves it as `fastnst train` does.
        source = model if bundled_models().get(model) == base else base
        with self._job_lock:
            if self.job is not None and self.job.running:
                raise UserError("a style is already training; wait for it or cancel it")
            folder = self.workspace.job_dir("style")
            try:
                count = int(number(steps, "steps", 1, MAX_STEPS))
                job = StyleJob(source, style_name, images, folder, count, self.train_overrides)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            job.start()
            self.job = job
        skip = gr.skip()
        try:
            while job.running:
                state = job.poll()
                if state.step:
                    loss = f"loss {state.loss:.3f}" if state.loss is not None else "training"
                    progress((state.step, state.steps), desc=loss, unit="steps")
                else:
                    progress(0.0, desc="starting the training (loading VGG-19, style images)")
                status = self._training_status(job, state)
                yield status, self._preview(state), self._plot(state), skip, skip
                time.sleep(POLL_S)
            state = job.poll()
            # Written in the job's folder, then shelved under a name no other model has.
            made = job.finish(job.folder / f"{safe_name(f'{model}-{job.style_name}')}.safetensors")
            new_name = self.shelf.add(made, made.stem)
            path = self.shelf.path(new_name)
            done = (
                f"**Done**: {job.style_name} trained in {state.steps} steps "
                f"({duration(state.seconds)}); the model **{new_name}** now has it and is "
                "selected above."
            )
            download = gr.update(value=str(path), visible=True, label=f"Download {path.name}")
            model_pick = gr.update(choices=self.shelf.names(), value=new_name)
            yield done, self._preview(state), self._plot(state), download, model_pick
        finally:
            job.cleanup()

    def _training_status(self, job: StyleJob, state) -> str:
        if not state.step:
            return f"Starting the training of **{job.style_name}** …"
        left = state.seconds / state.step * (state.steps - state.step)
        loss = f"{state.loss:.3f}" if state.loss is not None else "–"
        return (
            f"Training **{job.style_name}**: step {state.step} / {state.steps}, loss {loss}, "
            f"{duration(state.seconds)} so far, about {duration(left)} left"
        )

    @staticmethod
    def _preview(state) -> Image.Image | None:
        """The preview in memory: the file is replaced while training and removed after."""
        if state.preview is None:
            return None
        try:
            with Image.open(state.preview) as image:
                return image.convert("RGB")
        except OSError:
            return None

    @staticmethod
    def _plot(state) -> pd.DataFrame:
        rows = [(step, round(loss, 2)) for step, loss in state.losses or []]
        return pd.DataFrame(rows, columns=["step", "loss"])

    def cancel_training(self) -> str:
        job = self.job
        if job is None or not job.running:
            return "No training is running."
        job.cancel()
        return "Training cancelled."
