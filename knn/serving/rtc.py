"""Adaptations of aiortc: a floor under its receive-bandwidth estimate, a ceiling on what it sends.

On a busy server aiortc's delay-based estimate reads the event loop's own delays as congestion
and can fall to tens of kbit/s; Chromium then drops frames. `floor_receive_bitrate` keeps the
estimate at or above a floor (a subclass of `aiortc.rate.RemoteBitrateEstimator`); the browser's
own loss-based estimate still answers a real network's congestion.

On a fast network aiortc's encoder climbs to 1.5 Mbit/s, re-created at each step, for a picture
that came in at 150-600 kbit/s. `cap_send_bitrate` caps its `target_bitrate` (subclasses of the
encoders `aiortc.rtcrtpsender.get_encoder` builds), and the same encoders tell the frame's source
when they take a frame (a callable in `frame.opaque`, knn.live.pipeline.ResultTrack), so no result
waits in streamlit-webrtc's relays. Each checks the installed aiortc first; otherwise it logs one
warning and aiortc stays as it is. Numbers: docs/performance.md, "Serving adaptations".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

from .adaptation_checks import changed_signature, unchecked_version
from .settings import MAX_VIDEO_BITRATE, MIN_VIDEO_BITRATE

_LOG = logging.getLogger(__name__)

CHECKED_AIORTC = ("1.16.0",)
"""aiortc versions whose estimator and receiver this adaptation was read against."""
ADD_PARAMETERS = ["self", "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]
ENCODE_PARAMETERS = ["self", "frame", "force_keyframe"]


def check_estimator(version: str, rate: ModuleType, receiver: ModuleType) -> list[str]:
    """What keeps the floor from applying to this aiortc; empty when it fits."""
    estimator = getattr(rate, "RemoteBitrateEstimator", None)
    problems = [
        *unchecked_version("aiortc", version, CHECKED_AIORTC),
        *changed_signature("aiortc.rate.RemoteBitrateEstimator.add", getattr(estimator, "add", None), ADD_PARAMETERS),
    ]
    built = getattr(receiver, "RemoteBitrateEstimator", None)
    if built is not estimator and not (isinstance(built, type) and getattr(built, "floor_bps", None)):
        problems.append("aiortc.rtcrtpreceiver no longer builds aiortc.rate.RemoteBitrateEstimator")
    return problems


def floor_receive_bitrate(
    bps: int = MIN_VIDEO_BITRATE,
    *,
    version: str | None = None,
    rate: ModuleType | None = None,
    receiver: ModuleType | None = None,
) -> bool:
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
    receiver.RemoteBitrateEstimator = floored_estimator(rate.RemoteBitrateEstimator, bps)  # type: ignore[attr-defined]  # writing a ModuleType attribute: the adaptation's one change
    return True


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


def check_sender(version: str, codecs: ModuleType, sender: ModuleType) -> list[str]:
    """What keeps the ceiling from applying to this aiortc; empty when it fits."""
    problems = unchecked_version("aiortc", version, CHECKED_AIORTC)
    stock = getattr(codecs, "get_encoder", None)
    if not callable(stock):
        problems.append("aiortc.codecs.get_encoder is missing")
    built = getattr(sender, "get_encoder", None)
    if built is not stock and getattr(built, "stock", None) is not stock:
        problems.append("aiortc.rtcrtpsender no longer builds its encoders with aiortc.codecs.get_encoder")
    vp8 = getattr(getattr(codecs, "vpx", None), "Vp8Encoder", None)
    rate = getattr(vp8, "target_bitrate", None)
    if not (isinstance(rate, property) and rate.fset is not None):
        problems.append("aiortc.codecs.vpx.Vp8Encoder has no settable target_bitrate")
    problems += changed_signature(
        "aiortc.codecs.vpx.Vp8Encoder.encode", getattr(vp8, "encode", None), ENCODE_PARAMETERS
    )
    return problems


def cap_send_bitrate(
    bps: int = MAX_VIDEO_BITRATE,
    *,
    version: str | None = None,
    codecs: ModuleType | None = None,
    sender: ModuleType | None = None,
) -> bool:
    """Make aiortc's video encoders never aim above `bps` (idempotent; the last cap wins).

    The keyword arguments name what to adapt (the installed aiortc by default; tests pass others).
    Returns True if the cap applies, False (after one logged warning) if aiortc is left stock.
    """
    if codecs is None or sender is None or version is None:
        import aiortc
        import aiortc.codecs
        from aiortc import rtcrtpsender

        version, codecs, sender = aiortc.__version__, aiortc.codecs, rtcrtpsender
    problems = check_sender(version, codecs, sender)
    if problems:
        _LOG.warning("Not capping aiortc's send bitrate (%s); aiortc is left as it is.", "; ".join(problems))
        return False
    sender.get_encoder = capped_get_encoder(codecs.get_encoder, bps)  # type: ignore[attr-defined]  # writing a ModuleType attribute: the adaptation's one change
    return True


def capped_get_encoder(get_encoder: Callable[[Any], Any], bps: int) -> CappedGetEncoder:
    """`get_encoder` whose encoders with a `target_bitrate` never aim above `bps`."""
    return CappedGetEncoder(getattr(get_encoder, "stock", get_encoder), bps)  # applying twice caps once


class CappedGetEncoder:
    """`capped_get_encoder`'s function; `stock` is aiortc's."""

    def __init__(self, stock: Callable[[Any], Any], bps: int) -> None:
        self.stock, self.cap_bps = stock, bps

    def __call__(self, codec: Any) -> Any:
        encoder = self.stock(codec)
        kind: type = type(encoder)
        rate = getattr(kind, "target_bitrate", None)
        if isinstance(rate, property) and rate.fset is not None:
            encoder = capped_encoder(kind, self.cap_bps)()
        return encoder


@cache
def capped_encoder(encoder: type, bps: int) -> type:
    """A subclass of an aiortc encoder whose `target_bitrate` is at most `bps`."""
    base: Any = encoder  # a class known at run time
    rate: property = base.target_bitrate

    class CappedEncoder(base):
        cap_bps = bps

        @property
        def target_bitrate(self) -> int:
            return int(rate.__get__(self))

        @target_bitrate.setter
        def target_bitrate(self, bitrate: int) -> None:
            rate.__set__(self, min(int(bitrate), self.cap_bps))

        def __init__(self) -> None:
            super().__init__()
            self.target_bitrate = self.target_bitrate  # its start value, capped

        def encode(self, frame: Any, force_keyframe: bool = False) -> Any:
            taken = getattr(frame, "opaque", None)
            if callable(taken):  # the source track waits for this word (knn.live.pipeline.ResultTrack)
                taken()
            return super().encode(frame, force_keyframe)

    CappedEncoder.__name__ = CappedEncoder.__qualname__ = f"Capped{encoder.__name__}"
    return CappedEncoder
