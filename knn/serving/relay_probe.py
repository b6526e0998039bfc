"""The TURN relay the server's WebRTC peer uses, and what it answers when asked for an address.

aiortc uses one relay of the configured ICE servers (the first usable `turn:` or `turns:` URL);
`relay_of` picks it the way aiortc does. When the peer's ICE gathering got no relay candidate,
aioice has dropped the relay's answer, so `ask_relay` asks again for an allocation, as aioice does
and with its 5 s wait, and says what came back: an error code (401: our credentials refused),
no answer, a refused connection, a name that does not resolve, or an address after all. The
allocation it gets is released at once. It runs only for a failed connection, never per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Literal

ASK_SECONDS = 5.0
"""How long an allocation may take: aioice's own wait for a relay candidate while gathering
(`Connection.get_component_candidates`' timeout), so a relay slower than this failed there too."""

Answer = Literal["allocated", "refused", "no answer", "connection refused", "unresolved", "unreachable"]


@dataclass(frozen=True)
class Relay:
    """The TURN server aiortc was given: where it is, over what, and with which credentials."""

    host: str
    port: int
    transport: str  # "udp" or "tcp"
    tls: bool
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """The relay as a TURN URL, without its credentials."""
        return f"{'turns' if self.tls else 'turn'}:{self.host}:{self.port}?transport={self.transport}"


@dataclass(frozen=True)
class RelayAnswer:
    """What the relay answered to an allocation request: `kind`, and the error code and reason it
    sent (`code` 0 when it sent none) or the local error's text."""

    kind: Answer
    code: int = 0
    detail: str = ""


def relay_of(servers: list[dict]) -> Relay | None:
    """The relay aiortc uses among these RTCIceServer dicts (None: they name no usable TURN server)."""
    from aiortc import RTCIceServer
    from aiortc.rtcicetransport import connection_kwargs

    kwargs = connection_kwargs(
        [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential")) for s in servers]
    )
    if "turn_server" not in kwargs:
        return None
    host, port = kwargs["turn_server"]
    return Relay(
        host, int(port), kwargs["turn_transport"], kwargs["turn_ssl"], kwargs["turn_username"], kwargs["turn_password"]
    )


async def ask_relay(relay: Relay, seconds: float = ASK_SECONDS) -> RelayAnswer:
    """Ask `relay` for an allocation (released at once if granted) and say what it answered."""
    from aioice import stun
    from aioice.turn import create_turn_endpoint

    try:
        transport, protocol = await asyncio.wait_for(
            create_turn_endpoint(
                _Released,
                server_addr=(relay.host, relay.port),
                username=relay.username,
                password=relay.password,
                ssl=relay.tls,
                transport=relay.transport,
            ),
            seconds,
        )
    except stun.TransactionFailed as exc:
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, str(exc)))
        return RelayAnswer("refused", int(code), str(reason))
    except (TimeoutError, stun.TransactionTimeout):
        return RelayAnswer("no answer", detail=f"{seconds:g} s")
    except ConnectionRefusedError as exc:
        return RelayAnswer("connection refused", detail=str(exc))
    except socket.gaierror as exc:
        return RelayAnswer("unresolved", detail=str(exc))
    except (OSError, ConnectionError) as exc:
        return RelayAnswer("unreachable", detail=str(exc) or type(exc).__name__)
    transport.close()  # deletes the allocation; the protocol hears when that is done
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(protocol.released, seconds)
    return RelayAnswer("allocated")


class _Released(asyncio.DatagramProtocol):
    """Receives nothing; `released` is done once the allocation is deleted."""

    def __init__(self) -> None:
        self.released: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.released.done():
            self.released.set_result(None)


def probe_relay(relay: Relay) -> RelayAnswer:
    """`ask_relay` on an event loop of its own (call it from a thread of its own: it blocks up to
    ASK_SECONDS, and the camera's event loop carries video)."""
    return asyncio.run(ask_relay(relay))
