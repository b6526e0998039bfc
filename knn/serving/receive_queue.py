"""An adaptation of aioice: a short kernel queue on each WebRTC socket, so that a server past its
capacity works on the present, not on video seconds old.

Past capacity the event loop reads a socket slower than the camera fills it, so aioice's 256 kB
queue stays full and every packet, the answers to consent checks too, waits ~15 s behind it.
Off unless asked for (`KNN_UDP_RECEIVE_QUEUE`): near capacity a short queue turns bursts into lost
packets. `RECEIVE_QUEUE_SIZE` sets aioice's module constant, read when each socket is opened.
"""

from __future__ import annotations

from types import ModuleType

from .adapt import Adaptation, unread_source

RECEIVE_QUEUE = 32768
"""Bytes to ask of the kernel per socket on a server past capacity: about two seconds of a busy
browser's video (16 kB lost a single camera's keyframes; docs/performance.md). Not the default:
on a server near capacity, queues this short lose bursts of packets and the video stalls."""
SIZE_NAME = "UDP_SOCKET_BUFFER_SIZE"
READ_AT_OPEN = f"turn.{SIZE_NAME}"
"""How aioice.ice reads the size when it opens a host socket (so a new value takes effect)."""


def _find() -> tuple[ModuleType, ModuleType]:
    from aioice import ice, turn

    return ice, turn


def _check(found: tuple[ModuleType, ModuleType]) -> list[str]:
    ice, turn = found
    problems = [] if isinstance(getattr(turn, SIZE_NAME, None), int) else [f"aioice.turn.{SIZE_NAME} is missing"]
    return problems + unread_source(
        "aioice.ice", ice, READ_AT_OPEN, f"aioice.ice no longer reads {READ_AT_OPEN} when it opens a socket"
    )


def _change(found: tuple[ModuleType, ModuleType], size: int | None) -> None:
    setattr(found[1], SIZE_NAME, RECEIVE_QUEUE if size is None else size)


RECEIVE_QUEUE_SIZE = Adaptation(
    name="receive_queue",
    package="aioice",
    checked="0.13.0",
    reason="past capacity a full 256 kB socket queue holds ~15 s of video and the consent answers behind it",
    kept_by="off by default; pending issue 30's quiet-window runs (bench/serving.py); tests/test_receive_queue.py",
    lost="WebRTC sockets keep aioice's receive queue",
    find=_find,
    check=_check,
    change=_change,
)
"""Applied with the bytes each socket asks for (`RECEIVE_QUEUE` when None)."""
