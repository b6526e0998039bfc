"""Adaptations of aiortc: a floor under its receive-bandwidth estimate, a ceiling on what it sends,
and the encoder's word to the track whose results it sends.

On a busy server aiortc's delay-based estimate reads the event loop's own delays as congestion
and can fall to tens of kbit/s; Chromium then drops frames. `BITRATE_FLOOR` keeps the estimate at
or above a floor (a subclass of `aiortc.rate.RemoteBitrateEstimator`); the browser's own
loss-based estimate still answers a real network's congestion.

On a fast network aiortc's encoder climbs to 1.5 Mbit/s, re-created at each step, for a picture
that came in at 150-600 kbit/s. `BITRATE_CEILING` lowers the bounds aiortc's video encoders keep
their target bitrate within (their modules' public constants).

streamlit-webrtc hands the results to the encoder through two buffered relays, which queue them.
`ENCODER_WORD` makes each video encoder call the callable a frame carries in `opaque` as it takes
the frame (knn.live.pipeline.ResultTrack waits for that word before it hands out the next result).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .adapt import Adaptation, changed_signature, unread_source
from .settings import MAX_VIDEO_BITRATE, MIN_VIDEO_BITRATE

ADD_PARAMETERS = ["self", "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]
ENCODE_PARAMETERS = ["self", "frame", "force_keyframe"]


# ---- the floor -----------------------------------------------------------------------------------


def _find_estimator() -> tuple[ModuleType, ModuleType]:
    from aiortc import rate, rtcrtpreceiver

    return rate, rtcrtpreceiver


def _check_estimator(found: tuple[ModuleType, ModuleType]) -> list[str]:
    rate, receiver = found
    estimator = getattr(rate, "RemoteBitrateEstimator", None)
    problems = changed_signature(
        "aiortc.rate.RemoteBitrateEstimator.add", getattr(estimator, "add", None), ADD_PARAMETERS
    )
    built = getattr(receiver, "RemoteBitrateEstimator", None)
    if built is not estimator and not (isinstance(built, type) and getattr(built, "floor_bps", None)):
        problems.append("aiortc.rtcrtpreceiver no longer builds aiortc.rate.RemoteBitrateEstimator")
    return problems


def _floor(found: tuple[ModuleType, ModuleType], bps: int | None) -> None:
    rate, receiver = found
    floored = floored_estimator(rate.RemoteBitrateEstimator, MIN_VIDEO_BITRATE if bps is None else bps)
    receiver.RemoteBitrateEstimator = floored  # type: ignore[attr-defined]  # the adaptation's one change


BITRATE_FLOOR = Adaptation(
    name="bitrate_floor",
    package="aiortc",
    checked="1.16.0",
    reason="a busy loop's delays read as congestion: the estimate falls to tens of kbit/s and Chromium drops frames",
    kept_by="the slowest of 4 tabs 11.2-18.2 fps without it, 27.4-29.0 with (docs/performance.md); tests/test_rtc.py",
    lost="aiortc's bandwidth estimate for the cameras has no floor",
    find=_find_estimator,
    check=_check_estimator,
    change=_floor,
)
"""Applied with the floor in bit/s (KNN_MIN_BITRATE; 0: not applied)."""


def floored_estimator(estimator: type, bps: int) -> type:
    """A subclass of aiortc's estimator whose reported bitrate is at least `bps`."""
    base: Any = getattr(estimator, "stock", estimator)  # applying twice floors once; a class known at run time

    class FlooredRemoteBitrateEstimator(base):
        stock = base
        floor_bps = bps

        def add(
            self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
        ) -> tuple[int, list[int]] | None:
            estimate = super().add(arrival_time_ms, abs_send_time, payload_size, ssrc)
            if estimate is None:
                return None
            bitrate, ssrcs = estimate
            return max(int(bitrate), self.floor_bps), ssrcs

    return FlooredRemoteBitrateEstimator


# ---- the ceiling ---------------------------------------------------------------------------------

BOUNDS = ("DEFAULT_BITRATE", "MIN_BITRATE", "MAX_BITRATE")
"""The module constants each of aiortc's video encoders starts at and keeps its target between."""
_stock_bounds: dict[str, dict[str, int]] = {}  # module name -> its constants before the first change


def _find_encoders() -> tuple[ModuleType, ...]:
    from aiortc.codecs import h264, vpx

    return vpx, h264


def _check_encoders(modules: tuple[ModuleType, ...]) -> list[str]:
    problems = []
    for module in modules:
        name = module.__name__
        problems += [f"{name}.{b} is missing" for b in BOUNDS if not isinstance(getattr(module, b, None), int)]
        problems += unread_source(
            name, module, "min(bitrate, MAX_BITRATE)", f"{name} no longer bounds its target bitrate by MAX_BITRATE"
        )
    return problems


def _ceiling(modules: tuple[ModuleType, ...], bps: int | None) -> None:
    cap = MAX_VIDEO_BITRATE if bps is None else bps
    for module in modules:
        stock = _stock_bounds.setdefault(module.__name__, {bound: getattr(module, bound) for bound in BOUNDS})
        module.MAX_BITRATE = cap  # type: ignore[attr-defined]  # aiortc's public constants, read at each change of rate
        module.DEFAULT_BITRATE = min(stock["DEFAULT_BITRATE"], cap)  # type: ignore[attr-defined]  # capped from the start
        module.MIN_BITRATE = min(stock["MIN_BITRATE"], cap)  # type: ignore[attr-defined]  # a cap under the floor holds


BITRATE_CEILING = Adaptation(
    name="bitrate_ceiling",
    package="aiortc",
    checked="1.16.0",
    reason="on a LAN aiortc climbs to 1.5 Mbit/s, a new encoder (a keyframe) each step, for a 150-600 kbit/s picture",
    kept_by="VP8 encode 2.0 vs 3.0 ms a frame at 500 kbit/s vs 1.5 Mbit/s (bench/overlay.py); no live A/B on record",
    lost="aiortc's encoders may climb to 1.5 Mbit/s",
    find=_find_encoders,
    check=_check_encoders,
    change=_ceiling,
)
"""Applied with the ceiling in bit/s (KNN_MAX_BITRATE; 0: not applied)."""


# ---- the encoder's word --------------------------------------------------------------------------


def _find_sender() -> tuple[ModuleType, ModuleType]:
    import aiortc.codecs
    from aiortc import rtcrtpsender

    return aiortc.codecs, rtcrtpsender


def _check_sender(found: tuple[ModuleType, ModuleType]) -> list[str]:
    codecs, sender = found
    stock = getattr(codecs, "get_encoder", None)
    problems = [] if callable(stock) else ["aiortc.codecs.get_encoder is missing"]
    built = getattr(sender, "get_encoder", None)
    if built is not stock and getattr(built, "stock", None) is not stock:
        problems.append("aiortc.rtcrtpsender no longer builds its encoders with aiortc.codecs.get_encoder")
    vp8 = getattr(getattr(codecs, "vpx", None), "Vp8Encoder", None)
    encode = getattr(vp8, "encode", None)
    return problems + changed_signature("aiortc.codecs.vpx.Vp8Encoder.encode", encode, ENCODE_PARAMETERS)


def _tell(found: tuple[ModuleType, ModuleType], _: object) -> None:
    codecs, sender = found
    sender.get_encoder = TellingGetEncoder(codecs.get_encoder)  # type: ignore[attr-defined]  # the adaptation's one change


ENCODER_WORD = Adaptation(
    name="encoder_word",
    package="aiortc",
    checked="1.16.0",
    reason="streamlit-webrtc's two buffered relays queued 10-17 results ahead of the encoder",
    kept_by="8 peers: p95 1.2-1.4 s before, 0.42-0.63 s with it (docs/performance.md); tests/test_rtc.py",
    lost="Results may queue for the encoder in streamlit-webrtc's relays",
    find=_find_sender,
    check=_check_sender,
    change=_tell,
)


class TellingGetEncoder:
    """aiortc's `get_encoder` (`stock`) whose video encoders tell a frame's `opaque` callable they took it."""

    def __init__(self, stock: Callable[[Any], Any]) -> None:
        self.stock = getattr(stock, "stock", stock)  # applying twice wraps once

    def __call__(self, codec: Any) -> Any:
        encoder = self.stock(codec)
        if isinstance(getattr(type(encoder), "target_bitrate", None), property):  # a video encoder
            encoder.encode = functools.partial(_encode_and_tell, encoder.encode)
        return encoder


def _encode_and_tell(encode: Callable[..., Any], frame: Any, force_keyframe: bool = False) -> Any:
    taken = getattr(frame, "opaque", None)
    if callable(taken):  # the source track waits for this word (knn.live.pipeline.ResultTrack)
        taken()
    return encode(frame, force_keyframe)
