"""Faults in live use, in the real app and real Chromium: a camera that stops and restarts, a tab
closed mid-stream, a page reloaded. The server must keep serving the other sessions, leak no
threads, and free a closed session's state.

The server's own numbers come from its metrics file (knn/metrics.py): which LiveSession objects
are alive, their processed-frame counters, the thread count per kind. No timing is asserted: each
wait has a generous limit only so that a failure ends. Streamlit keeps a closed tab's session for
`server.disconnectedSessionTTL` seconds (a reconnect resumes it), then drops it at the next
disconnect of any session; the app's periodic garbage collection (KNN_GC_SECONDS) then frees it.
Here the TTL is 1 s and the collection runs every second. Slow (a few minutes): marked `browser`.
"""

from __future__ import annotations

import os
import time

import pytest
from PIL import Image

from harness.app_server import AppServer, serve_app
from harness.browser import Page, launch, skip_without_chromium
from harness.webcam import write_y4m
from knn.core.image_folders import class_folders

pytestmark = pytest.mark.browser

PER_SESSION_THREADS = ("video-decoder",)
"""Thread kinds that a streaming session starts and must stop when it ends."""
WEB_POOL, WEB_POOL_LIMIT = "AnyIO worker thread", 40
"""The web server's threads for blocking request work (static files, uploads): as many as requests
were in flight at once, up to anyio's default limit, and an idle one is pruned only when a later
request comes. Sessions do not grow it, so it is counted apart."""


@pytest.fixture(scope="module")
def app(rps_dir):
    skip_without_chromium()
    yield from serve_app(
        metrics=True, metrics_interval=0.5, options={"server.disconnectedSessionTTL": 1}, env={"KNN_GC_SECONDS": "1"}
    )


@pytest.fixture(scope="module")
def browser(app, rps_dir, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    photos = class_folders(rps_dir)
    video = write_y4m(
        tmp_path_factory.mktemp("webcam") / "hands.y4m",
        [Image.open(p) for label in ("rock", "paper") for p in photos[label][:20:10]],
        frames_per_image=5,
    )
    with sync_playwright() as p:
        chromium = launch(p, video)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def baseline_threads(app, browser) -> int:
    """The server's threads with one page open and no camera, before the tests stream (without
    the web server's pool)."""
    tab = Tab(browser, app)
    snap = app.wait_metrics(lambda m: True, "the metrics file", 60)
    tab.close()
    return snap["threads"] - threads_of(snap, WEB_POOL)


def session_ids(app: AppServer) -> set[int]:
    snap = app.metrics()  # None before the first page ran the app (which starts the writer)
    return set() if snap is None else {s["id"] for s in snap["sessions"]}


def processed(snap: dict, sid: int) -> int | None:
    return next((s["frames_processed"] for s in snap["sessions"] if s["id"] == sid), None)


class Tab:
    """A browser tab (its own context: another user) and the id of its LiveSession on the server."""

    def __init__(self, browser, app: AppServer):
        before = session_ids(app)
        self.context = browser.new_context(viewport={"width": 1400, "height": 1050})
        self.page = Page(self.context.new_page(), app.url)
        snap = app.wait_metrics(lambda m: {s["id"] for s in m["sessions"]} - before, "the new tab's session", 60)
        (self.id,) = {s["id"] for s in snap["sessions"]} - before

    def close(self) -> None:
        self.context.close()


def wait_processing(app: AppServer, *ids: int, frames: int = 10) -> None:
    """Until each session has processed `frames` more frames than now."""
    start = app.wait_metrics(lambda m: True, "the metrics file", 60)
    base = {sid: processed(start, sid) or 0 for sid in ids}
    app.wait_metrics(
        lambda m: all((processed(m, sid) or 0) >= base[sid] + frames for sid in ids),
        f"sessions {ids} to process {frames} more frames",
        60,
    )


def threads_of(snap: dict, kind: str) -> int:
    return snap["thread_kinds"].get(kind, 0)


def drop_expired_sessions(browser, app: AppServer, gone, what: str, seconds: float = 120) -> tuple[int, dict]:
    """Streamlit removes expired disconnected sessions when another one disconnects: visit (open a
    tab, close it) until `gone(snapshot, visitor)` holds, the visitor being the last visit's session
    id (kept in turn until the next disconnect). A visit can come before the closed sessions' 1 s
    TTL ran out: the next one, a few seconds later, drops them. Returns the visitor and the snapshot."""
    deadline = time.monotonic() + seconds
    while True:
        visitor = Tab(browser, app)
        visitor.close()
        try:  # the app's collection frees a dropped session within a second or two
            return visitor.id, app.wait_metrics(lambda m, v=visitor.id: gone(m, v), what, 10)
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def ids(snap: dict) -> set[int]:
    return {s["id"] for s in snap["sessions"]}


def test_camera_stop_and_restart_while_another_session_streams(app, browser, baseline_threads):
    a, b = Tab(browser, app), Tab(browser, app)
    try:
        a.page.start_camera()
        b.page.start_camera()
        wait_processing(app, a.id, b.id)
        a.page.stop_camera()
        # A's worker stops; B's keeps going.
        app.wait_metrics(lambda m: threads_of(m, "video-decoder") == 1, "A's decoder to stop", 60)
        stopped = processed(app.metrics(), a.id)
        wait_processing(app, b.id)
        assert processed(app.metrics(), a.id) == stopped
        a.page.start_camera()
        wait_processing(app, a.id, b.id)
        assert threads_of(app.metrics(), "video-decoder") == 2
    finally:
        a.close()
        b.close()


def test_closing_a_tab_mid_stream_frees_its_session_and_the_others_keep_going(app, browser):
    a, b = Tab(browser, app), Tab(browser, app)
    try:
        a.page.start_camera()
        b.page.start_camera()
        wait_processing(app, a.id, b.id)
        a.close()  # no STOP: the tab just goes away
        _, snap = drop_expired_sessions(browser, app, lambda m, _: a.id not in ids(m), "A's LiveSession to be freed")
        assert b.id in ids(snap)
        app.wait_metrics(
            lambda m: all(threads_of(m, kind) == 1 for kind in PER_SESSION_THREADS), "A's threads to end", 90
        )
        wait_processing(app, b.id)
    finally:
        b.close()


def test_reloading_the_page_gives_a_fresh_session_that_works(app, browser):
    tab = Tab(browser, app)
    try:
        tab.page.start_camera()
        wait_processing(app, tab.id)
        before = session_ids(app)
        tab.page.page.reload()
        tab.page.page.wait_for_selector(".st-key-live_prediction", timeout=60_000)
        snap = app.wait_metrics(lambda m: {s["id"] for s in m["sessions"]} - before, "the reloaded page's session", 60)
        (fresh,) = {s["id"] for s in snap["sessions"]} - before
        tab.page.start_camera()
        wait_processing(app, fresh)
        assert [s["examples"] for s in app.metrics()["sessions"] if s["id"] == fresh] == [0]
        drop_expired_sessions(browser, app, lambda m, _: tab.id not in ids(m), "the old session to be freed")
    finally:
        tab.close()


def test_no_thread_or_session_is_left_once_every_tab_is_closed(app, browser, baseline_threads):
    """Runs last: the tabs of the tests above are all closed."""
    visitor, _ = drop_expired_sessions(browser, app, lambda m, v: ids(m) <= {v}, "every closed session to be freed")
    snap = app.wait_metrics(
        lambda m: (
            {s["id"] for s in m["sessions"]} <= {visitor} and all(threads_of(m, k) == 0 for k in PER_SESSION_THREADS)
        ),
        "every streaming session and its threads to end",
        120,
    )
    assert not [k for k in snap["thread_kinds"] if k.startswith("ShutdownPolling")], snap["thread_kinds"]
    # What may remain beyond the baseline are pools that do not grow with the number of sessions
    # that came and went: asyncio's executor, where aiortc encodes (up to cores + 4 threads), and,
    # with uvloop, libuv's own pool for DNS and file work (UV_THREADPOOL_SIZE, 4 by default).
    pools = min(32, (os.cpu_count() or 1) + 4) + int(os.environ.get("UV_THREADPOOL_SIZE", 4))
    assert snap["threads"] - threads_of(snap, WEB_POOL) <= baseline_threads + pools, (
        baseline_threads,
        snap["thread_kinds"],
    )
    assert threads_of(snap, WEB_POOL) <= WEB_POOL_LIMIT, snap["thread_kinds"]
