"""Two real aioice connections connected on loopback, for the tests of the sockets' adaptations."""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

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
