"""The page: a model picker above four tabs (Image, Video, Webcam, Add your own style), and
the ``/stylize`` API endpoint, each event wired to a :mod:`fastnst.app.handlers` method."""

from __future__ import annotations

import gradio as gr

from fastnst.app.core import MAX_SMOOTH
from fastnst.app.finetune import DEFAULT_STEPS, MAX_IMAGES, MAX_STEPS, training_missing
from fastnst.app.handlers import MAX_BLEND, StyleApp, friendly
from fastnst.app.live import CAMERA_SHAPE, DEFAULT_LIVE_SIZE, LIVE_MODEL, LIVE_SIZES
from fastnst.infer.cli import describe_model
from fastnst.infer.temporal_blend import DEFAULT_SMOOTH
from fastnst.runtime.arrays import MAX_STRENGTH

# Up to 1 the photo mixed in; above it the strokes bolder (docs/APP.md).
STRENGTH_LABEL = "Strength (0 = photo, 1 = the model, above = bolder strokes)"

# Gradio's page captures, JPEG-encodes and uploads a camera frame on every tick, whether or
# not the server is still busy with the last one (it keeps only the newest): a 20 ms tick had
# the browser encoding 47 frames/s to have 14 stylized. A 50 ms tick (at most 20 frames/s)
# leaves that CPU to the model: 17.7 frames/s on the page against 15.2 with 40 ms
# (docs/BENCHMARKS.md, "Live webcam"). A stream runs LIVE_SECONDS before it must be restarted.
LIVE_EVERY_S = 0.05
LIVE_SECONDS = 300

# Photos, clips and the API share one concurrency group: each event would otherwise get a
# queue of its own, and a photo sent while a clip ran was stylized beside it.
DEVICE_QUEUE = "device"

CSS = """
#style-gallery .thumbnail-item { aspect-ratio: 1; }
"""


# The video and webcam tabs' steadiness slider: `stylize --input-smooth`.
STEADINESS_LABEL = (
    "Steadiness: how much of the previous frame the model sees, moved along the motion "
    "(steadier strokes; 0 = each frame as it is)"
)


def build(app: StyleApp) -> gr.Blocks:
    """The page and its events; the queue runs ``concurrency`` jobs on the device at once."""
    shelf, limits = app.shelf, app.limits
    first = app.default_model
    names = shelf.style_names(first)
    untrainable = training_missing()
    with gr.Blocks(title="fastnst", delete_cache=(600, 3600)) as page:
        gr.Markdown(
            "# fastnst\nFast neural style transfer: pick a model and a style, stylize a photo "
            "or a clip, or teach the model a new style from your own images."
        )
        with gr.Row(equal_height=True):
            model = gr.Dropdown(shelf.names(), value=first, label="Model", scale=3)
            model_file = gr.UploadButton(
                "Load a .safetensors model", file_types=[".safetensors"], scale=1
            )
        with gr.Accordion("About this model", open=False):
            about = gr.Markdown(f"```\n{describe_model(str(shelf.path(first)))}\n```")

        with gr.Tab("Image", id="image"), gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(
                    type="filepath",
                    label="Photo",
                    sources=["upload", "clipboard"],
                    elem_id="photo",
                    height=320,
                )
                gr.Markdown(limits.images(), elem_id="image-limits")
                gallery = gr.Gallery(
                    shelf.gallery(first),
                    label="Styles (click one)",
                    columns=5,
                    allow_preview=False,
                    height=260,
                    elem_id="style-gallery",
                )
                style = gr.Dropdown(names, value=names[0], label="Style", elem_id="style")
                blend = gr.Checkbox(False, label="Blend several styles (weights below)")
                with gr.Row(visible=False) as blend_box:
                    sliders = [
                        gr.Slider(
                            0,
                            1,
                            0,
                            step=0.05,
                            label=names[i] if i < len(names) else "",
                            visible=i < len(names),
                            min_width=180,
                        )
                        for i in range(MAX_BLEND)
                    ]
            with gr.Column(scale=1):
                with gr.Row():
                    strength = gr.Slider(0, MAX_STRENGTH, 1.0, step=0.05, label=STRENGTH_LABEL)
                    max_size = gr.Slider(
                        0, 4096, 0, step=64, label="Maximum size (long side, px; 0 = as is)"
                    )
                keep_color = gr.Checkbox(False, label="Preserve the photo's colours")
                go = gr.Button("Stylize", variant="primary", elem_id="stylize")
                compare = gr.ImageSlider(
                    label="Before / after (drag the handle)",
                    format="jpeg",
                    elem_id="before-after",
                )
                download = gr.DownloadButton(
                    "Download", visible=False, variant="primary", elem_id="download"
                )
                result_note = gr.Markdown(elem_id="result-note")

        with gr.Tab("Video", id="video"), gr.Row():
            with gr.Column():
                clip = gr.Video(label="Clip", sources=["upload"], elem_id="clip")
                gr.Markdown(limits.videos(), elem_id="video-limits")
                clip_style = gr.Dropdown(names, value=names[0], label="Style")
                clip_strength = gr.Slider(0, MAX_STRENGTH, 1.0, step=0.05, label=STRENGTH_LABEL)
                clip_keep = gr.Checkbox(False, label="Preserve the clip's colours")
                clip_smooth = gr.Slider(
                    0, MAX_SMOOTH, DEFAULT_SMOOTH, step=0.05, label=STEADINESS_LABEL
                )
                clip_go = gr.Button("Stylize the clip", variant="primary")
            with gr.Column():
                clip_out = gr.Video(label="Stylized clip (sound kept)", elem_id="clip-out")
                clip_note = gr.Markdown()

        with gr.Tab("Webcam", id="webcam"), gr.Row():
            with gr.Column():
                camera = gr.Image(
                    sources=["webcam"],
                    streaming=True,
                    type="numpy",
                    label="Camera (press record to start streaming)",
                    elem_id="camera",
                    webcam_options=gr.WebcamOptions(constraints=camera_constraints()),
                )
                live_model = gr.Dropdown(
                    shelf.names(),
                    value=app.live_model,
                    label="Model (this tab's own)",
                    info=f"{LIVE_MODEL} is the one that keeps real time on a CPU",
                    elem_id="live-model",
                )
                live_names = shelf.style_names(app.live_model)
                live_style = gr.Dropdown(live_names, value=live_names[0], label="Style")
                live_size = gr.Radio(
                    list(LIVE_SIZES),
                    value=DEFAULT_LIVE_SIZE,
                    label="Size (long side, px)",
                    info=f"{DEFAULT_LIVE_SIZE} px keeps 15 frames/s with classics-lite on a "
                    "2-core CPU; larger sizes are sharper and slower",
                )
                live_strength = gr.Slider(0, MAX_STRENGTH, 1.0, step=0.05, label=STRENGTH_LABEL)
                live_keep = gr.Checkbox(False, label="Preserve the camera's colours")
                live_smooth = gr.Slider(
                    0, MAX_SMOOTH, DEFAULT_SMOOTH, step=0.05, label=STEADINESS_LABEL
                )
            with gr.Column():
                live_out = gr.Image(
                    label="Stylized", format="jpeg", interactive=False, elem_id="live-out"
                )
                live_note = gr.Markdown(
                    f"Streams stop after {LIVE_SECONDS // 60} minutes; press record again.",
                    elem_id="live-note",
                )
                live_stats = gr.State(None)

        with gr.Tab("Add your own style", id="add-style"), gr.Row():
            with gr.Column():
                style_files = gr.File(
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                    label=f"Style images (1 to {MAX_IMAGES})",
                )
                style_name = gr.Textbox(label="Name of the new style", placeholder="my_sketch")
                steps = gr.Slider(
                    10,
                    MAX_STEPS,
                    DEFAULT_STEPS,
                    step=10,
                    label="Training steps",
                    info=f"{DEFAULT_STEPS} steps: 3 to 5 minutes on a 2-core CPU",
                )
                gr.Markdown(
                    "Only the model's style tables learn (a CIN fine-tune): its other styles "
                    "stay as they are, and the new one is added after them."
                )
                with gr.Row():
                    train_go = gr.Button(
                        "Train the new style", variant="primary", interactive=not untrainable
                    )
                    train_stop = gr.Button("Cancel", variant="stop")
            with gr.Column():
                train_status = gr.Markdown(untrainable or "No training yet.", min_height=60)
                train_preview = gr.Image(
                    label="The sample photo in the new style (refreshes while it trains)",
                    interactive=False,
                    height=240,
                    format="jpeg",
                )
                train_plot = gr.LinePlot(x="step", y="loss", label="Loss", height=200)
                train_download = gr.DownloadButton("Download the model", visible=False)

        # The API: /stylize takes (image, style name, strength[, model]) and returns the
        # stylized image at the input's size.
        with gr.Column(visible=False):
            api_image = gr.Image(type="filepath", label="image")
            api_style = gr.Textbox(label="style", value=names[0])
            api_strength = gr.Number(label="strength", value=1.0)
            api_model = gr.Textbox(label="model", value=first)
            api_out = gr.Image(label="stylized", format="png")
            api_go = gr.Button()

        model_outputs = [gallery, style, clip_style, live_model, about, *sliders]
        model.change(friendly(app.model_changed), model, model_outputs, api_visibility="private")
        model_file.upload(friendly(app.model_uploaded), model_file, model, api_visibility="private")
        live_model.change(
            friendly(app.live_model_changed), live_model, live_style, api_visibility="private"
        )
        gallery.select(friendly(app.gallery_selected), model, style, api_visibility="private")
        blend.change(
            lambda on: gr.update(visible=on),
            blend,
            blend_box,
            api_visibility="private",
            queue=False,
        )
        go.click(
            friendly(app.stylize),
            [model, photo, style, blend, strength, keep_color, max_size, *sliders],
            [compare, download, result_note],
            preprocess=False,
            concurrency_id=DEVICE_QUEUE,
            api_name="stylize_page",
            api_visibility="undocumented",
        )
        api_go.click(
            friendly(app.stylize_api),
            [api_image, api_style, api_strength, api_model],
            api_out,
            preprocess=False,
            concurrency_id=DEVICE_QUEUE,
            api_name="stylize",
        )
        clip_go.click(
            friendly(app.stylize_video),
            [model, clip, clip_style, clip_strength, clip_keep, clip_smooth],
            [clip_out, clip_note],
            preprocess=False,
            concurrency_id=DEVICE_QUEUE,
            api_name="stylize_video",
            api_visibility="undocumented",
        )
        camera.stream(
            friendly(app.live),
            [
                live_model,
                camera,
                live_style,
                live_strength,
                live_keep,
                live_size,
                live_smooth,
                live_stats,
            ],
            [live_out, live_note, live_stats],
            stream_every=LIVE_EVERY_S,
            time_limit=LIVE_SECONDS,
            # Its own queue: frames wait neither for a clip nor for a fine-tune.
            concurrency_limit=1,
            concurrency_id="live",
            show_progress="hidden",
            api_visibility="private",
        )
        train_go.click(
            friendly(app.add_style),
            [model, style_files, style_name, steps],
            [train_status, train_preview, train_plot, train_download, model],
            concurrency_limit=1,
            concurrency_id="train",
            show_progress_on=[train_status],
            api_name="add_style",
            api_visibility="undocumented",
        )
        train_stop.click(
            friendly(app.cancel_training),
            None,
            train_status,
            queue=False,
            api_visibility="private",
        )
    return page


def camera_constraints() -> dict:
    """What the page asks of the camera: no more pixels than the largest live size needs.
    Gradio's default asks for 1920x1440, and the browser then JPEG-encodes and uploads
    frames of that size, which the server decodes only to shrink them."""
    width, height = CAMERA_SHAPE
    return {"video": {"width": {"ideal": width}, "height": {"ideal": height}}}


def device_concurrency(on_gpu: bool) -> int:
    """Jobs at once on the device: one on a CPU (a job already uses every core), two on a
    GPU (one decodes and encodes video on the CPU while the other computes)."""
    return 2 if on_gpu else 1
