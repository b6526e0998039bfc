"""The server's RTCPeerConnection behind a camera, so the page can say why it does not connect.

streamlit-webrtc 0.79 has no public way to reach it: a camera's context holds its worker (whose
public `pc` is aiortc's peer) behind the private `_get_worker`. `peers_reachable` checks once per
process that the installed version and both attributes fit; otherwise it logs one warning, and the
page stays stock: it says nothing about a failing connection. Only aiortc's public API is used on
the peer itself (knn.serving.connection).
"""

from __future__ import annotations

import logging
from typing import Any

from .adaptation_checks import unchecked_version, unread_source

_LOG = logging.getLogger(__name__)

CHECKED_STREAMLIT_WEBRTC = ("0.79.0",)
"""streamlit-webrtc versions whose context and worker this was read against."""
GETTER = "_get_worker"
PEER = "self.pc = RTCPeerConnection("


def check_peer_access(version: str, context_class: type, worker_class: type) -> list[str]:
    """What keeps `server_peer` from applying; empty when it fits."""
    problems = unchecked_version("streamlit-webrtc", version, CHECKED_STREAMLIT_WEBRTC)
    if not callable(getattr(context_class, GETTER, None)):
        problems.append(f"streamlit_webrtc.WebRtcStreamerContext.{GETTER} is missing")
    problems += unread_source(
        "streamlit_webrtc.WebRtcWorker.__init__",
        getattr(worker_class, "__init__", None),
        PEER,
        "streamlit_webrtc.WebRtcWorker no longer keeps its aiortc peer as `pc`",
    )
    return problems


def peers_reachable(
    *, version: str | None = None, context_class: type | None = None, worker_class: type | None = None
) -> bool:
    """Whether `server_peer` may be used in this process (the installed streamlit-webrtc by default;
    tests pass others). False after one warning when it does not fit."""
    if version is None or context_class is None or worker_class is None:
        import importlib.metadata

        from streamlit_webrtc import WebRtcStreamerContext, WebRtcWorker

        version = importlib.metadata.version("streamlit-webrtc")
        context_class, worker_class = WebRtcStreamerContext, WebRtcWorker
    problems = check_peer_access(version, context_class, worker_class)
    if problems:
        _LOG.warning("The page cannot say why a camera does not connect (%s).", "; ".join(problems))
        return False
    return True


def server_peer(context: object | None) -> Any | None:
    """The aiortc RTCPeerConnection of a camera's context (what webrtc_streamer returned), None while
    no connection is being made."""
    worker = getattr(context, GETTER, lambda: None)()
    return getattr(worker, "pc", None)
