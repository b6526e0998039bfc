"""An adaptation of aioice: each wake of the event loop reads a WebRTC socket's queue to the end.

asyncio's datagram transport reads one datagram each time the loop finds a socket readable, and a
busy server's loop turns only tens of times a second, so the camera's other packets wait in the
kernel's queue, seconds of video, and the kernel drops what does not fit (libuv reads up to 32 a
wake for the same reason). `SOCKET_DRAIN` makes aioice's connections use a `StunProtocol` subclass
that reads on from a duplicate of the socket, up to `MOST` datagrams (`KNN_UDP_DRAIN`).
"""

from __future__ import annotations

import logging
import socket
from types import ModuleType

from .adapt import Adaptation, changed_signature, unread_source, with_layer

_LOG = logging.getLogger(__name__)

MOST = 32
"""Datagrams read from one socket per wake: enough for a keyframe's burst, few enough that one
camera cannot hold the loop from the others for long."""
DATAGRAM_BYTES = 65536  # the largest UDP payload fits
BUILT_AS = "StunProtocol(self)"
"""How aioice.ice builds each socket's protocol (by its module-level name, so a subclass put there is built)."""
EXTENDED = {
    "connection_made": ["self", "transport"],
    "connection_lost": ["self", "exc"],
    "datagram_received": ["self", "data", "addr"],
}


def _find() -> ModuleType:
    from aioice import ice

    return ice


def _check(ice: ModuleType) -> list[str]:
    protocol = getattr(ice, "StunProtocol", None)
    if not isinstance(protocol, type):
        return ["aioice.ice.StunProtocol is missing"]
    problems = []
    for name, parameters in EXTENDED.items():
        problems += changed_signature(f"aioice.ice.StunProtocol.{name}", getattr(protocol, name, None), parameters)
    return problems + unread_source(
        "aioice.ice", ice, BUILT_AS, f"aioice.ice no longer builds its sockets' protocol as {BUILT_AS}"
    )


def _change(ice: ModuleType, most: int) -> None:
    ice.StunProtocol = draining_protocol(ice.StunProtocol, most)  # type: ignore[attr-defined]  # the adaptation's one change


SOCKET_DRAIN = Adaptation(
    name="socket_drain",
    package="aioice",
    checked="0.13.0",
    reason="a busy event loop reads one datagram per socket per turn and leaves seconds of video in the kernel's queue",
    kept_by="16 peers: the slowest 7.2 fps without it, 10.1-10.5 with (docs/adaptations.md); test_socket_drain.py",
    lost="WebRTC sockets are read one datagram per turn of the event loop",
    find=_find,
    check=_check,
    change=_change,
)
"""Applied with the most datagrams per wake (KNN_UDP_DRAIN; 1 is asyncio's own read: not applied)."""


def draining_protocol(protocol: type, most: int) -> type:
    """A subclass of aioice's `StunProtocol` that reads up to `most` datagrams per wake."""
    return with_layer(protocol, "drain_most", most, _draining)


def _draining(base: type) -> type:
    class DrainingStunProtocol(base):
        stock = getattr(base, "stock", base)  # aioice's own, under every adaptation's layer
        _drain: socket.socket | None = None
        _draining = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is None:  # a TURN relay's candidate: no socket of its own
                return
            try:  # a second handle on the same socket (asyncio's own is not for reading): closed with the transport
                self._drain = sock.dup()
            except OSError as exc:  # e.g. out of file descriptors: this socket is read as asyncio reads it
                _LOG.warning("A WebRTC socket is read one datagram per turn of the event loop: %s", exc)
                return
            self._drain.setblocking(False)

        def connection_lost(self, exc) -> None:
            if self._drain is not None:
                self._drain.close()
                self._drain = None
            super().connection_lost(exc)

        def datagram_received(self, data, addr) -> None:
            super().datagram_received(data, addr)
            if self._draining:
                return
            self._draining = True
            try:
                for _ in range(self.drain_most - 1):
                    if self._drain is None or self.transport.is_closing():
                        return
                    try:
                        data, addr = self._drain.recvfrom(DATAGRAM_BYTES)
                    except (BlockingIOError, InterruptedError):
                        return  # the queue is empty
                    except OSError as exc:
                        self.error_received(exc)
                        return
                    self.datagram_received(data, addr)  # through every layer, as asyncio's own read goes
            finally:
                self._draining = False

    return DrainingStunProtocol
