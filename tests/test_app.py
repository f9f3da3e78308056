"""The web app in-process: its handlers (photo, blend, limits, bad files, models, gallery,
video, the new-style fine-tune) and the ``/stylize`` API through gradio_client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import perturbed_model
from PIL import Image
from safetensors.torch import save_file
from test_infer_video import _describe, _frames, _make_clip
from test_training import TINY

from fastnst.app.core import (
    Limits,
    ModelShelf,
    Workspace,
    image_from_uri,
    stylize_clip,
    stylize_photo,
    thumbnail_uri,
)
from fastnst.app.finetune import NEEDS_TRAINING, StyleJob
from fastnst.app.live import (
    DEFAULT_LIVE_SIZE,
    LIVE_MODEL,
    READOUT_EVERY_S,
    LiveStats,
    shrink_frame,
    stylize_frame,
)
from fastnst.cli import main
from fastnst.data.textures import universe_textures
from fastnst.errors import UserError
from fastnst.export import ModelFileError, ModelInfo, add_styles, load_model, save_model
from fastnst.images import tensor_to_pil
from fastnst.model import TransformerNet
from fastnst.runtime.arrays import array_to_pil, pil_to_array
from fastnst.runtime.backends import load_stylizer

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from fastnst.app.cli import create  # noqa: E402
from fastnst.app.handlers import friendly  # noqa: E402

STYLES = ["ink", "rust", "sea"]
# Tiny fine-tune runs: the tiny network of the training tests, three steps at 32 px.
TINY_TRAIN = (
    *(o for o in TINY if not o.startswith(("style.", "model.net.", "trainer.max_steps"))),
    "trainer.max_steps=3",
    "callbacks.progress.every_n_steps=1",
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    return perturbed_model(folder / "tiny.safetensors", STYLES, scale=0.3)


@pytest.fixture
def workspace(tmp_path: Path):
    space = Workspace(tmp_path)
    yield space
    space.close()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 70x45 photo-like image (smooth colours and an edge), so stylizing visibly changes it."""
    y, x = np.mgrid[0:45, 0:70]
    array = np.stack([x * 3.5, y * 5.0, 128 + 100 * (x > 35)], axis=-1).clip(0, 255)
    path = tmp_path / "photo.png"
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def on_cpu(model: Path):
    """The model as ``fastnst stylize --device cpu`` loads it (onnxruntime)."""
    return load_stylizer(model, "auto", "cpu")


def style(index: int) -> np.ndarray:
    return np.eye(len(STYLES), dtype=np.float32)[index]


def direct(model: Path, photo: Path, weights: np.ndarray) -> np.ndarray:
    """What ``fastnst stylize`` computes for ``photo``: the reference for the app's output."""
    out = on_cpu(model)(pil_to_array(Image.open(photo))[None], weights)
    return as_array(array_to_pil(out))


# Photos ------------------------------------------------------------------------------------------


def test_photo_is_stylized_at_full_size_like_the_cli(model: Path, photo: Path) -> None:
    before, after = stylize_photo(on_cpu(model), photo, "rust")
    assert after.size == before.size == (70, 45)
    assert np.array_equal(as_array(after), direct(model, photo, style(1)))
    assert np.abs(as_array(after) - as_array(before)).mean() > 10  # not the photo


def test_blend_strength_and_max_size(model: Path, photo: Path) -> None:
    stylizer = on_cpu(model)
    _, blend = stylize_photo(stylizer, photo, "ink:3,sea:1")
    blended = np.array([0.75, 0, 0.25], np.float32)
    assert np.array_equal(as_array(blend), direct(model, photo, blended))
    before, none = stylize_photo(stylizer, photo, "ink", strength=0.0)
    assert np.array_equal(as_array(none), as_array(before))
    small_before, small = stylize_photo(stylizer, photo, "ink", max_size=35)
    assert small.size == small_before.size == (35, 22)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"this is not an image", "cannot read image holiday.jpg"), (b"", "empty file")],
)
def test_bad_photo_is_a_message_naming_the_upload(
    model: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "tmp123" / "upload.jpg"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as caught:
        stylize_photo(on_cpu(model), path, "ink", name="holiday.jpg")
    assert "tmp123" not in str(caught.value)  # the server's path is not shown


def test_photo_over_the_pixel_limit_is_refused(model: Path, photo: Path) -> None:
    with pytest.raises(UserError, match="over the limit"):
        stylize_photo(on_cpu(model), photo, "ink", limits=Limits(image_megapixels=1e-3))


def test_workspace_sweeps_old_jobs_and_closes_empty(tmp_path: Path) -> None:
    space = Workspace(tmp_path, max_age_s=60)
    old, fresh = space.job_dir("photo"), space.job_dir("photo")
    (old / "result.png").write_bytes(b"x")
    stale = time.time() - 120
    os.utime(old, (stale, stale))
    newest = space.job_dir("video")  # making a job sweeps the stale ones
    assert sorted(space.jobs.iterdir()) == sorted([fresh, newest])
    space.close()
    assert list(tmp_path.iterdir()) == []


# Models and the gallery --------------------------------------------------------------------------


def test_shelf_validates_uploaded_models(model: Path, workspace: Workspace, tmp_path: Path) -> None:
    shelf = ModelShelf(workspace, "cpu")
    assert "classics" in shelf.names()
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(foreign))
    with pytest.raises(UserError, match="not a fastnst model"):
        shelf.add(foreign)
    not_safetensors = tmp_path / "notes.txt"
    not_safetensors.write_text("hello")
    with pytest.raises(UserError, match="not a .safetensors model"):
        shelf.add(not_safetensors)
    first, second = shelf.add(model), shelf.add(model)
    assert (first, second) == ("tiny", "tiny-2")
    assert shelf.style_names(second) == STYLES
    assert shelf.path(first).parent == workspace.models


def test_command_line_bad_model_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["app", "--model", str(tmp_path / "nope.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: model not found") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_gallery_uses_carried_style_images_else_the_sample(
    model: Path, workspace: Workspace, tmp_path: Path
) -> None:
    net, info = load_model(model)
    red = Image.new("RGB", (50, 30), (220, 20, 20))
    info.extra["style_thumbnails"] = {"rust": thumbnail_uri(red)}
    carrying = save_model(net, tmp_path / "carrying.safetensors", info)
    shelf = ModelShelf(workspace, "cpu")
    tiles = shelf.gallery(shelf.add(carrying))
    assert [name for _, name in tiles] == STYLES
    assert np.abs(as_array(tiles[1][0]) - [220, 20, 20]).max() <= 6  # the carried image
    assert tiles[0][0].size == tiles[2][0].size == (160, 160)
    assert np.abs(as_array(tiles[0][0]) - as_array(tiles[2][0])).mean() > 5  # two styles
    assert image_from_uri(info.extra["style_thumbnails"]["rust"]).size == (160, 160)


def _cin_only(model: Path, path: Path, names: list[str]) -> Path:
    """A model with ``model``'s convolutions and new γ/β rows: a stand-in CIN fine-tune."""
    base, _ = load_model(model)
    config = base.config.__class__(**{**base.config.to_dict(), "num_styles": len(names)})
    net = TransformerNet(config)
    state = base.state_dict()
    torch.manual_seed(5)
    net.load_state_dict(
        {
            k: (v[: len(names)] + 0.3 * torch.randn_like(v[: len(names)]))
            if k.endswith((".gamma", ".beta"))
            else v
            for k, v in state.items()
        }
    )
    return save_model(net, path, ModelInfo(net={}, style_names=names))


def test_add_styles_appends_rows_and_keeps_the_old_styles(model: Path, tmp_path: Path) -> None:
    addition = _cin_only(model, tmp_path / "add.safetensors", ["chalk"])
    merged = add_styles(model, addition, tmp_path / "merged.safetensors", {"chalk": "data:x"})
    net, info = load_model(merged)
    assert info.style_names == [*STYLES, "chalk"]
    assert info.extra["style_thumbnails"] == {"chalk": "data:x"}
    base, _ = load_model(model)
    new, _ = load_model(addition)
    probe = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        for index in range(3):
            assert torch.allclose(net(probe, index), base(probe, index), atol=1e-6)
        assert torch.allclose(net(probe, 3), new(probe, 0), atol=1e-6)
    with pytest.raises(ModelFileError, match="already has a style named ink"):
        add_styles(model, _cin_only(model, tmp_path / "dup.safetensors", ["ink"]), tmp_path / "x")
    other = perturbed_model(tmp_path / "other.safetensors", ["chalk"], scale=0.3, seed=9)
    with pytest.raises(ModelFileError, match="not a CIN fine-tune"):
        add_styles(model, other, tmp_path / "y.safetensors")


# Video -------------------------------------------------------------------------------------------


def test_clip_is_stylized_with_sound_and_progress(model: Path, tmp_path: Path) -> None:
    clip = _make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mp4"
    seen: list[tuple[int, int]] = []
    count = stylize_clip(
        on_cpu(model), clip, out, "sea", on_frames=lambda d, t: seen.append((d, t))
    )
    assert count == _describe(clip)["frames"] == _describe(out)["frames"]
    assert _describe(out)["audio"] == 1
    assert seen[-1] == (count, count) and len(seen) > 1
    assert np.abs(_frames(out).astype(np.int16) - _frames(clip)).mean() > 20


def test_clip_limits_and_corrupt_video_are_messages(model: Path, tmp_path: Path) -> None:
    stylizer = on_cpu(model)
    clip = _make_clip(tmp_path / "in.mp4")  # 12 frames at 15 fps, 64x48
    with pytest.raises(UserError, match=r"0\.8 s long; this app takes clips up to 0\.5 s"):
        stylize_clip(stylizer, clip, tmp_path / "a.mp4", "ink", limits=Limits(video_seconds=0.5))
    with pytest.raises(UserError, match="64×48"):
        stylize_clip(
            stylizer, clip, tmp_path / "b.mp4", "ink", limits=Limits(video_megapixels=0.001)
        )
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(UserError, match="party.mp4"):
        stylize_clip(stylizer, broken, tmp_path / "c.mp4", "ink", name="party.mp4")
    assert not (tmp_path / "c.mp4").exists()


# The new-style fine-tune -------------------------------------------------------------------------


def test_style_job_refuses_bad_names_and_files(model: Path, tmp_path: Path, photo: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for name, images, message in [
        ("rust", [(photo, "p.png")], "already has a style named rust"),
        ("two words", [(photo, "p.png")], "name the style"),
        ("chalk", [], "upload at least one image"),
        ("chalk", [(text, "sketch.png")], "cannot read image sketch.png"),
    ]:
        with pytest.raises(UserError, match=message):
            StyleJob(model, name, images, tmp_path / name.replace(" ", "_") / "job")


def test_cancelled_style_job_adds_nothing(model: Path, tmp_path: Path, photo: Path) -> None:
    job = StyleJob(model, "chalk", [(photo, "p.png")], tmp_path / "job", 500, TINY_TRAIN)
    job.start()
    time.sleep(1.0)
    job.cancel()
    assert not job.running
    with pytest.raises(UserError, match="cancelled"):
        job.finish(tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_add_style_handler_trains_and_extends_the_model(
    model: Path, workspace: Workspace, photo: Path
) -> None:
    """The tab's whole path with a 3-step run: progress while it trains, then the model with
    the new style on the shelf, selected, loadable by the stylize command, the old styles
    unchanged and the new one starting from the mean row and trained away from it."""
    app, _ = create(str(model), workspace=workspace, device="cpu", train_overrides=TINY_TRAIN)
    updates = list(app.add_style("tiny", [str(photo)], "chalk", 3, lambda *a, **k: None))
    status, preview, plot, download, pick = updates[-1]
    assert "Done" in status and "tiny-chalk" in status
    assert isinstance(preview, Image.Image)
    assert list(plot["step"])[-1] == 3
    path = Path(download["value"])
    assert pick["value"] == "tiny-chalk" and "tiny-chalk" in app.shelf.names()
    net, info = load_model(path)
    assert info.style_names == [*STYLES, "chalk"]
    assert info.extra["style_thumbnails"]["chalk"].startswith("data:image/jpeg;base64,")
    base, _ = load_model(model)
    table = net.state_dict()["encoder.0.norm.gamma"]
    old = base.state_dict()["encoder.0.norm.gamma"]
    assert torch.equal(table[:3], old)
    assert not torch.allclose(table[3], old.mean(dim=0), atol=1e-4)  # it trained
    assert list(workspace.jobs.iterdir()) == []  # the run's folder is gone


def test_without_the_training_extras_the_tab_says_so_in_one_line(
    model: Path, workspace: Workspace, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastnst.app.finetune as finetune

    monkeypatch.setattr(finetune, "TRAINING_MODULES", ("torch", "no_such_module_here"))
    app, page = create(str(model), workspace=workspace, device="cpu")
    shown = [c.value for c in page.blocks.values() if isinstance(c, gr.Markdown)]
    assert NEEDS_TRAINING in shown and "\n" not in NEEDS_TRAINING
    with pytest.raises(gr.Error, match=r"pip install 'fastnst\[train\]'"):
        list(friendly(app.add_style)("tiny", [str(photo)], "chalk", 3, lambda *a, **k: None))
    assert list(workspace.jobs.iterdir()) == []


# Image and video tabs without torch --------------------------------------------------------------

NO_TORCH = """
import sys
from pathlib import Path
from fastnst.app.cli import create
from fastnst.app.core import Workspace

model, photo, clip, folder = sys.argv[1:]
workspace = Workspace(folder)
app, _ = create(model, device="cpu", workspace=workspace)
_, download, note = app.stylize("tiny", photo, "rust", False, 1.0, False, 0)
assert Path(download["value"]).is_file() and "onnxruntime" in note, note
out, count = app.stylize_video("tiny", clip, "sea", 1.0, False, lambda *a, **k: None)
assert Path(out).is_file() and count.startswith("12 frames"), count
print(sorted(name for name in sys.modules if name.partition(".")[0] == "torch"))
"""


def test_app_stylizes_photos_and_clips_without_importing_torch(
    model: Path, photo: Path, tmp_path: Path
) -> None:
    """The app's image and video handlers on the default backend of a CPU (onnxruntime),
    in a fresh interpreter: torch is installed here, and must not be imported."""
    clip = _make_clip(tmp_path / "clip.mp4")
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(model), str(photo), str(clip), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# The webcam tab ----------------------------------------------------------------------------------


def test_live_frame_is_shrunk_then_stylized_like_the_cli(model: Path) -> None:
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    stylizer = on_cpu(model)
    out = stylize_frame(stylizer, frame, style(2), DEFAULT_LIVE_SIZE)
    assert out.shape == (240, 320, 3) and out.dtype == np.uint8
    small = shrink_frame(frame, DEFAULT_LIVE_SIZE)
    expected = stylizer(pil_to_array(Image.fromarray(small))[None], style(2))
    assert np.array_equal(out, np.asarray(array_to_pil(expected)))
    assert np.abs(out.astype(np.int16) - small).mean() > 10  # stylized, not the camera
    assert shrink_frame(frame[:100, :120], DEFAULT_LIVE_SIZE).shape == (100, 120, 3)  # kept


def test_live_handler_streams_frames_and_reports_the_rate(model: Path, workspace: Workspace):
    app, _ = create(str(model), workspace=workspace, device="cpu")
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 320:] = 200
    stats = None
    notes = []
    for _ in range(4):
        out, note, stats = app.live("tiny", frame, "ink", 1.0, False, 240, stats)
        notes.append(note)
    assert out.shape == (180, 240, 3)
    assert notes[0].startswith("starting") and "240×180 px" in notes[0]
    # The readout is not re-sent for every frame (the page would re-render it each time)...
    assert all(note == gr.skip() for note in notes[1:])
    # ...but once it is due again it carries the rate.
    stats.shown_at -= READOUT_EVERY_S
    out, note, stats = app.live("tiny", frame, "ink", 1.0, False, 240, stats)
    assert "frames/s" in note and "onnxruntime on CPU" in note
    assert isinstance(stats, LiveStats) and stats.frames == 5
    assert app.shelf.stylizer("tiny").spin is False  # the browser's CPU is left to it
    none = app.live("tiny", frame, "ink", 0.0, False, 240, stats)[0]
    assert np.abs(none.astype(np.int16) - shrink_frame(frame, 240)).max() <= 1  # strength 0
    with pytest.raises(gr.Error, match="unknown style"):
        friendly(app.live)("tiny", frame, "nope", 1.0, False, 240, stats)


def test_webcam_tab_has_its_own_model_defaulting_to_the_real_time_one(
    model: Path, workspace: Workspace
) -> None:
    """The page's model (here a file) is not the camera's: the Webcam tab starts on the
    bundled small network, follows its own picker, and offers models added later."""
    app, _ = create(str(model), workspace=workspace, device="cpu")
    assert app.default_model == "tiny" and app.live_model == LIVE_MODEL
    lite_styles = app.shelf.style_names(LIVE_MODEL)
    assert app.live_model_changed(LIVE_MODEL)["choices"] == lite_styles
    assert app.live_model_changed("tiny")["choices"] == app.shelf.style_names("tiny")
    frame = np.full((240, 320, 3), 120, np.uint8)
    out = app.live(LIVE_MODEL, frame, lite_styles[0], 1.0, False, 240, None)[0]
    assert np.abs(out.astype(np.int16) - shrink_frame(frame, 240)).mean() > 10
    app.shelf.add(model, "later")
    updates = app.model_changed("tiny")
    live_choices = [u for u in updates if isinstance(u, dict) and "later" in u.get("choices", [])]
    assert live_choices and "value" not in live_choices[0]  # the tab keeps its own model
    same, _ = create(str(model), workspace=workspace, device="cpu", live_model=str(model))
    assert same.live_model == same.default_model  # one file, one shelf entry


# The served app and its /stylize API -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The app on a free local port (as `fastnst app --model tiny.safetensors` serves it)."""
    workspace = Workspace(tmp_path_factory.mktemp("served"))
    app, page = create(str(model), workspace=workspace, device="cpu")
    _, url, _ = page.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    yield app, Client(url, verbose=False)
    page.close()
    workspace.close()


def test_stylize_api_returns_the_stylized_image_at_the_input_size(
    served, model: Path, photo: Path
) -> None:
    _, client = served
    result = client.predict(handle_file(str(photo)), "sea", 1.0, api_name="/stylize")
    with Image.open(result) as image:
        assert image.size == (70, 45)
        assert np.array_equal(as_array(image), direct(model, photo, style(2)))
    half = client.predict(handle_file(str(photo)), "sea", 0.5, api_name="/stylize")
    full, original = as_array(Image.open(result)), as_array(Image.open(photo))
    assert np.abs(as_array(Image.open(half)) - (full + original) / 2).max() <= 1.5


def test_api_reports_bad_input_and_keeps_serving(served, tmp_path: Path, photo: Path) -> None:
    _, client = served
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"GIF89a but not really")
    with pytest.raises(Exception, match="cannot read image junk.png"):
        client.predict(handle_file(str(junk)), "sea", 1.0, api_name="/stylize")
    with pytest.raises(Exception, match="unknown style 'nope'"):
        client.predict(handle_file(str(photo)), "nope", 1.0, api_name="/stylize")
    assert Path(client.predict(handle_file(str(photo)), "ink", 1.0, api_name="/stylize")).is_file()


def test_api_names_the_bad_field(served, photo: Path) -> None:
    """Whatever a client sends as a number (text, null, NaN) is one line naming the field."""
    app, client = served
    for strength, said in (("abc", "'abc'"), (None, "None")):
        with pytest.raises(Exception, match=f"strength must be a number, got {said}"):
            client.predict(handle_file(str(photo)), "sea", strength, api_name="/stylize")
    # NaN cannot travel as JSON: the handler itself gets it from other clients
    with pytest.raises(gr.Error, match="strength must be between 0 and 1, got nan"):
        friendly(app.stylize_api)(str(photo), "sea", float("nan"), "")
    with pytest.raises(gr.Error, match="steps must be between 1 and"):
        list(friendly(app.add_style)(app.default_model, [str(photo)], "new", float("nan")))


def test_a_photo_waits_for_a_running_clip(
    served, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Photos, clips and the API share the device's one queue (on a CPU, one job at a time):
    a photo sent while a clip runs starts after it."""
    import fastnst.app.handlers as handlers

    app, client = served
    clip = _make_clip(tmp_path / "clip.mp4", frames=4, audio=False)
    active, most = [0], [0]
    lock = threading.Lock()

    def counted(work):
        def run(*args, **kwargs):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(0.5)  # the photo request arrives while this runs
            try:
                return work(*args, **kwargs)
            finally:
                with lock:
                    active[0] -= 1

        return run

    monkeypatch.setattr(handlers, "stylize_clip", counted(stylize_clip))
    monkeypatch.setattr(handlers, "stylize_photo", counted(stylize_photo))
    video = client.submit(
        app.default_model,
        handle_file(str(clip)),
        "sea",
        1.0,
        False,
        api_name="/stylize_video",
    )
    time.sleep(0.2)
    image = client.submit(handle_file(str(photo)), "ink", 1.0, api_name="/stylize")
    assert Path(image.result(timeout=120)).is_file()
    assert Path(video.result(timeout=120)[0]).is_file()
    assert most[0] == 1


def test_requests_during_a_job_are_queued_not_lost(
    served, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six requests at once on a CPU queue: they run one at a time, every one is answered."""
    import fastnst.app.handlers as handlers

    _, client = served
    active, most = [0], [0]
    lock = threading.Lock()

    def one_at_a_time(*args, **kwargs):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)  # long enough for the others to arrive while this one runs
        try:
            return stylize_photo(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(handlers, "stylize_photo", one_at_a_time)
    jobs = [
        client.submit(handle_file(str(photo)), STYLES[i % 3], 1.0, api_name="/stylize")
        for i in range(6)
    ]
    results = [job.result(timeout=120) for job in jobs]
    images = [as_array(Image.open(r)) for r in results]
    assert all(image.shape == (45, 70, 3) for image in images)
    assert np.array_equal(images[0], images[3]) and not np.array_equal(images[0], images[1])
    assert most[0] == 1


def test_page_model_upload_warns_on_a_foreign_file(served, model: Path, tmp_path: Path) -> None:
    app, _ = served
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    with pytest.warns(UserWarning, match="foreign.safetensors is a safetensors file but not"):
        assert app.model_uploaded(str(foreign)) == gr.skip()  # the picker stays as it was
    update = app.model_uploaded(str(model))
    assert update["value"] in update["choices"] and app.shelf.style_names(update["value"]) == STYLES


def test_page_handlers_blend_and_offer_a_full_size_download(served, photo: Path) -> None:
    app, _ = served
    upload = {"path": str(photo), "orig_name": "cat.png"}
    weights = [0.5, 0.0, 0.5]
    (before, after), download, note = app.stylize(
        "tiny", upload, "ink", True, 1.0, False, 0, *weights
    )
    path = Path(download["value"])
    assert path.name == "cat_ink-0.5_sea-0.5.png" and "70×45" in note
    with Image.open(path) as saved:
        assert saved.size == (70, 45)
        assert np.array_equal(as_array(saved), as_array(after))
    page_stylize = friendly(app.stylize)  # as the page calls it: errors become messages
    with pytest.raises(gr.Error, match="move at least one blend slider"):
        page_stylize("tiny", upload, "ink", True, 1.0, False, 0, 0.0, 0.0, 0.0)
    with pytest.raises(gr.Error, match="upload a photo first"):
        page_stylize("tiny", None, "ink", False, 1.0, False, 0)


@pytest.mark.slow
def test_default_new_style_of_classics_ends_within_ten_minutes(
    workspace: Workspace, tmp_path: Path
) -> None:
    """The tab's defaults as a user gets them: classics, one image (the procedural punk
    comic texture), 200 steps. Run alone on the 2-core CPU: docs/APP.md has the time."""
    style_image = tmp_path / "comic.png"
    tensor_to_pil(universe_textures("punk", size=384, seed=0)[0]).save(style_image)
    app, _ = create("classics", workspace=workspace, device="cpu")
    started = time.monotonic()
    updates = list(
        app.add_style("classics", [str(style_image)], "comic", 200, lambda *a, **k: None)
    )
    seconds = time.monotonic() - started
    status, _, plot, download, pick = updates[-1]
    assert "Done" in status and pick["value"] == "classics-comic"
    assert seconds < 600, f"{seconds:.0f} s"
    losses = list(plot["loss"])
    assert np.mean(losses[-3:]) < np.mean(losses[:3])  # it learned the style
    _, info = load_model(download["value"])
    assert info.style_names[-1] == "comic" and len(info.style_names) == 10
