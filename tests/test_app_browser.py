"""End to end in a real browser: Debian's headless ``chromium`` driven by Selenium through
the system ``chromedriver`` (no browser download) uploads a photo to ``fastnst app``,
stylizes it, downloads the result and checks it is the stylized image at the photo's size;
and streams chromium's fake camera through the Webcam tab, checking that stylized frames
come back to the page. Skips where chromium, chromedriver or Selenium is missing
(``apt-get install chromium chromium-driver``)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_app import STYLES, as_array, direct, style
from test_app_served import free_port

from conftest import perturbed_model

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as visible  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from fastnst.app.cli import create  # noqa: E402
from fastnst.app.core import Workspace  # noqa: E402
from fastnst.app.live import CAMERA_SHAPE, DEFAULT_LIVE_SIZE, shrink_frame  # noqa: E402

WATCH_S = 10.0  # how long the webcam test watches the stream
# The webcam test's model: the tests' tiny network unless this names another (a bundled one
# for a benchmark: docs/BENCHMARKS.md, "Live webcam").
LIVE_MODEL = os.environ.get("FASTNST_LIVE_MODEL")
# Counts the stylized images the page displays: every new ``src`` of the output's <img>.
COUNT_SHOWN_JS = """
window.fastnstShown = 0;
new MutationObserver(changes => {
  for (const change of changes) {
    if (change.target.tagName === "IMG" && change.target.closest("#live-out")) {
      window.fastnstShown += 1;
    }
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["src"]});
"""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromedriver: apt-get install chromium chromium-driver",
)


def chromium(downloads: Path, camera: bool = False):
    """Headless chromium that saves downloads into ``downloads`` without asking; with
    ``camera``, its fake camera (a moving test pattern) granted without a prompt."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    if camera:
        options.add_argument("--use-fake-ui-for-media-stream")
        options.add_argument("--use-fake-device-for-media-stream")
    options.add_argument("--window-size=1400,1300")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return driver


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return perturbed_model(tmp_path / "tiny.safetensors", STYLES, scale=0.3)


@pytest.fixture
def tiny_photo(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:90, 0:120]
    array = np.stack([x * 2.0, y * 2.5, 100 + 120 * ((x // 30 + y // 30) % 2)], axis=-1)
    path = tmp_path / "street.png"
    Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(path)
    return path


def test_upload_stylize_download_in_chromium(model: Path, tiny_photo: Path, tmp_path: Path):
    workspace = Workspace(tmp_path)
    _, page = create(str(model), workspace=workspace, device="cpu")
    _, url, _ = page.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium(downloads)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        upload = wait.until(
            visible.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]"))
        )
        upload.send_keys(str(tiny_photo))
        wait.until(visible.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
        # Pick the second style by its gallery tile, as a user would.
        tiles = wait.until(
            visible.presence_of_all_elements_located((By.CSS_SELECTOR, "#style-gallery button"))
        )
        [tile for tile in tiles if tile.text.strip() == STYLES[1]][0].click()
        wait.until(
            lambda d: (
                STYLES[1] in d.find_element(By.CSS_SELECTOR, "#style input").get_attribute("value")
            )
        )
        driver.find_element(By.CSS_SELECTOR, "#stylize").click()
        button = wait.until(visible.visibility_of_element_located((By.CSS_SELECTOR, "#download")))
        assert "street_rust.png" in button.text
        button.click()
        deadline = time.monotonic() + 30
        while not list(downloads.glob("*.png")) and time.monotonic() < deadline:
            time.sleep(0.2)
        files = list(downloads.glob("*.png"))
        assert [f.name for f in files] == ["street_rust.png"]
        with Image.open(files[0]) as result:
            assert result.size == (120, 90)  # the photo's own size
            got = as_array(result)
        assert np.array_equal(got, direct(model, tiny_photo, style(1)))
        assert np.abs(got - as_array(Image.open(tiny_photo))).mean() > 10  # stylized
    finally:
        driver.quit()
        page.close()
        workspace.close()


def shown_image(driver, url: str, selector: str) -> tuple[str, np.ndarray] | None:
    """The ``src`` of the image in ``selector`` and its pixels (a data URI or a file the
    server serves), or None while there is none."""
    found = driver.find_elements(By.CSS_SELECTOR, f"{selector} img")
    src = found[0].get_attribute("src") if found else None
    if not src:
        return None
    if src.startswith("data:"):
        data = base64.b64decode(src.partition("base64,")[2])
    else:
        with urllib.request.urlopen(src if "://" in src else url.rstrip("/") + src) as reply:
            data = reply.read()
    return src, as_array(Image.open(io.BytesIO(data)))


def as_jpeg(image: np.ndarray) -> np.ndarray:
    """``image`` after a JPEG round trip at PIL's default quality, as Gradio saves an output
    image whose format is ``"jpeg"``."""
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, "JPEG")
    return as_array(Image.open(buffer))


def click_button(driver, root: str, *labels: str) -> bool:
    """Click the first visible button under ``root`` whose text or aria-label holds one of
    ``labels`` (case-insensitive); False if there is none yet (or the page re-rendered the
    buttons while they were read: the next poll finds the new ones)."""
    try:
        for button in driver.find_elements(By.CSS_SELECTOR, f"{root} button"):
            text = f"{button.text} {button.get_attribute('aria-label') or ''}".lower()
            if button.is_displayed() and any(label in text for label in labels):
                button.click()
                return True
    except StaleElementReferenceException:
        pass
    return False


@pytest.mark.slow
def test_webcam_tab_streams_stylized_frames_in_chromium(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Chromium's fake camera through the Webcam tab: the page shows a stream of images
    that are the server's stylized frames (not the camera's), at the tab's default size,
    and the frames/s readout is filled in. Prints the rates the server stylized and the
    page displayed (the checks poll lightly: they share the CPU with what they measure)."""
    import fastnst.app.handlers as handlers

    served: list[tuple[np.ndarray, int, np.ndarray]] = []  # (camera frame, size, stylized)
    lock = threading.Lock()
    real = handlers.stylize_frame

    def recorded(stylizer, frame, weights, size, *rest):
        out = real(stylizer, frame, weights, size, *rest)
        with lock:
            served.append((frame, size, out))
        return out

    monkeypatch.setattr(handlers, "stylize_frame", recorded)
    workspace = Workspace(tmp_path)
    live = LIVE_MODEL or str(model)
    _, page = create(live, workspace=workspace, device="cpu", live_model=live)
    _, url, _ = page.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    driver = chromium(tmp_path, camera=True)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_SHOWN_JS})
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        tab = wait.until(
            lambda d: [
                t
                for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                if t.text.strip() == "Webcam"
            ]
        )
        tab[0].click()
        # Gradio asks for the camera on a click, then offers Record (chromium's fake UI
        # grants the permission without a prompt).
        wait.until(lambda d: click_button(d, "#camera", "access webcam"))
        try:
            wait.until(lambda d: click_button(d, "#camera", "record"))
        except Exception:
            buttons = driver.find_elements(By.CSS_SELECTOR, "#camera button")
            labels = [(b.text, b.get_attribute("aria-label"), b.is_displayed()) for b in buttons]
            raise AssertionError(f"no record button in the camera box: {labels}") from None
        wait.until(lambda d: len(served) >= 3 and shown_image(d, url, "#live-out"))
        started, count_before = time.monotonic(), len(served)
        shown_before = driver.execute_script("return window.fastnstShown")
        sources, checked = set(), 0
        while time.monotonic() - started < WATCH_S:
            src, pixels = shown_image(driver, url, "#live-out")
            if src not in sources:
                sources.add(src)
                with lock:
                    recent = [run for run in served[-30:] if run[2].shape == pixels.shape]
                # The page's image is one the server made, as Gradio's JPEG encoding left it
                # (the nearest few served frames, compressed the same way), and it is not the
                # camera frame it came from.
                raw = [np.abs(pixels - out).mean() for _, _, out in recent]
                nearest = [recent[i] for i in np.argsort(raw)[:3]]
                distances = [np.abs(pixels - as_jpeg(out)).mean() for _, _, out in nearest]
                assert distances and min(distances) < 1, (distances, sorted(raw)[:3])
                cam, size, _ = nearest[int(np.argmin(distances))]
                assert np.abs(pixels - shrink_frame(cam, size)).mean() > 20
                checked += 1
            time.sleep(0.5)
        seconds = time.monotonic() - started
        rate = (len(served) - count_before) / seconds
        shown = (driver.execute_script("return window.fastnstShown") - shown_before) / seconds
        note = driver.find_element(By.CSS_SELECTOR, "#live-note").text
        print(
            f"webcam tab ({LIVE_MODEL or 'tiny test network'}): {rate:.1f} frames/s stylized, "
            f"{shown:.1f} frames/s displayed by the page; readout: {note}"
        )
        assert checked >= 3 and len(sources) >= 3  # a stream, not one picture
        assert rate / 2 < shown < rate * 1.2  # the page displays what it is sent
        assert max(served[-1][2].shape[:2]) == DEFAULT_LIVE_SIZE
        assert "frames/s" in note and "ms a frame" in note
        # The camera sends what the page asks for, not Gradio's default 1920x1440 (which
        # the browser JPEG-encoded and the server decoded only to shrink it).
        assert {cam.shape for cam, _, _ in served} == {(CAMERA_SHAPE[1], CAMERA_SHAPE[0], 3)}
        # The readout is the rate the page gets (smoothed over the last frames).
        shown_rate = float(re.search(r"([\d.]+) frames/s", note).group(1))
        assert rate / 2 < shown_rate < rate * 2, (shown_rate, rate)
    finally:
        click_button(driver, "#camera", "stop")
        driver.quit()
        page.close()
        workspace.close()
