"""The served app (as `fastnst app --model tiny.safetensors` serves it): the ``/stylize`` API
through gradio_client, its errors, the one queue photos and clips share, and the page's
handlers on the running app."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from test_app import STYLES, as_array, direct, model, photo, style
from test_infer_video import _make_clip

from fastnst.app.core import Workspace, stylize_clip, stylize_photo

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from fastnst.app.cli import create  # noqa: E402
from fastnst.app.handlers import friendly  # noqa: E402

__all__ = ["model", "photo"]  # fixtures from test_app, used here by name


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
    with pytest.raises(gr.Error, match="strength must be between 0 and 2, got nan"):
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
        0.7,
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
