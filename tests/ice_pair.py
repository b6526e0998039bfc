"""Two real aioice connections connected on loopback, for the tests of the sockets' adaptations."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from aioice import ice

DATAGRAM = 1200  # bytes: a video packet's size
RTP_LIKE = b"\x80" + bytes(DATAGRAM - 1)  # not STUN: aioice passes it on as data


@contextlib.asynccontextmanager
async def connected_pair(protocol: type | None = None) -> AsyncIterator[tuple[ice.Connection, ice.Connection]]:
    """(connection, peer), connected; `connection`'s sockets built with `protocol` (a subclass of
    aioice's StunProtocol) when given, else with whatever aioice.ice.StunProtocol is now."""
    stock = ice.StunProtocol
    if protocol is not None:
        ice.StunProtocol = protocol
    try:
        connection = ice.Connection(ice_controlling=False, use_ipv6=False)
        await connection.gather_candidates()
    finally:
        ice.StunProtocol = stock
    peer = ice.Connection(ice_controlling=True, use_ipv6=False)
    await peer.gather_candidates()
    for a, b in ((connection, peer), (peer, connection)):
        for candidate in a.local_candidates:
            await b.add_remote_candidate(candidate)
        await b.add_remote_candidate(None)
        b.remote_username, b.remote_password = a.local_username, a.local_password
    try:
        await asyncio.wait_for(asyncio.gather(connection.connect(), peer.connect()), 20)
        yield connection, peer
    finally:
        await asyncio.gather(connection.close(), peer.close())


def send_burst(connection: ice.Connection, count: int) -> None:
    """`count` video-sized datagrams to `connection`'s first host candidate from a plain socket,
    with no await in between: the loop, and so the connection, reads nothing meanwhile."""
    host = connection.local_candidates[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(count):
            sender.sendto(RTP_LIKE, (host.host, host.port))


async def received(connection: ice.Connection, quiet: float = 0.5) -> list[bytes]:
    """Everything `connection` receives until `quiet` seconds pass without data."""
    out = []
    while True:
        try:
            out.append(await asyncio.wait_for(connection.recv(), quiet))
        except TimeoutError:
            return out
