"""The live page of ``edgeclf serve`` in a real headless Chromium (Debian's ``chromium`` + ``chromedriver``).

A generated video alternates between two photos the model labels differently; the page must show
the frame with the label drawn over it, and the label must change when the picture does. The
screenshot is kept (``$EDGECLF_SCREENSHOT_DIR``, else the test's temporary folder) to be looked at.
"""

import os
import shutil
import time

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver are not installed (make browser)"
)
pytest.importorskip("selenium", reason="selenium (the dev extra) drives the browser")
pytest.importorskip("starlette", reason="the serve extra (starlette, uvicorn) is not installed")
pytest.importorskip("cv2", reason="OpenCV (the camera extra) writes the test video")

from helpers.serve import ServeProcess, two_labelled_frames, write_video  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

TOKEN = "page-token"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,700",
)


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The page keeps fetching frames, so it never looks "loaded" to ChromeDriver's default strategy.
    options.page_load_strategy = "eager"
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait_text(driver, element_id, accept, timeout=30.0):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element(By.ID, element_id).text
        if accept(text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"#{element_id} still shows {text!r} after {timeout} s")


def _wait_frame_width(driver, timeout=10.0):
    deadline = time.monotonic() + timeout
    width = 0
    while time.monotonic() < deadline:
        width = driver.execute_script(
            "const f = document.getElementById('frame'); return f.complete ? f.naturalWidth : 0"
        )
        if width:
            return width
        time.sleep(0.05)
    return width


def test_the_live_page_shows_the_frame_and_the_label_changes_with_the_picture(serve_run, browser, tmp_path):
    (label_a, frame_a), (label_b, frame_b) = two_labelled_frames(serve_run)
    video = write_video(tmp_path / "scene.avi", ([frame_a] * 40 + [frame_b] * 40) * 3, fps=20)
    args = ["--source", str(video), "--loop", "--max-fps", "20", "--hold", "2", "--threads", "1", "--token", TOKEN]
    with ServeProcess(serve_run, *args) as server:
        browser.get(f"{server.url}/?token={TOKEN}")
        first = _wait_text(browser, "label", lambda t: t in (label_a, label_b))
        other = label_b if first == label_a else label_a
        _wait_text(browser, "label", lambda t: t == other)
        _wait_text(browser, "fps", lambda t: t.endswith("fps") and float(t.split()[0]) > 0)
        # The page reloads the frame every ~100 ms and a loading <img> reports naturalWidth 0, so
        # wait for a loaded one: a broken image never reaches 320.
        assert _wait_frame_width(browser) == 320  # the frame itself is shown, not a broken image
        changes = browser.find_elements(By.CSS_SELECTOR, "#changes li")
        assert changes and other in changes[0].text  # the newest change is listed first
        shot = tmp_path / "live-page.png"
        assert browser.save_screenshot(str(shot))
        keep = os.environ.get("EDGECLF_SCREENSHOT_DIR")
        if keep:
            shutil.copy(shot, os.path.join(keep, "live-page.png"))
        assert shot.stat().st_size > 10_000


def test_without_the_token_the_page_is_refused(serve_run, browser):
    with ServeProcess(serve_run, "--token", TOKEN, "--threads", "1") as server:
        browser.get(f"{server.url}/")
        assert "token" in browser.find_element(By.TAG_NAME, "body").text
