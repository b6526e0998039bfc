"""knn.rtc: aiortc's bandwidth estimate for incoming video never falls below the floor."""
from __future__ import annotations

import pytest


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
