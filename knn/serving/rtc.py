"""The one adaptation of a library's internals: a floor under aiortc's receive-bandwidth estimate.

aiortc estimates each incoming video stream's bandwidth from packet arrival times taken on its
event loop (Google's delay-based REMB estimator) and tells the browser the result. On a busy
server those arrival times carry the server's own scheduling delays, the estimator reads
congestion, and the figure it sends can fall to a few tens of kbit/s; Chromium then drops frames,
not just pixels (docs/performance.md). Below ~150 kbit/s a 30 fps camera cannot keep its frame
rate, so the estimate is floored there. A real network's congestion still shows as packet loss,
on which the browser's own loss-based estimate cuts the rate regardless.

aiortc has no setting for this, so `floor_receive_bitrate` makes its receivers build a subclass of
`aiortc.rate.RemoteBitrateEstimator` whose `add` floors what the stock `add` returns. It applies
only after `check_estimator` finds the installed aiortc to be a version this was read against,
with the class, the method signature and the receiver's use of it as expected; otherwise it logs
one warning and aiortc stays as it is.
"""
from __future__ import annotations

import inspect
import logging
from types import ModuleType

from .settings import MIN_VIDEO_BITRATE

_LOG = logging.getLogger(__name__)

CHECKED_AIORTC = ("1.16.0",)
"""aiortc versions whose estimator and receiver this adaptation was read against."""
ADD_PARAMETERS = ["self", "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]


def check_estimator(version: str, rate: ModuleType, receiver: ModuleType) -> list[str]:
    """What keeps the floor from applying to this aiortc; empty when it fits."""
    problems = []
    if version not in CHECKED_AIORTC:
        problems.append(f"aiortc {version} is not a version this was checked against ({', '.join(CHECKED_AIORTC)})")
    estimator = getattr(rate, "RemoteBitrateEstimator", None)
    add = getattr(estimator, "add", None)
    if not callable(add):
        problems.append("aiortc.rate.RemoteBitrateEstimator.add is missing")
    elif list(inspect.signature(add).parameters) != ADD_PARAMETERS:
        problems.append(f"RemoteBitrateEstimator.add takes {list(inspect.signature(add).parameters)}, "
                        f"expected {ADD_PARAMETERS}")
    built = getattr(receiver, "RemoteBitrateEstimator", None)
    if built is not estimator and not (isinstance(built, type) and getattr(built, "floor_bps", None)):
        problems.append("aiortc.rtcrtpreceiver no longer builds aiortc.rate.RemoteBitrateEstimator")
    return problems


def floor_receive_bitrate(bps: int = MIN_VIDEO_BITRATE, *, version: str | None = None,
                          rate: ModuleType | None = None, receiver: ModuleType | None = None) -> bool:
    """Make aiortc's video receivers never report an estimate below `bps` (idempotent).

    The keyword arguments name what to adapt (the installed aiortc by default; tests pass others).
    Returns True if the floor applies, False (after one logged warning) if aiortc is left stock.
    """
    if rate is None or receiver is None or version is None:
        import aiortc
        from aiortc import rate as aiortc_rate
        from aiortc import rtcrtpreceiver

        version, rate, receiver = aiortc.__version__, aiortc_rate, rtcrtpreceiver
    problems = check_estimator(version, rate, receiver)
    if problems:
        _LOG.warning("Not flooring aiortc's bandwidth estimate (%s); aiortc is left as it is.", "; ".join(problems))
        return False
    receiver.RemoteBitrateEstimator = floored_estimator(rate.RemoteBitrateEstimator, bps)
    return True


def floored_estimator(estimator: type, bps: int) -> type:
    """A subclass of aiortc's estimator whose reported bitrate is at least `bps`."""
    base = getattr(estimator, "stock", estimator)  # applying twice floors once

    class FlooredRemoteBitrateEstimator(base):
        stock = base
        floor_bps = bps

        def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int):
            estimate = super().add(arrival_time_ms, abs_send_time, payload_size, ssrc)
            if estimate is None:
                return None
            bitrate, ssrcs = estimate
            return max(int(bitrate), self.floor_bps), ssrcs

    return FlooredRemoteBitrateEstimator
