"""End to end in a real browser: Debian's headless ``chromium`` driven by Selenium through
the system ``chromedriver`` (no browser download) uploads a photo to ``fastnst app``,
stylizes it, downloads the result and checks it is the stylized image at the photo's size.
Skips where chromium, chromedriver or Selenium is missing (``apt-get install chromium
chromium-driver``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import perturbed_model
from PIL import Image
from test_app import STYLES, as_array, direct, free_port

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as visible  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from fastnst.app.cli import create  # noqa: E402
from fastnst.app.core import Workspace  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromedriver: apt-get install chromium chromium-driver",
)


def chromium(downloads: Path):
    """Headless chromium that saves downloads into ``downloads`` without asking."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
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
        assert np.array_equal(got, direct(model, tiny_photo, torch.eye(3)[1]))
        assert np.abs(got - as_array(Image.open(tiny_photo))).mean() > 10  # stylized
    finally:
        driver.quit()
        page.close()
        workspace.close()
