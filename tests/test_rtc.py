"""knn.serving.rtc: aiortc's encoder for the video sent back never aims above the ceiling and tells
the track when it took a frame, and each adaptation refuses an aiortc that changed, leaving it stock."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
import types

import av
import numpy as np
import pytest
from aiortc.contrib.media import MediaRelay

from knn.serving.adapt import adapt
from knn.serving.rtc import BITRATE_CEILING, BOUNDS, ENCODER_WORD
from tests.adapted import adapted


def test_the_installed_aiortc_fits():
    for adaptation in (BITRATE_CEILING, ENCODER_WORD):
        assert adaptation.check(adaptation.find()) == [], adaptation.name


@pytest.fixture()
def bounds():
    """aiortc's video encoders' bitrate bounds, stock during the test and put back afterwards."""
    from aiortc.codecs import h264, vpx

    from knn.serving import rtc

    before = {m: {b: getattr(m, b) for b in BOUNDS} for m in (vpx, h264)}
    for m in (vpx, h264):  # stock to start with, even if an in-process app (test_links) applied the ceiling
        for name, value in rtc.stock_bounds(m).items():
            setattr(m, name, value)
    yield
    for module, values in before.items():
        for name, value in values.items():
            setattr(module, name, value)


@pytest.fixture()
def sender():
    """aiortc's sender module, with the encoder factory it uses put back afterwards."""
    import aiortc.codecs
    from aiortc import rtcrtpsender

    before = rtcrtpsender.get_encoder
    rtcrtpsender.get_encoder = aiortc.codecs.get_encoder
    yield rtcrtpsender
    rtcrtpsender.get_encoder = before


def _vp8():
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    return RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


def test_the_ceiling_caps_what_the_video_encoder_aims_at_and_encodes(sender, bounds):
    from aiortc.codecs.vpx import Vp8Encoder

    stock = sender.get_encoder(_vp8())
    stock.target_bitrate = 1_200_000
    assert stock.target_bitrate == 1_200_000  # aiortc alone follows the estimate up to 1.5 Mbit/s
    adapted(BITRATE_CEILING, 300_000)  # as the server does: KNN_STOCK=bitrate_ceiling leaves it stock
    assert adapt(BITRATE_CEILING, 300_000)  # twice: the same bounds
    encoder = sender.get_encoder(_vp8())
    assert isinstance(encoder, Vp8Encoder)
    assert encoder.target_bitrate == 300_000, "not capped"  # aiortc starts at 500 kbit/s: capped from the start
    encoder.target_bitrate = 1_200_000  # the browser's estimate climbs
    assert encoder.target_bitrate == 300_000
    encoder.target_bitrate = 260_000  # under the cap it still follows
    assert encoder.target_bitrate == 260_000
    payloads, _ = encoder.encode(_frame())
    assert payloads and encoder.codec.bit_rate == 260_000
    assert adapt(BITRATE_CEILING, 100_000)  # under aiortc's own least (250 kbit/s): still the ceiling
    low = sender.get_encoder(_vp8())
    low.target_bitrate = 1_200_000
    assert low.target_bitrate == 100_000


def _frame() -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 90_000)
    return frame


def test_each_video_encoder_tells_its_frame_it_took_it(sender):
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    adapted(ENCODER_WORD)  # as the server does: KNN_STOCK=encoder_word leaves it stock
    assert adapt(ENCODER_WORD)  # twice: one word per frame, not two
    frame, taken = _frame(), []
    frame.opaque = lambda: taken.append(True)
    payloads, _ = sender.get_encoder(_vp8()).encode(frame)
    assert payloads and taken == [True], "the frame's source heard nothing"
    opus = sender.get_encoder(
        RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    )
    assert "encode" not in vars(opus)  # no video: left stock


def test_a_sender_that_no_longer_uses_get_encoder_is_refused(sender, caplog):
    import aiortc.codecs

    other = types.SimpleNamespace(get_encoder=lambda codec: None)
    assert ENCODER_WORD.check((aiortc.codecs, other)) == [
        "aiortc.rtcrtpsender no longer builds its encoders with aiortc.codecs.get_encoder"
    ]
    renamed = types.SimpleNamespace(
        vpx=types.SimpleNamespace(Vp8Encoder=type("Vp8Encoder", (), {"encode": lambda self, frame, keyframe=0: None})),
        get_encoder=aiortc.codecs.get_encoder,
    )
    assert ENCODER_WORD.check((renamed, sender)) == [
        "aiortc.codecs.vpx.Vp8Encoder.encode takes ['self', 'frame', 'keyframe'], "
        "expected ['self', 'frame', 'force_keyframe']"
    ]
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert adapt(ENCODER_WORD, version="2.0.0") is False
    assert sender.get_encoder is aiortc.codecs.get_encoder  # left as it was
    assert any("aiortc 2.0.0 is not the version" in r.getMessage() for r in caplog.records)


def test_an_encoder_module_without_its_bounds_is_refused(bounds):
    from aiortc.codecs import vpx

    moved = types.ModuleType("aiortc.codecs.vpx")  # the bounds went elsewhere
    assert BITRATE_CEILING.check((moved,)) == [
        *(f"aiortc.codecs.vpx.{b} is missing" for b in BOUNDS),
        "the source of aiortc.codecs.vpx is missing",
    ]
    assert adapt(BITRATE_CEILING, 300_000, version=BITRATE_CEILING.checked, found=(moved,)) is False
    assert vpx.MAX_BITRATE == 1_500_000


def test_behind_streamlit_webrtcs_relays_the_encoder_gets_the_newest_result_not_a_queue(sender):
    """streamlit-webrtc sends the results through two buffered `MediaRelay`s into aiortc's sender,
    as here over a real loopback connection. Results published faster than the encoder takes them
    must not queue in the relays: once the encoder's word is known, at most one result is handed
    out beyond those encoded."""
    from aiortc import RTCPeerConnection

    from knn.live.pipeline import ResultTrack

    adapted(ENCODER_WORD)  # as the server does: KNN_STOCK=encoder_word leaves it stock
    capped = sender.get_encoder
    handed: list[object] = []
    handed_at_encode: list[int] = []

    def recording(codec):
        encoder = capped(codec)
        encode = encoder.encode

        def counted(frame, force_keyframe=False):
            handed_at_encode.append(len(handed))
            return encode(frame, force_keyframe)

        encoder.encode = counted
        return encoder

    sender.get_encoder = recording
    track = ResultTrack(lambda: handed.append)
    rng = np.random.default_rng(0)
    noise = [
        av.VideoFrame.from_ndarray(rng.integers(0, 256, (480, 640, 3), np.uint8), format="rgb24")
        .reformat(format="yuv420p")
        .to_ndarray()
        for _ in range(4)
    ]  # noise: slow to encode, as a camera is

    async def run():
        relay = MediaRelay()
        server, browser = RTCPeerConnection(), RTCPeerConnection()
        server.addTrack(relay.subscribe(relay.subscribe(track)))  # streamlit-webrtc's two subscriptions
        await server.setLocalDescription(await server.createOffer())
        await browser.setRemoteDescription(server.localDescription)
        await browser.setLocalDescription(await browser.createAnswer())
        await server.setRemoteDescription(browser.localDescription)
        try:  # a result every millisecond until the encoder took 40 (a deadline only so a failure ends)
            deadline, n = time.monotonic() + 120, 0
            while len(handed_at_encode) < 40:
                if time.monotonic() > deadline:
                    pytest.fail(f"the encoder took only {len(handed_at_encode)} of {n} results in 120 s")
                # A new frame each time, as the pipeline publishes: `recv` stamps the frame it hands
                # out, so one object published twice could change its pts while queued for the
                # encoder, and libvpx refuses a pts below its first.
                track.publish(av.VideoFrame.from_ndarray(noise[n % len(noise)], format="yuv420p"), n)
                n += 1
                await asyncio.sleep(0.001)
        finally:
            track.end_stream()
            await server.close()
            await browser.close()

    asyncio.run(run())
    ahead = [count - taken for taken, count in enumerate(handed_at_encode, 1)]
    assert max(ahead[10:]) <= 1, ahead  # the first few went out before the encoder's first word
    assert len(handed) < 100, len(handed)  # the newest went out; the rest were replaced, not queued
