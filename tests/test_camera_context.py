"""knn.serving.camera_context: streamlit-webrtc's orphaned-context check kept from stopping a camera
drawn on every run (refused, leaving it stock, where the installed version or its context differ).

What the check does to a camera under load was seen in bench/live.py's server log
(docs/performance.md); here: it does that to a context the page drew in the run before, and not
once the page has cleared the context's last-draw count."""

from __future__ import annotations

import logging
import threading
import types

import pytest
from streamlit_webrtc import component
from streamlit_webrtc.component import WebRtcStreamerContext, WebRtcStreamerState

from knn.serving.adapt import adapt
from knn.serving.camera_context import CAMERA_CONTEXT, forget_last_draw
from tests.adapted import adapted


class Worker:
    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


@pytest.fixture
def streaming(monkeypatch):
    """A camera context with a running worker, drawn at finished-run count 5, and Streamlit's
    count as a run that started before run 6's "finished" message went out then finds it: 7."""
    worker = Worker()
    context = WebRtcStreamerContext(worker=worker, state=WebRtcStreamerState(playing=True, signalling=False))
    context._last_rendered_run_count = 5
    state = {"camera": context}
    monkeypatch.setattr(component, "st", types.SimpleNamespace(session_state=state))
    monkeypatch.setattr(component, "get_this_session_info", lambda: object())
    monkeypatch.setattr(component, "get_script_run_count", lambda info: 7)
    return context, worker


def test_the_stock_check_stops_a_camera_whose_count_ran_two_ahead(streaming):
    context, worker = streaming
    component._get_or_create_context("camera")
    assert worker.stopped.is_set()  # why this module exists


def test_a_context_that_forgot_its_last_draw_keeps_its_camera(streaming):
    context, worker = streaming
    if adapted(CAMERA_CONTEXT):  # as the page does (ui.streamlit_fixes); KNN_STOCK=camera_context: stock
        forget_last_draw(context)
    assert component._get_or_create_context("camera") is context
    assert not worker.stopped.is_set(), "the camera was stopped"
    assert context.state.playing
    forget_last_draw(None)  # before the first draw there is no context: nothing to do


def test_another_version_or_context_leaves_streamlit_webrtc_stock(caplog):
    assert CAMERA_CONTEXT.check(WebRtcStreamerContext) == []
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(CAMERA_CONTEXT, version="0.80.0")
    assert "not the version this was checked against" in caplog.text

    class WebRtcStreamerContext2:  # renamed, or the count moved elsewhere
        _worker: object

    moved = type("WebRtcStreamerContext", (), {"__annotations__": {"_worker": object}})
    for cls in (WebRtcStreamerContext2, moved):
        (problem,) = CAMERA_CONTEXT.check(cls)
        assert "no longer declares _last_rendered_run_count" in problem
    other = types.SimpleNamespace(_last_rendered_run_count=3)
    forget_last_draw(other)  # not streamlit-webrtc's context: left alone
    assert other._last_rendered_run_count == 3
