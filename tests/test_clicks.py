"""One click, one action, while the live panel redraws on its timer: the real page in headless Chromium.

Streamlit's page sends a click on a zero-delay timer of its own. When the tab is busy (under
load) the live panel's timer can fire first, and its rerun carries every widget state the page
holds, the waiting click too: the server got the click twice, seconds apart. One Add stored two
frames, "+ Add class" made two classes (seen in CI on a slow machine; knn.serving.clicks says how
the page now tells the copy from the click). Here the click's timers are held back on purpose
for longer than the panel's period, which gives that order every time.

Slow (about a minute): marked `browser`.
"""

from __future__ import annotations

import time

import pytest

from harness.app_server import AppServer, serve_app
from harness.browser import Page, launch, skip_without_chromium

pytestmark = pytest.mark.browser

HOLD_MS = 2500
"""How late the click's own message goes out: longer than the live panel's period (1 s, 2 s with
more than two cameras on the process), so the panel's timer fires first, and new camera frames
reach the server in between."""

CLICK_LATE = """([selector, hold]) => {
  const button = [...document.querySelectorAll(selector)].find((b) => b.offsetParent !== null);
  if (!button) throw new Error(`no visible ${selector}`);
  // The timers the click sets (Streamlit's zero-delay one that sends it) fire `hold` ms late, as
  // behind a busy main thread; the live panel's timer fires meanwhile.
  const setTimeout = window.setTimeout;
  window.setTimeout = (callback, delay, ...args) => setTimeout(callback, (delay || 0) + hold, ...args);
  try {
    button.click();
  } finally {
    window.setTimeout = setTimeout;
  }
}"""


@pytest.fixture(scope="module")
def app(rps_dir):
    skip_without_chromium()
    yield from serve_app(metrics=True, metrics_interval=0.5)


def late_click(page: Page, selector: str) -> None:
    page.page.evaluate(CLICK_LATE, [selector, HOLD_MS])


def settled(app: AppServer, sid: int, key: str, expected: int, seconds: float = 20.0) -> int:
    """The session's `key` once it reached `expected` and stayed there for the panel's next few
    redraws (a copied click lands up to seconds after the click, when the tab sends it)."""
    app.wait_metrics(
        lambda m: any(s["id"] == sid and s[key] >= expected for s in m["sessions"]),
        f"{key} to reach {expected}",
        seconds,
    )
    time.sleep(2 * HOLD_MS / 1000)
    return app.session(sid)[key]


def test_a_click_sent_after_the_panels_timer_acts_once(app, rock_video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p, rock_video)
        try:
            before = app.session_ids()
            page = Page(browser.new_context(viewport={"width": 1400, "height": 1050}).new_page(), app.url)
            snap = app.wait_metrics(lambda m: {s["id"] for s in m["sessions"]} - before, "the tab's session", 60)
            (sid,) = {s["id"] for s in snap["sessions"]} - before
            page.start_camera()
            app.wait_metrics(
                lambda m: any(s["id"] == sid and s["frames_processed"] > 10 for s in m["sessions"]),
                "frames from the camera",
                30,
            )
            for n, selector in enumerate(
                [".st-key-add_0 button", ".st-key-quick_add_1 button", ".st-key-add_0 button"], 1
            ):
                late_click(page, selector)
                assert settled(app, sid, "examples", n) == n, f"click {n} ({selector}) stored more than one frame"
                page.wait_for(lambda n=n: page.count(0) + page.count(1) == n, f"{n} examples on the cards", 20)
            late_click(page, ".st-key-add_class button")
            page.wait_for(lambda: len(page.class_names()) >= 4, "a fourth class", 20)
            time.sleep(2 * HOLD_MS / 1000)
            assert page.class_names() == ["Class 1", "Class 2", "Class 3", "Class 4"]
        finally:
            browser.close()
