"""knn.serving.rtc: aiortc's bandwidth estimate for incoming video never falls below the floor,
and the adaptation refuses an aiortc it was not checked against, leaving it stock."""
from __future__ import annotations

import logging
import types

import pytest

from knn.serving.rtc import CHECKED_AIORTC, check_estimator, floor_receive_bitrate
from knn.serving.settings import MIN_VIDEO_BITRATE


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
def receiver():
    """aiortc's receiver module, with the estimator it builds put back afterwards (the app, run in
    this process by other tests, may have floored it already)."""
    from aiortc import rate, rtcrtpreceiver

    before = rtcrtpreceiver.RemoteBitrateEstimator
    rtcrtpreceiver.RemoteBitrateEstimator = rate.RemoteBitrateEstimator
    yield rtcrtpreceiver
    rtcrtpreceiver.RemoteBitrateEstimator = before


def test_the_floor_holds_where_aiortc_alone_goes_below_it(receiver):
    from aiortc import rate

    plain = _estimates(receiver.RemoteBitrateEstimator)
    assert plain and min(plain) < MIN_VIDEO_BITRATE  # the estimator alone reads congestion
    assert floor_receive_bitrate()
    assert floor_receive_bitrate()  # twice: still one floor, not a floor of a floor
    floored_cls = receiver.RemoteBitrateEstimator
    assert floored_cls.__mro__[1] is rate.RemoteBitrateEstimator
    floored = _estimates(floored_cls)
    assert floored and min(floored) == MIN_VIDEO_BITRATE
    assert [max(a, MIN_VIDEO_BITRATE) for a in plain] == floored  # only the floor differs
    assert rate.RemoteBitrateEstimator.add is not floored_cls.add  # aiortc's own class untouched


def test_the_installed_aiortc_is_one_the_adaptation_was_checked_against(receiver):
    import aiortc
    from aiortc import rate

    assert check_estimator(aiortc.__version__, rate, receiver) == []


class _Changed:
    """An estimator whose `add` takes other arguments than the one the floor was written for."""

    def add(self, packet, now_ms):
        return 1000, [1]


@pytest.mark.parametrize("version, estimator, problem", [
    ("1.16.0", _Changed, "takes ['self', 'packet', 'now_ms']"),
    ("2.0.0", None, "aiortc 2.0.0 is not a version"),
])
def test_a_mismatched_aiortc_is_refused_with_a_warning_and_left_stock(version, estimator, problem, caplog):
    from aiortc import rate as real_rate

    estimator = estimator or real_rate.RemoteBitrateEstimator
    rate = types.SimpleNamespace(RemoteBitrateEstimator=estimator)
    receiver = types.SimpleNamespace(RemoteBitrateEstimator=estimator)
    with caplog.at_level(logging.WARNING, logger="knn.serving.rtc"):
        assert floor_receive_bitrate(version=version, rate=rate, receiver=receiver) is False
    assert receiver.RemoteBitrateEstimator is estimator  # left as it was
    (record,) = [r for r in caplog.records if r.name == "knn.serving.rtc"]
    assert problem in record.getMessage() and "left as it is" in record.getMessage()


def test_a_receiver_that_no_longer_builds_the_estimator_is_refused(caplog):
    from aiortc import rate as real_rate

    rate = types.SimpleNamespace(RemoteBitrateEstimator=real_rate.RemoteBitrateEstimator)
    receiver = types.SimpleNamespace()  # its estimator now comes from elsewhere
    assert check_estimator(CHECKED_AIORTC[0], rate, receiver) == [
        "aiortc.rtcrtpreceiver no longer builds aiortc.rate.RemoteBitrateEstimator"]
    assert floor_receive_bitrate(version=CHECKED_AIORTC[0], rate=rate, receiver=receiver) is False
    assert not hasattr(receiver, "RemoteBitrateEstimator")
