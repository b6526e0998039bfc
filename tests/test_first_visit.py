"""The first visit to a server whose model cache is empty (every Community Cloud boot after it
slept): the page is drawn first, the model is built behind it, and the camera answers by itself
once it is ready. The real app in Chromium with the fake webcam; the weights come from
../shared/models (never the internet), the LiteRT model is converted during the test. Events and
deadlines only: what the page shows together, never how long it took (bench/startup.py times it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.app_server import AppServer
from harness.browser import CAMERA_IFRAME, Page, launch, skip_without_chromium

pytestmark = pytest.mark.browser


def test_the_page_is_drawn_before_the_model_and_answers_once_it_is_ready(rock_video, photos, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    skip_without_chromium()
    with AppServer(env={"KNN_CACHE": str(tmp_path / "empty-cache")}) as app, sync_playwright() as p:
        browser = launch(p, rock_video)
        try:
            page = Page(browser.new_page(viewport={"width": 1400, "height": 1050}), app.url)
            start = page.page.frame_locator(CAMERA_IFRAME).first.get_by_role("button", name="START")
            start.wait_for(timeout=60_000)
            # One look at the page: title, sidebar, camera and START, and the model still loading.
            assert page.page.locator("h1").first.inner_text().strip() == "Webcam KNN classifier"
            assert page.class_names() == ["Class 1", "Class 2", "Class 3"]
            assert page.model_loading(), "the model was ready before the page: the cache was not empty?"
            assert "Converting the model to LiteRT" in page.page.locator(".st-key-model_progress").inner_text()

            # Add before the model answers says why; uploads wait for it and are then embedded.
            page.button("add_0").click()
            page.wait_text("The model is still loading")
            page.press_start()
            page.wait_for(
                lambda: page.model_loading() and page.prediction() == "model loading…" and page.received_fps() > 0,
                "camera frames reaching the server while the model loads",
                60,
            )
            page.upload(slot=1, files=photos["paper"][60::20])  # its count changes once they are embedded

            # Nobody clicks: the camera answers once the model is ready, and the bar is gone.
            page.wait_for(lambda: not page.model_loading() and page.camera_live(), "the camera answering", 120)
            page.add(slot=0, times=3)
            page.wait_for(lambda: page.prediction() == "Class 1", "Class 1 as the prediction", 30)
            assert page.page.locator('[data-testid="stException"]').count() == 0  # nothing errored on the way
        finally:
            browser.close()
