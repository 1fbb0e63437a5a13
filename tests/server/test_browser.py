"""The page in a real headless Chromium (Debian's chromium + chromium-driver through selenium): it loads, a slider
move changes the image, an interpolation GIF downloads. Skipped when no browser is installed (.ci/run installs one).

    python tests/server/test_browser.py docs/serve-page.png      # the screenshot in docs/
"""

from __future__ import annotations

import base64
import io
import shutil
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                        "chromium-driver; .ci/run does)")]

# the image currently shown, as base64 of its bytes (the page keeps it as a blob: URL)
IMAGE_BYTES_JS = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById('main').src).then(r => r.arrayBuffer()).then(buf => {
  let s = ''; for (const b of new Uint8Array(buf)) s += String.fromCharCode(b); done(btoa(s));
}).catch(e => done('error: ' + e));
"""


def make_driver(download_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1180,760",
                "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.set_script_timeout(60)
    return driver


def wait_until(predicate, what: str, seconds: float = 60):
    deadline = time.time() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def version(driver) -> int:
    return int(driver.find_element("id", "main").get_attribute("data-version") or 0)


def image_bytes(driver) -> bytes:
    data = driver.execute_async_script(IMAGE_BYTES_JS)
    assert not data.startswith("error"), data
    return base64.b64decode(data)


def open_page(driver, base: str, model: str | None = "gigagan-emoji64") -> None:
    driver.get(f"{base}/?model={model}" if model else f"{base}/")
    wait_until(lambda: version(driver) >= 1, "the first image")
    wait_until(lambda: len(driver.find_elements("css selector", "#seed-strip img")) == 8, "the seed strip")


def move_slider(driver, slider_id: str, presses: int, key: str) -> None:
    """Focus a range input and press arrow keys, as a person using the keyboard does (each press = one `input`)."""
    from selenium.webdriver.common.keys import Keys

    el = driver.find_element("id", slider_id)
    el.send_keys(*([getattr(Keys, key)] * presses))


@pytest.fixture(scope="module")
def page(models, tmp_path_factory):
    from serverfx import live_server

    from fastt2i.server import ServerConfig, create_app

    downloads = tmp_path_factory.mktemp("downloads")
    with live_server(create_app(models, ServerConfig())) as base:
        driver = make_driver(downloads)
        try:
            yield driver, base, downloads
        finally:
            driver.quit()


def test_page_loads_and_a_slider_move_changes_the_image(page):
    from PIL import Image

    driver, base, _ = page
    open_page(driver, base)
    assert "error" not in driver.find_element("id", "status").get_attribute("class")
    before, v0 = image_bytes(driver), version(driver)
    with Image.open(io.BytesIO(before)) as im:
        assert im.format == "PNG" and im.size == (64, 64)
    move_slider(driver, "psi", 10, "LEFT")  # psi 1.0 -> 0.5, ten input events
    wait_until(lambda: driver.find_element("css selector", 'output[for="psi"]').text == "0.50", "the psi label")
    wait_until(lambda: "truncation" in driver.find_element("id", "status").text, "the truncation render")
    after = image_bytes(driver)
    assert version(driver) > v0 and after != before
    move_slider(driver, "alpha", 15, "RIGHT")  # prompt interpolation to the end: "blue heart"
    wait_until(lambda: "prompt interpolation" in driver.find_element("id", "status").text, "the interpolation")
    wait_until(lambda: driver.find_element("css selector", 'output[for="alpha"]').text == "1.00", "alpha 1")
    prompt_end = image_bytes(driver)
    assert prompt_end not in (before, after)
    seed_slider = driver.find_element("id", "seed-alpha")
    assert seed_slider.is_enabled()  # a GAN: fastt2i.editing.seed_interpolation
    move_slider(driver, "seed-alpha", 8, "RIGHT")  # seed A -> seed B, half-way
    wait_until(lambda: "seed interpolation" in driver.find_element("id", "status").text, "the seed interpolation")
    assert "error" not in driver.find_element("id", "status").get_attribute("class")
    assert image_bytes(driver) not in (before, after, prompt_end)


def test_interpolation_gif_downloads(page):
    from PIL import Image

    driver, base, downloads = page
    open_page(driver, base, "stylegan-t-emoji64")
    driver.find_element("id", "download-gif").click()
    gif = wait_until(lambda: next((p for p in downloads.glob("*.gif") if p.stat().st_size > 0), None), "the GIF")
    wait_until(lambda: not list(downloads.glob("*.crdownload")), "the download to finish")
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.size == (64, 64) and im.n_frames == 30  # 16 frames + 14 back (boomerang)


def test_paella_controls_and_inpainting_canvas(page):
    driver, base, _ = page
    open_page(driver, base, "paella-emoji64")
    assert driver.find_element("id", "gan-controls").get_attribute("hidden") is not None
    assert driver.find_element("id", "mask-canvas").is_displayed()
    before, v0 = image_bytes(driver), version(driver)
    move_slider(driver, "steps", 10, "LEFT")  # 12 -> 2 sampler steps
    wait_until(lambda: driver.find_element("css selector", 'output[for="steps"]').text == "2", "steps 2")
    wait_until(lambda: version(driver) > v0 and "sampler" in driver.find_element("id", "status").text, "a resample")
    assert image_bytes(driver) != before
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "mask-canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, -40, -40).click_and_hold().move_by_offset(80, 80) \
        .release().perform()
    v1 = version(driver)
    driver.find_element("id", "inpaint").click()
    wait_until(lambda: version(driver) > v1, "the inpainted image")
    assert "inpainting" in driver.find_element("id", "status").text
    assert "error" not in driver.find_element("id", "status").get_attribute("class")


def screenshot(path: str) -> None:
    """Save a screenshot of the page as it opens (stylegan-t-emoji64), psi 0.7, half-way from "red heart" to "blue
    heart", to `path`."""
    sys.path.insert(0, str(Path(__file__).parent))
    from serverfx import live_server

    from fastt2i.server import ServerConfig, create_app, load_models

    with live_server(create_app(load_models(), ServerConfig())) as base:
        driver = make_driver(Path(path).parent)
        try:
            open_page(driver, base, model=None)
            move_slider(driver, "psi", 6, "LEFT")
            move_slider(driver, "alpha", 8, "RIGHT")
            wait_until(lambda: "prompt interpolation" in driver.find_element("id", "status").text, "the render")
            time.sleep(0.5)
            right, bottom = driver.execute_script(
                "const v = document.getElementById('view').getBoundingClientRect(),"
                " c = document.getElementById('controls').getBoundingClientRect();"
                " return [Math.ceil(v.right) + 16, Math.ceil(Math.max(v.bottom, c.bottom)) + 16];")
            raw = driver.get_screenshot_as_png()
        finally:
            driver.quit()
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:  # cropped to the content; a 256-colour palette keeps the PNG small
        im.convert("RGB").crop((0, 0, min(right, im.width), min(bottom, im.height))).quantize(colors=256).save(
            path, optimize=True)


if __name__ == "__main__":
    screenshot(sys.argv[1] if len(sys.argv) > 1 else "docs/serve-page.png")
