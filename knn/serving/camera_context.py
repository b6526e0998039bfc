"""Keep streamlit-webrtc from stopping a camera that is drawn on every page run.

streamlit-webrtc 0.79 stops a camera whose context looks orphaned (Streamlit's count of finished
runs more than one ahead of its last draw), and under load a stale count makes that happen right
after START. This page draws the camera in every full run, so `forget_last_draw` clears the
context's last-draw count before each draw, as a fresh context has none. `keep_cameras_drawn`
checks once per process that the installed version and the attribute fit; otherwise it logs one
warning and streamlit-webrtc stays stock. Numbers: docs/performance.md, "Serving adaptations".
"""

from __future__ import annotations

import logging

from .adaptation_checks import unchecked_version

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
