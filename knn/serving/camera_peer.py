"""The server's RTCPeerConnection behind a camera, so the page can say why it does not connect.

streamlit-webrtc 0.79 has no public way to reach it: a camera's context holds its worker (whose
public `pc` is aiortc's peer) behind the private `_get_worker`. `server_peer` reads it where
`CAMERA_PEER` says it may (knn.serving.startup); otherwise the page says nothing about a failing
connection. Only aiortc's public API is used on the peer itself (knn.serving.connection).
"""

from __future__ import annotations

from typing import Any

from .adapt import Adaptation, unread_source

GETTER = "_get_worker"
PEER = "self.pc = RTCPeerConnection("


def _find() -> tuple[type, type]:
    from streamlit_webrtc import WebRtcStreamerContext, WebRtcWorker

    return WebRtcStreamerContext, WebRtcWorker


def _check(found: tuple[type, type]) -> list[str]:
    context_class, worker_class = found
    problems = []
    if not callable(getattr(context_class, GETTER, None)):
        problems.append(f"streamlit_webrtc.WebRtcStreamerContext.{GETTER} is missing")
    return problems + unread_source(
        f"{worker_class.__name__}.__init__",
        getattr(worker_class, "__init__", None),
        PEER,
        "streamlit_webrtc.WebRtcWorker no longer keeps its aiortc peer as `pc`",
    )


CAMERA_PEER = Adaptation(
    name="camera_peer",
    package="streamlit-webrtc",
    checked="0.79.0",
    reason="streamlit-webrtc keeps a camera's aiortc peer behind a private getter; the page follows the peer's state",
    kept_by="tests/test_camera_peer.py; tests/test_connection_page.py (stock: no message under the camera)",
    lost="The page cannot say why a camera does not connect",
    find=_find,
    check=_check,
)


def server_peer(context: object | None) -> Any | None:
    """The aiortc RTCPeerConnection of a camera's context (what webrtc_streamer returned), None while
    no connection is being made."""
    worker = getattr(context, GETTER, lambda: None)()
    return getattr(worker, "pc", None)
