"""The web app in-process: its handlers (photo, blend, limits, bad files, models, gallery,
video, the new-style fine-tune, the webcam tab); the served app: test_app_served.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
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
from fastnst.infer import video as video_module
from fastnst.infer.temporal_blend import DEFAULT_SMOOTH
from fastnst.model import TransformerNet
from fastnst.runtime.arrays import array_to_pil, pil_to_array
from fastnst.runtime.backends import load_stylizer

from conftest import perturbed_model

gr = pytest.importorskip("gradio")

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
    with pytest.raises(UserError, match="steadiness must be between 0 and 0.9, got 0.95"):
        stylize_clip(stylizer, clip, tmp_path / "d.mp4", "ink", smooth=0.95)
    assert not (tmp_path / "d.mp4").exists()


def test_the_steadiness_slider_is_the_input_smoothing(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The video tab's steadiness: None is `stylize --video`'s default smoothing, 0 shows
    the model each frame as it is (the first frame is the same, later ones are not).
    Encoded losslessly: x264's lossy decisions on this noise clip differ now and then
    between runs given the same frames (measured: 2 runs in 25), the frames do not."""
    monkeypatch.setattr(video_module, "stylize_video", partial(video_module.stylize_video, crf=0))
    stylizer = on_cpu(model)
    clip = _make_clip(tmp_path / "in.mp4")
    made = {}
    for label, smooth in (("default", None), ("same", DEFAULT_SMOOTH), ("off", 0.0)):
        stylize_clip(stylizer, clip, tmp_path / f"{label}.mp4", "sea", smooth=smooth)
        made[label] = _frames(tmp_path / f"{label}.mp4").astype(np.int16)
    np.testing.assert_array_equal(made["default"], made["same"])
    assert np.abs(made["default"][0] - made["off"][0]).mean() < 1
    assert np.abs(made["default"][1:] - made["off"][1:]).mean() > 0.5


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
out, count = app.stylize_video("tiny", clip, "sea", 1.0, False, 0.7, lambda *a, **k: None)
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
        out, note, stats = app.live("tiny", frame, "ink", 1.0, False, 240, 0.7, stats)
        notes.append(note)
    assert out.shape == (180, 240, 3)
    assert notes[0].startswith("starting") and "240×180 px" in notes[0]
    # The readout is not re-sent for every frame (the page would re-render it each time)...
    assert all(note == gr.skip() for note in notes[1:])
    # ...but once it is due again it carries the rate.
    stats.shown_at -= READOUT_EVERY_S
    out, note, stats = app.live("tiny", frame, "ink", 1.0, False, 240, 0.7, stats)
    assert "frames/s" in note and "onnxruntime on CPU" in note
    assert isinstance(stats, LiveStats) and stats.frames == 5
    assert app.shelf.stylizer("tiny").spin is False  # the browser's CPU is left to it
    none = app.live("tiny", frame, "ink", 0.0, False, 240, 0.7, stats)[0]
    assert np.abs(none.astype(np.int16) - shrink_frame(frame, 240)).max() <= 1  # strength 0
    with pytest.raises(gr.Error, match="unknown style"):
        friendly(app.live)("tiny", frame, "nope", 1.0, False, 240, 0.7, stats)
    # The steadiness slider is the stream's input smoothing; moving it, or any slider that
    # changes the look, starts afresh (the blend would carry the old look).
    stats = app.live("tiny", frame, "ink", 1.0, False, 240, 0.7, stats)[2]
    stream = stats.stream
    assert stream is not None and stream.smooth.beta == 0.7
    stats = app.live("tiny", frame, "ink", 1.0, False, 240, 0.7, stats)[2]
    assert stats.stream is stream  # the same settings keep the stream
    stats = app.live("tiny", frame, "ink", 1.0, False, 240, 0.0, stats)[2]
    assert stats.stream is not stream and stats.stream.smooth.beta == 0.0
    stream = stats.stream
    stats = app.live("tiny", frame, "ink", 0.5, False, 240, 0.0, stats)[2]
    assert stats.stream is not stream
    with pytest.raises(gr.Error, match="steadiness must be between 0 and 0.9"):
        friendly(app.live)("tiny", frame, "ink", 1.0, False, 240, 2.0, stats)


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
    out = app.live(LIVE_MODEL, frame, lite_styles[0], 1.0, False, 240, 0.7, None)[0]
    assert np.abs(out.astype(np.int16) - shrink_frame(frame, 240)).mean() > 10
    app.shelf.add(model, "later")
    updates = app.model_changed("tiny")
    live_choices = [u for u in updates if isinstance(u, dict) and "later" in u.get("choices", [])]
    assert live_choices and "value" not in live_choices[0]  # the tab keeps its own model
    same, _ = create(str(model), workspace=workspace, device="cpu", live_model=str(model))
    assert same.live_model == same.default_model  # one file, one shelf entry


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
