"""Keep streamlit-webrtc from stopping a camera that is drawn on every page run.

streamlit-webrtc 0.79 stops a camera whose context looks orphaned (Streamlit's count of finished
runs more than one ahead of its last draw), and under load a stale count makes that happen right
after START. This page draws the camera in every full run, so `forget_last_draw` clears the
context's last-draw count before each draw, as a fresh context has none, where `CAMERA_CONTEXT`
says it may (knn.serving.startup).
"""

from __future__ import annotations

from .adapt import Adaptation

ATTRIBUTE = "_last_rendered_run_count"
CONTEXT_CLASS = "WebRtcStreamerContext"


def _find() -> type:
    from streamlit_webrtc.component import WebRtcStreamerContext

    return WebRtcStreamerContext


def _check(context_class: type) -> list[str]:
    if context_class.__name__ != CONTEXT_CLASS or ATTRIBUTE not in getattr(context_class, "__annotations__", {}):
        return [f"streamlit_webrtc.component.{CONTEXT_CLASS} no longer declares {ATTRIBUTE}"]
    return []


CAMERA_CONTEXT = Adaptation(
    name="camera_context",
    package="streamlit-webrtc",
    checked="0.79.0",
    reason="streamlit-webrtc stops a camera whose run count arrives two ahead, as a stale count does under load",
    kept_by="tests/test_camera_context.py (stock: the camera is stopped); 2 resets in 13 starts before, 0 in 60 after",
    lost="A camera may be stopped by streamlit-webrtc's orphaned-context check under load",
    find=_find,
    check=_check,
)


def forget_last_draw(context: object | None) -> None:
    """Before the camera is drawn: its context (`st.session_state[key]`, None before the first
    draw) forgets the run count of its last draw, as a fresh one has none."""
    if context is not None and type(context).__name__ == CONTEXT_CLASS:
        setattr(context, ATTRIBUTE, None)
