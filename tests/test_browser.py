"""The real page in headless Chromium, with a fake webcam playing real photos over WebRTC.

Chromium plays a .y4m video (written here from ../shared photos) as its camera; the app runs in a
`streamlit run` subprocess with no ICE servers (loopback). Slow (about a minute): marked `browser`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from harness.app_server import serve_app
from harness.browser import CHROMIUM, Page, launch, skip_without_chromium
from harness.webcam import read_y4m, write_y4m

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chromium() -> Path:
    skip_without_chromium()
    return CHROMIUM


@pytest.fixture(scope="module")
def videos(photos, tmp_path_factory) -> dict[str, Path]:
    """One fake-webcam video per hand gesture, from its first-half photos (uploads use the second half)."""
    folder = tmp_path_factory.mktemp("webcam")
    return {
        label: write_y4m(folder / f"{label}.y4m", [Image.open(p) for p in photos[label][:60:6]], frames_per_image=5)
        for label in ("rock", "paper")
    }


@pytest.fixture(scope="module")
def app_url(chromium):
    """`streamlit run app.py` on a free port, for this module's tests."""
    for server in serve_app():
        yield server.url


def test_fake_webcam_video_is_valid_y4m(videos):
    info, frames = read_y4m(videos["rock"])
    assert (info["W"], info["H"], info["C"]) == ("640", "480", "420jpeg")
    assert len(frames) == 50 and all(len(f) == 640 * 480 * 3 // 2 for f in frames)


def test_the_page_opens_with_its_title(app_url, videos):
    """Nothing stands above the title: Streamlit's magic renders stray module-level strings first."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p, videos["rock"])
        try:
            page = Page(browser.new_page(viewport={"width": 1400, "height": 1050}), app_url)
            main = page.page.locator('[data-testid="stMain"]')
            assert main.inner_text().strip().splitlines()[0] == "Webcam KNN classifier"
            first = main.locator('[data-testid="stElementContainer"]').first
            assert first.locator("h1").inner_text().strip() == "Webcam KNN classifier"
        finally:
            browser.close()


def test_teach_from_the_camera_and_read_the_live_prediction(app_url, videos, photos):
    """Camera frames of one gesture to one class, uploads of the other gesture to another class.

    Then the roles swap in a new browser session with the other video. A second tab, open at the
    same time as the first, is a separate session and must never see the first one's examples.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p, videos["rock"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1050})
            teacher = Page(context.new_page(), app_url)
            teacher.start_camera()
            other = Page(context.new_page(), app_url)  # another browser session, at the same time
            other.start_camera()
            teacher.page.bring_to_front()
            assert teacher.prediction() == "no examples"
            teacher.add(slot=0, times=5)
            teacher.upload(slot=1, files=photos["paper"][60::12])
            teacher.wait_for(lambda: teacher.prediction() == "Class 1", "Class 1 as the prediction", 30)
            # Sessions are private: the other tab's classes are empty and its camera knows nothing.
            other.page.bring_to_front()
            other.wait_for(lambda: other.prediction() == "no examples", "the other tab's own prediction", 20)
            assert [other.count(s) for s in range(3)] == [0, 0, 0]
            assert "No examples yet" in other.page.get_by_text("No examples yet").first.inner_text()
            other.page.close()
        finally:
            browser.close()

        browser = launch(p, videos["paper"])
        try:
            page = Page(browser.new_page(viewport={"width": 1400, "height": 1050}), app_url)
            page.start_camera()
            page.upload(slot=0, files=photos["rock"][60::12])
            page.add(slot=1, times=5)
            page.wait_for(lambda: page.prediction() == "Class 2", "Class 2 as the prediction", 30)
        finally:
            browser.close()
