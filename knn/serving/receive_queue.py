"""An adaptation of aioice: a short kernel queue on each WebRTC socket, so that a server past its
capacity works on the present, not on video seconds old.

Past capacity the event loop reads a socket slower than the camera fills it, so aioice's 256 kB
queue stays full and every packet, the answers to consent checks too, waits ~15 s behind it.
Off unless asked for (`KNN_UDP_RECEIVE_QUEUE`): near capacity a short queue turns bursts into lost
packets. `short_receive_queues` sets the size for connections made from now on, after checking
that the installed aioice fits; otherwise it logs one warning and aioice stays as it is. Numbers:
docs/performance.md, "Serving adaptations".
"""

from __future__ import annotations

import logging
from types import ModuleType

from .adaptation_checks import unchecked_version, unread_source

_LOG = logging.getLogger(__name__)

CHECKED_AIOICE = ("0.13.0",)
"""aioice versions whose socket set-up this was read against."""
RECEIVE_QUEUE = 32768
"""Bytes to ask of the kernel per socket on a server past capacity: about two seconds of a busy
browser's video (16 kB lost a single camera's keyframes; docs/performance.md). Not the default:
on a server near capacity, queues this short lose bursts of packets and the video stalls."""
SIZE_NAME = "UDP_SOCKET_BUFFER_SIZE"
READ_AT_OPEN = f"turn.{SIZE_NAME}"
"""How aioice.ice reads the size when it opens a host socket (so a new value takes effect)."""


def check_receive_queues(version: str, ice: ModuleType, turn: ModuleType) -> list[str]:
    """What keeps `short_receive_queues` from applying to this aioice; empty when it fits."""
    problems = unchecked_version("aioice", version, CHECKED_AIOICE)
    if not isinstance(getattr(turn, SIZE_NAME, None), int):
        problems.append(f"aioice.turn.{SIZE_NAME} is missing")
    return problems + unread_source(
        "aioice.ice", ice, READ_AT_OPEN, f"aioice.ice no longer reads {READ_AT_OPEN} when it opens a socket"
    )


def short_receive_queues(
    size: int = RECEIVE_QUEUE,
    *,
    version: str | None = None,
    ice: ModuleType | None = None,
    turn: ModuleType | None = None,
) -> bool:
    """Make the UDP sockets of aioice connections made from now on ask the kernel for `size` bytes
    of receive queue (the last call wins). The keyword arguments name what to adapt (the installed
    aioice by default; tests pass others). Returns True if it applies, False (after one logged
    warning) if aioice is left stock."""
    if version is None or ice is None or turn is None:
        import aioice
        from aioice import ice as aioice_ice
        from aioice import turn as aioice_turn

        version, ice, turn = aioice.__version__, aioice_ice, aioice_turn
    problems = check_receive_queues(version, ice, turn)
    if problems:
        _LOG.warning("WebRTC sockets keep aioice's receive queue (%s); aioice is left as it is.", "; ".join(problems))
        return False
    setattr(turn, SIZE_NAME, size)
    return True
