"""knn.serving.camera_peer: a camera context's server-side aiortc peer, reached through
streamlit-webrtc's private worker getter (refused, leaving the page stock, where the installed
version or its classes differ)."""

from __future__ import annotations

import asyncio
import inspect
import logging

from aiortc import RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from streamlit_webrtc import WebRtcMode, WebRtcStreamerContext, WebRtcStreamerState, WebRtcWorker

from knn.serving.adapt import adapt
from knn.serving.camera_peer import CAMERA_PEER, server_peer


def worker(loop: asyncio.AbstractEventLoop) -> WebRtcWorker:
    """A real streamlit-webrtc worker as webrtc_streamer makes one for the camera, before its offer."""
    names = inspect.signature(WebRtcWorker.__init__).parameters
    given = {"mode": WebRtcMode.SENDRECV, "async_processing": True, "video_receiver_size": 4}
    given |= {"audio_receiver_size": 4, "sendback_video": True, "sendback_audio": True}
    others = {n: None for n in names if n not in {"self", "loop", "relay", *given}}
    return WebRtcWorker(**given, **others, loop=loop, relay=MediaRelay())


def test_the_peer_of_a_context_with_a_worker():
    loop = asyncio.new_event_loop()
    running = worker(loop)
    try:
        context = WebRtcStreamerContext(worker=running, state=WebRtcStreamerState(playing=True, signalling=True))
        peer = server_peer(context)
        assert isinstance(peer, RTCPeerConnection) and peer is running.pc
        idle = WebRtcStreamerContext(worker=None, state=WebRtcStreamerState(playing=False, signalling=False))
        assert server_peer(idle) is None
        assert server_peer(None) is None  # before the camera's first draw
    finally:
        running.stop()
        loop.close()


def test_another_version_or_class_leaves_the_page_stock(caplog):
    assert CAMERA_PEER.check((WebRtcStreamerContext, WebRtcWorker)) == []
    assert adapt(CAMERA_PEER)

    class Context:  # a context that keeps its worker some other way
        pass

    class Worker:
        def __init__(self) -> None:
            self.peer = None

    assert CAMERA_PEER.check((Context, Worker)) == [
        "streamlit_webrtc.WebRtcStreamerContext._get_worker is missing",
        "streamlit_webrtc.WebRtcWorker no longer keeps its aiortc peer as `pc`",
    ]
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(CAMERA_PEER, version="0.80.0")
    assert [r.getMessage() for r in caplog.records] == [
        "The page cannot say why a camera does not connect (streamlit-webrtc 0.80.0 is not the version this was "
        "checked against (0.79.0)); streamlit-webrtc is left stock."
    ]
