"""Keep streamlit-webrtc from stopping a camera that is drawn on every page run.

streamlit-webrtc 0.79 stops a session's WebRTC worker when the camera's context looks orphaned:
when Streamlit's count of finished script runs grew by more than one since the component was
last drawn (meant for a multipage app whose user comes back to the page). Streamlit raises that
count on the server's event loop as it sends a run's "finished" message, so a run that starts
before the previous run's message went out reads a stale count, and the run after it finds the
count two ahead. Under load, with the event loop busy with ICE and DTLS just as a camera
connects, that happens: the worker is stopped a fraction of a second after START and the tab's
camera delivers nothing more (the "lost streams" of bench/live.py; the log line is "Context for
key=camera was not rendered for 1 script runs; resetting stale state", docs/performance.md).

This page draws the camera in every full run, and a remounted component already resets through
its frontend state, so the check has nothing to catch here. `forget_last_draw` clears the
context's count of its last draw before each draw, which is how a fresh context starts, so the
check never fires. `keep_cameras_drawn` applies once per process, after checking the installed
version and the attribute it relies on; otherwise it logs one warning and streamlit-webrtc stays
stock.
"""

from __future__ import annotations

import logging

from .checks import unchecked_version

_LOG = logging.getLogger(__name__)

CHECKED_STREAMLIT_WEBRTC = ("0.79.0",)
"""streamlit-webrtc versions whose orphaned-context check this was read against."""
ATTRIBUTE = "_last_rendered_run_count"
CONTEXT_CLASS = "WebRtcStreamerContext"


def check_context(version: str, context_class: type) -> list[str]:
    """What keeps `forget_last_draw` from applying; empty when it fits."""
    problems = unchecked_version("streamlit-webrtc", version, CHECKED_STREAMLIT_WEBRTC)
    if context_class.__name__ != CONTEXT_CLASS or ATTRIBUTE not in getattr(context_class, "__annotations__", {}):
        problems.append(f"streamlit_webrtc.component.{CONTEXT_CLASS} no longer declares {ATTRIBUTE}")
    return problems


def keep_cameras_drawn(*, version: str | None = None, context_class: type | None = None) -> bool:
    """Whether `forget_last_draw` may be used in this process (the installed streamlit-webrtc by
    default; tests pass others). False after one warning when it does not fit."""
    if version is None or context_class is None:
        import importlib.metadata

        from streamlit_webrtc.component import WebRtcStreamerContext

        version = importlib.metadata.version("streamlit-webrtc")
        context_class = WebRtcStreamerContext
    problems = check_context(version, context_class)
    if problems:
        _LOG.warning(
            "A camera may be stopped by streamlit-webrtc's orphaned-context check under load (%s).", "; ".join(problems)
        )
        return False
    return True


def forget_last_draw(context: object | None) -> None:
    """Before the camera is drawn: its context (`st.session_state[key]`, None before the first
    draw) forgets the run count of its last draw, as a fresh one has none."""
    if context is not None and type(context).__name__ == CONTEXT_CLASS:
        setattr(context, ATTRIBUTE, None)
