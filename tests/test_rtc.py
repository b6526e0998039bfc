"""knn.rtc: aiortc's bandwidth estimate for incoming video never falls below the floor; only
new results are sent back to the browser."""
from __future__ import annotations

import asyncio
import time

import pytest

from knn.live import LiveSession
from tests.test_live import FakeEmbedder, _Camera


def _estimates(estimator_cls) -> list[int]:
    """Feed one low-bitrate stream (30 frames/s of two 300-byte packets, ~144 kbit/s) whose
    packets now arrive ever later than sent, now catch up (what a stalling event loop looks
    like); return every estimate reported."""
    estimator = estimator_cls()
    out = []
    send_ms, arrive_ms = 0.0, 0.0
    for frame in range(900):
        for _ in range(2):
            abs_send_time = int(send_ms * (1 << 18) / 1000) & 0xFFFFFF
            estimate = estimator.add(arrival_time_ms=int(arrive_ms), abs_send_time=abs_send_time,
                                     payload_size=300, ssrc=1234)
            if estimate is not None:
                out.append(estimate[0])
            send_ms += 1
            arrive_ms += 1
        send_ms += 30.0
        arrive_ms += 30.0 + (15.0 if frame % 60 < 30 else -7.5)  # queues build up, then drain
    return out


@pytest.fixture()
def aiortc_rate():
    """aiortc's rate module with its own estimator (the app, run in-process by other tests, may
    have floored it already); whatever was there is put back afterwards."""
    from aiortc import rate

    before = rate.RemoteBitrateEstimator.add
    rate.RemoteBitrateEstimator.add = getattr(before, "__wrapped__", before)
    yield rate
    rate.RemoteBitrateEstimator.add = before


def test_the_floor_holds_where_aiortc_alone_goes_below_it(aiortc_rate):
    from knn.rtc import MIN_VIDEO_BITRATE, floor_receive_bitrate

    plain = _estimates(aiortc_rate.RemoteBitrateEstimator)
    assert plain and min(plain) < MIN_VIDEO_BITRATE  # the estimator alone reads congestion
    floor_receive_bitrate()
    floor_receive_bitrate()  # twice: still one floor, not a wrapper of a wrapper
    floored = _estimates(aiortc_rate.RemoteBitrateEstimator)
    assert floored and min(floored) == MIN_VIDEO_BITRATE
    assert [max(a, MIN_VIDEO_BITRATE) for a in plain] == floored  # only the floor differs


def _send_back(track_cls, seconds: float = 3.0):
    """Stream a 30 fps camera through `track_cls` into a LiveSession whose model takes 80 ms
    (about 12 results a second); return every frame the track gave aiortc to send, and the
    session's processed-frame count."""
    from streamlit_webrtc.models import CallbackAttachableProcessor

    session = LiveSession(FakeEmbedder(delay=0.08), classes=["red"])
    camera = _Camera()
    track = track_cls(camera.track, CallbackAttachableProcessor(session.on_frame, session.on_frames, None))

    async def consume() -> list:
        sent, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            sent.append(await track.recv())
        return sent

    try:
        sent = asyncio.run(consume())
    finally:
        track.stop()
    return sent, session.snapshot().stats.frames_processed


def _has_caption(frame) -> bool:
    """The caption's band darkens the top of the red camera picture."""
    rgb = frame.to_ndarray(format="rgb24").astype(float)
    return rgb[:4].mean() < rgb[-4:].mean() - 20


def test_streamlit_webrtc_alone_resends_the_last_result_with_every_camera_frame():
    from streamlit_webrtc.process import AsyncVideoProcessTrack

    sent, processed = _send_back(AsyncVideoProcessTrack)
    assert len(sent) >= 75  # the camera's pace
    results = [f for f in sent if _has_caption(f)]
    assert len(results) >= 2 * processed  # most of them repeats of the same result
    assert len({id(f) for f in results}) <= processed


def test_only_new_results_are_sent_back_each_once_in_order():
    from knn.rtc import new_frames_track

    sent, processed = _send_back(new_frames_track())
    assert 20 <= processed <= 45
    captioned = [_has_caption(f) for f in sent]
    first = captioned.index(True)
    assert all(captioned[first:])  # the camera's own frames only until the first result
    assert first <= 5
    results = sent[first:]
    assert len({id(f) for f in results}) == len(results)  # no result sent twice
    assert processed - 2 <= len(results) <= processed  # each once (the last may be in flight)
    pts = [f.pts for f in sent]
    assert pts == sorted(set(pts))  # timestamps keep increasing for the encoder


@pytest.fixture()
def webrtc_module():
    """streamlit-webrtc's webrtc module with its own track class put back afterwards."""
    from streamlit_webrtc import webrtc

    before = webrtc.AsyncVideoProcessTrack
    yield webrtc
    webrtc.AsyncVideoProcessTrack = before


def test_send_new_frames_only_swaps_the_track_streamlit_webrtc_builds(webrtc_module):
    from streamlit_webrtc import process

    from knn.rtc import new_frames_track, send_new_frames_only

    send_new_frames_only()
    send_new_frames_only()  # twice: the same class, not a subclass of a subclass
    assert webrtc_module.AsyncVideoProcessTrack is new_frames_track()
    assert new_frames_track().__mro__[1] is process.AsyncVideoProcessTrack
    assert process.AsyncVideoProcessTrack is not new_frames_track()  # others' imports untouched
