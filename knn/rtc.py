"""A floor under the bandwidth aiortc asks browsers to send video at.

aiortc estimates each incoming video stream's bandwidth from packet arrival times taken on its
event loop (Google's delay-based REMB estimator) and tells the browser the result. On one busy
server those arrival times carry the server's own scheduling delays: a garbage collection or a
burst of model work delays a few packets, the estimator reads congestion, and the figure it
sends can fall to a few tens of kbit/s. Chromium then drops frames, not just pixels:
bench/live.py saw tabs of four sending 9-18 frames a second instead of 30. Below ~150 kbit/s
a 30 fps camera cannot keep its frame rate even at 320×240, so the estimate is floored there.
A real network's congestion still shows as packet loss, on which the browser's own (loss-based)
estimate cuts the rate regardless.
"""
from __future__ import annotations

import functools

MIN_VIDEO_BITRATE = 150_000
"""bit/s: the least the server asks a browser to send its camera at."""


def floor_receive_bitrate(bps: int = MIN_VIDEO_BITRATE) -> None:
    """Make aiortc never report an estimate below `bps` (once per process; idempotent)."""
    from aiortc import rate

    add = rate.RemoteBitrateEstimator.add
    original = getattr(add, "__wrapped__", add)

    @functools.wraps(original)
    def add_floored(self, *args, **kwargs):
        estimate = original(self, *args, **kwargs)
        if estimate is None:
            return None
        bitrate, ssrcs = estimate
        return max(int(bitrate), bps), ssrcs

    rate.RemoteBitrateEstimator.add = add_floored
