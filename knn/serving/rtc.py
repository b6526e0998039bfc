"""Adaptations of aiortc: a ceiling on what it sends, and the encoder's word to the track whose
results it sends.

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
from .settings import MAX_VIDEO_BITRATE

ENCODE_PARAMETERS = ["self", "frame", "force_keyframe"]


# ---- the ceiling ---------------------------------------------------------------------------------

BOUNDS = ("DEFAULT_BITRATE", "MIN_BITRATE", "MAX_BITRATE")
"""The module constants each of aiortc's video encoders starts at and keeps its target between."""
_stock_bounds: dict[str, dict[str, int]] = {}  # module name -> its constants before the first change


def stock_bounds(module: ModuleType) -> dict[str, int]:
    """An encoder module's `BOUNDS` as aiortc set them: before the ceiling's first change, if any."""
    return dict(_stock_bounds.get(module.__name__) or {bound: getattr(module, bound) for bound in BOUNDS})


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
        stock = _stock_bounds.setdefault(module.__name__, stock_bounds(module))
        module.MAX_BITRATE = cap  # type: ignore[attr-defined]  # aiortc's public constants, read at each change of rate
        module.DEFAULT_BITRATE = min(stock["DEFAULT_BITRATE"], cap)  # type: ignore[attr-defined]  # capped from the start
        module.MIN_BITRATE = min(stock["MIN_BITRATE"], cap)  # type: ignore[attr-defined]  # a cap under the floor holds


BITRATE_CEILING = Adaptation(
    name="bitrate_ceiling",
    package="aiortc",
    checked="1.16.0",
    reason="on a LAN aiortc climbs to 1.5 Mbit/s, a new encoder (a keyframe) each step, for a 150-600 kbit/s picture",
    kept_by="a public setting kept for the bandwidth: 500 kbit/s instead of 1.5 Mbit/s sent back per camera; "
    "16 peers, five runs: the slowest 9.2 fps without it, 10.5 with (+15%, under the 20% bar; docs/adaptations.md)",
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
    kept_by="tests/test_rtc.py (stock: 299 results queued ahead of the encoder); fps alone +11% at 16 peers",
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
