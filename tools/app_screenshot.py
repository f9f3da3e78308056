"""The README's screenshot of ``fastnst app`` (docs/app.png), taken in headless chromium.

Start the app first (``fastnst app``), then:

    python tools/app_screenshot.py coffee.png docs/app.png --blend starry_night:0.6,the_scream:0.4

It uploads the photo, sets the blend sliders, stylizes, and saves the page at 1300 px wide,
scaled by 0.85 and reduced to 256 colours (a docs image stays under 300 KB). Needs Debian's
chromium and chromedriver and the ``selenium`` package (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import io
import shutil
import time

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait


def screenshot(url: str, photo: str, blend: dict[str, float]) -> Image.Image:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--hide-scrollbars", "--window-size=1300,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 120)
        wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]")))
        driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(photo)
        time.sleep(2)
        driver.find_element(By.XPATH, "//label[contains(., 'Blend several')]//input").click()
        time.sleep(1)
        for style, weight in blend.items():
            box = driver.find_element(
                By.XPATH,
                f"//div[contains(@class,'block')][.//*[normalize-space(text())='{style}']]"
                "//input[@type='number']",
            )
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(str(weight), Keys.TAB)
        driver.find_element(By.CSS_SELECTOR, "#stylize").click()
        wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, "#download")))
        time.sleep(2)
        return Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("output")
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--blend", default="starry_night:0.6,the_scream:0.4")
    args = parser.parse_args()
    blend = {k: float(v) for k, _, v in (p.partition(":") for p in args.blend.split(","))}
    page = screenshot(args.url, str(args.photo), blend)
    page = page.resize((round(page.width * 0.85), round(page.height * 0.85)), Image.LANCZOS)
    page.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
