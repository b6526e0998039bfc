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

import pytest

from harness.app_server import AppServer, serve_app
from harness.browser import Page, launch, skip_without_chromium

pytestmark = pytest.mark.browser

HOLD_MS = 2500
"""How late the click's own message goes out: longer than the live panel's period (1 s, 2 s with
more than two cameras on the process), so the panel's timer fires first, and new camera frames
reach the server in between."""

LATER_RUNS = 3
"""Page runs to wait for once the click's own message went out: it ran by the end of the second
(the first may have been under way); a copy of the click would have acted by then."""

CLICK_LATE = """([selector, hold]) => {
  const button = [...document.querySelectorAll(selector)].find((b) => b.offsetParent !== null);
  if (!button) throw new Error(`no visible ${selector}`);
  // The timers the click sets (Streamlit's zero-delay one that sends it) fire `hold` ms late, as
  // behind a busy main thread; the live panel's timer fires meanwhile. window.__knnHeld counts
  // them, and those that fired: once all have, the click's own message went out.
  const held = (window.__knnHeld = {set: 0, fired: 0});
  const setTimeout = window.setTimeout;
  window.setTimeout = (callback, delay, ...args) => {
    held.set += 1;
    const late = (...a) => { try { callback(...a); } finally { held.fired += 1; } };
    return setTimeout(late, (delay || 0) + hold, ...args);
  };
  try {
    button.click();
  } finally {
    window.setTimeout = setTimeout;
  }
}"""

HELD_SENT = "() => window.__knnHeld.set > 0 && window.__knnHeld.fired === window.__knnHeld.set"


@pytest.fixture(scope="module")
def app(rps_dir):
    skip_without_chromium()
    yield from serve_app(metrics=True, metrics_interval=0.5)


def late_click(page: Page, selector: str) -> None:
    page.page.evaluate(CLICK_LATE, [selector, HOLD_MS])


def after_the_click(page: Page) -> None:
    """Wait until the late click's own message went out and the page ran `LATER_RUNS` times since:
    a copy of it (in the live panel's run before) and the click itself have both been acted on."""
    page.wait_for(lambda: page.page.evaluate(HELD_SENT), "the click's own message to go out", 20)
    page.wait_runs(LATER_RUNS, "after the click's own")


def settled(app: AppServer, page: Page, sid: int, key: str, expected: int, seconds: float = 20.0) -> int:
    """The session's `key` once it reached `expected` and the click it came from has been acted
    on in full (a copied click lands up to seconds after the click, when the tab sends it)."""
    app.wait_metrics(
        lambda m: any(s["id"] == sid and s[key] >= expected for s in m["sessions"]),
        f"{key} to reach {expected}",
        seconds,
    )
    after_the_click(page)
    return next(s for s in app.next_metrics()["sessions"] if s["id"] == sid)[key]


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
                assert settled(app, page, sid, "examples", n) == n, f"click {n} ({selector}) stored more than one frame"
                page.wait_for(lambda n=n: page.count(0) + page.count(1) == n, f"{n} examples on the cards", 20)
            late_click(page, ".st-key-add_class button")
            page.wait_for(lambda: len(page.class_names()) >= 4, "a fourth class", 20)
            after_the_click(page)
            assert page.class_names() == ["Class 1", "Class 2", "Class 3", "Class 4"]
        finally:
            browser.close()
