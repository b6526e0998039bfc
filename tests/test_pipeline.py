"""knn.live.pipeline: the camera sink, the shared model worker and the result track, wired as
streamlit-webrtc wires them (a MediaRelay between the tracks), with the real embedder."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from knn.live.pipeline import ResultTrack
from knn.live.session import LiveError, LiveSession
from knn.live.worker import ModelWorker
from knn.serving.model_job import ModelJob
from tests.frames import BLUE, RED, Camera, SlowEmbedder, show, solid, wait_until


async def _stream(session: LiveSession, camera: Camera, seconds: float) -> list:
    """Stream `camera` into the session as streamlit-webrtc does (the sink on a relayed camera,
    the result track relayed twice to the sender); return every frame the sender got."""
    relay = MediaRelay()
    sink = session.pipeline.sink
    sink.addTrack(relay.subscribe(camera.track))
    sink.start()
    sender_side = relay.subscribe(relay.subscribe(session.pipeline.output))
    sent, end = [], time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            sent.append(await asyncio.wait_for(sender_side.recv(), 5))
    finally:
        camera.track.stop()  # the browser's camera goes away: the stream of results must end too
        with pytest.raises(MediaStreamError):
            while True:
                await asyncio.wait_for(sender_side.recv(), 5)
    return sent


def test_a_slow_model_on_a_30_fps_camera_sends_each_result_once_and_drops_instead_of_queueing(embedder):
    # How long frames wait is a benchmark's figure (bench/live.py: latency p95, first -> last 10 s);
    # here only what holds on any machine: every frame is processed, dropped or (at most two, the
    # last ones) in flight; no result goes twice; the slow model drops frames instead of queueing.
    session = LiveSession(SlowEmbedder(embedder, 0.08), classes=["red"], worker=ModelWorker("test-stream"))
    sent = asyncio.run(_stream(session, Camera(changing=True), 3.0))  # no frame like the last: none reused
    stats = session.snapshot().stats
    assert stats.frames_processed >= 3
    assert stats.frames_received > stats.frames_processed  # the camera outpaces an 80 ms model
    assert stats.frames_dropped >= 1  # a waiting frame was replaced by a newer one, not queued behind it
    assert stats.frames_received - stats.frames_processed - stats.frames_dropped <= 2  # none lost
    assert len({id(f) for f in sent}) == len(sent)  # no result sent twice
    assert stats.frames_processed - 2 <= len(sent) <= stats.frames_processed
    pts = [f.pts for f in sent]
    assert pts == sorted(set(pts))  # timestamps keep increasing for the encoder
    latencies, _, _ = session.pipeline.latencies(0)
    assert len(latencies) >= len(sent) - 2


def test_the_result_track_serves_the_next_camera_stream_after_one_ends(embedder):
    session = LiveSession(embedder, classes=["red"], worker=ModelWorker("test-restart"))
    first = asyncio.run(_stream(session, Camera(RED), 1.0))
    second = asyncio.run(_stream(session, Camera(BLUE), 1.0))  # STOP, then START again
    assert first and second
    assert session.pipeline.output.readyState == "live"


def test_on_frame_never_waits_for_a_busy_model_and_its_frame_gets_its_turn(embedder):
    worker = ModelWorker("test-busy", threads=2)
    busy = [LiveSession(SlowEmbedder(embedder, 0.3), classes=["red"], worker=worker) for _ in range(2)]
    other = LiveSession(embedder, classes=["red", "blue"], worker=worker)
    show(other, solid(BLUE))
    other.add_latest("blue")
    show(other, solid(RED))
    other.add_latest("red")
    for b in busy:
        b.pipeline.on_frame(solid(RED))
    wait_until(lambda: worker.waiting() == 0, 5, "the busy frames to enter the model")
    other.pipeline.on_frame(solid(BLUE))  # returns at once: handed over, not waited for
    assert other.snapshot().stats.frames_processed == 2  # still waiting: both threads are busy
    result = asyncio.run(asyncio.wait_for(other.pipeline.output.recv(), 5))
    assert result.width == 64
    assert other.snapshot().prediction.label == "blue"
    for b in busy:
        wait_until(lambda b=b: b.snapshot().stats.frames_processed == 1, 5, "the busy frames")


def test_frames_during_a_backbone_switch_pass_captioned_and_unclassified(embedder):
    session = LiveSession(embedder, classes=["red"], worker=ModelWorker("test-switch"))
    show(session, solid(RED))
    session.add_latest("red")
    slower = SlowEmbedder(embedder, 0.5)  # re-embedding the one example takes half a second
    switch = threading.Thread(target=session.set_embedder, args=(slower,))
    switch.start()
    try:
        wait_until(lambda: session.frame_embedder() is None, 5, "the switch to start")
        out = show(session, solid(RED, 320, 240))
        assert out.height == 240
        assert session.snapshot().stats.frames_processed == 1  # passed through, not classified
    finally:
        switch.join()
    assert session.embedder is slower


def test_frames_while_the_model_loads_pass_captioned_and_add_says_why(embedder):
    job = ModelJob(embedder.backbone)  # the process's model before it is built (never started here)
    session = LiveSession(job, classes=["red"], worker=ModelWorker("test-loading"))
    out = show(session, solid(RED, 320, 240))
    assert out.height == 240  # sent back captioned "model loading…", unclassified
    snap = session.snapshot()
    assert snap.prediction is None and (snap.stats.frames_received, snap.stats.frames_processed) == (1, 0)
    with pytest.raises(LiveError, match="The model is still loading"):
        session.add_latest("red")
    with pytest.raises(LiveError, match="The model is still loading"):
        session.start_recording("red")


def test_a_result_drawn_when_taken_is_drawn_only_if_taken():
    sent, drawn = [], []
    track = ResultTrack(lambda: sent.append)
    a, b = solid(RED), solid(BLUE)

    def draw(frame, info):
        def make():
            drawn.append(info)
            return frame, info

        return make

    async def run():
        track.publish_later(draw(a, "a"))
        track.publish_later(draw(b, "b"))  # replaces a before the encoder asks: a is never drawn
        assert await track.recv() is b
        track.publish(a, "plain")
        assert await track.recv() is a

    asyncio.run(run())
    assert drawn == ["b"]
    assert sent == ["b", "plain"]  # the drawing's own info is what the encoder's side is told


def test_once_the_encoder_confirms_a_frame_the_next_result_waits_for_its_word():
    """streamlit-webrtc's relays would queue every result handed out; the track hands out the
    next only when the encoder took the last (its `opaque`), or after ACK_WAIT without word."""
    track = ResultTrack()
    track.ACK_WAIT = 0.3
    a, b, c, d = solid(RED), solid(BLUE), solid(RED), solid(BLUE)

    async def run():
        track.publish(a)
        first = await track.recv()
        track.publish(b)
        assert await track.recv() is b  # no word from an encoder yet: no waiting (a stock encoder)
        first.opaque()  # an old frame's word: the track now knows its encoder speaks
        track.publish(c)
        third = await track.recv()
        track.publish(d)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(pending := asyncio.ensure_future(track.recv())), 0.1)
        third.opaque()  # the encoder took c: d goes out
        assert await asyncio.wait_for(pending, 1) is d
        track.publish(c)
        started = time.monotonic()
        assert await track.recv() is c  # d was never confirmed: c goes out after ACK_WAIT
        assert time.monotonic() - started >= 0.25
        track.publish(a)
        track.end_stream()  # an end never waits for the encoder
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(track.recv(), 0.1)
        track.new_stream()  # c was never confirmed, but that stream's encoder is gone
        track.publish(b)
        assert await asyncio.wait_for(track.recv(), 0.1) is b

    asyncio.run(run())


def test_the_newest_result_replaces_one_not_taken_and_an_end_is_read_once():
    track = ResultTrack()
    a, b = solid(RED), solid(BLUE)

    async def run():
        track.publish(a, None)
        track.publish(b, None)
        assert await track.recv() is b  # the encoder never gets a stale result
        track.end_stream()
        with pytest.raises(MediaStreamError):
            await track.recv()
        track.end_stream()
        track.new_stream()  # a new camera stream forgets the old one's end
        track.publish(a, None)
        return await track.recv()

    assert asyncio.run(run()) is a
    assert track.readyState == "live"
    assert b.pts < a.pts


def test_answers_go_back_at_half_size_while_many_cameras_stream(embedder):
    """knn.live.answer_size, through the process's own ANSWER_SIZE: above the cameras-per-core limit
    both kinds of answer (the model's and a still frame's reused one) are half the camera's size."""
    from knn.live.answer_size import CAMERAS_PER_CORE
    from knn.live.pipeline import ANSWER_SIZE

    session = LiveSession(embedder, classes=["red"], worker=ModelWorker("test-half"))
    try:
        ANSWER_SIZE.set_cameras_per_core(1e-6)  # one camera is already too many
        half = asyncio.run(_stream(session, Camera(), 1.5))
        stats = session.snapshot().stats
        assert stats.frames_processed >= 1 and stats.frames_reused >= 10  # both kinds were sent
        ANSWER_SIZE.set_cameras_per_core(0)  # never halved
        full = asyncio.run(_stream(session, Camera(), 1.0))
    finally:
        ANSWER_SIZE.set_cameras_per_core(CAMERAS_PER_CORE)
    width, height = solid(RED).width, solid(RED).height
    assert half and {(f.width, f.height) for f in half} == {(width // 2, height // 2)}
    assert full and {(f.width, f.height) for f in full} == {(width, height)}
