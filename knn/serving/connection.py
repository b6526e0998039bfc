"""What the server saw of a camera's WebRTC connection, so the page can say why it does not connect.

A `ConnectionWatch` follows one server-side aiortc RTCPeerConnection through aiortc's public state
events: the kinds of address its ICE gathering produced, when it connected, whether it failed.
`problem()` turns that into what the page may say, and only that: no relay address although a
relay is configured (with the relay's own answer, asked again by knn.serving.relay_probe), no
connectivity check succeeding within `STALL_SECONDS`, or a connection that failed after it had
worked. The watch reacts to state changes only: nothing on the frame path.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .relay_probe import Relay, RelayAnswer, probe_relay

STALL_SECONDS = 15.0
"""Seconds after the server's answer within which a connection that will work has connected: here
0.04-0.14 s directly and 0.15-0.52 s through coturn (docs/scaling.md, "When a camera cannot
connect"); 15 s also covers a check resent on aioice's back-off (0.5, 1, 2, 4, 8 s) by a server past
capacity, and is still short of the point where a user gives up waiting."""

KINDS = ("host", "srflx", "prflx", "relay")
"""ICE candidate types, from the most direct to the relay."""

Kind = Literal["no relay", "stalled", "lost"]


@dataclass(frozen=True)
class Problem:
    """Why a camera's connection did not work, as the server saw it.

    kind: "no relay" (a relay is configured but gathering got no address from it), "stalled" (no
        connectivity check succeeded within `seconds`), "lost" (it failed after working `seconds`).
    candidates: the kinds of address the server offered the browser (`KINDS`); empty: none at all.
    relay_url: the relay the server was given (no credentials), None without one.
    relay_answer: what that relay answered when asked again; None while it is being asked.
    """

    kind: Kind
    candidates: tuple[str, ...]
    relay_url: str | None = None
    relay_answer: RelayAnswer | None = None
    seconds: float = 0.0


class ConnectionWatch:
    """Follows one server-side RTCPeerConnection from the moment its answer exists.

    Args:
        peer: aiortc's RTCPeerConnection (knn.serving.camera_peer.server_peer); held weakly.
        relay: the TURN relay that peer was given (knn.serving.relay_probe.relay_of), or None.
        stall_seconds: how long checks may go without success before it counts as stalled.
        ask: asks the relay for an address (in a thread of its own) when gathering got none from it.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        peer: Any,
        relay: Relay | None,
        *,
        stall_seconds: float = STALL_SECONDS,
        ask: Callable[[Relay], RelayAnswer] = probe_relay,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._peer = weakref.ref(peer)
        self.relay = relay
        self.stall_seconds = stall_seconds
        self._ask, self._clock = ask, clock
        self._lock = threading.Lock()
        self.started = clock()
        self.candidates: tuple[str, ...] | None = None
        """The kinds of address gathering produced; None until it completed."""
        self.connected_at: float | None = None
        self.failed_at: float | None = None
        self.closed_at: float | None = None
        self.relay_answer: RelayAnswer | None = None
        self._asked = False
        for event in ("icegatheringstatechange", "iceconnectionstatechange", "connectionstatechange"):
            peer.on(event, self._update)  # aiortc emits these on its event loop: no cost per frame
        for dtls in {t.receiver.transport for t in peer.getTransceivers()}:
            dtls.on("statechange", self._update)
        self._update()

    def follows(self, peer: Any) -> bool:
        """Whether this watch follows `peer`."""
        return self._peer() is peer

    @property
    def connected(self) -> bool:
        """The connection worked (and may have ended since)."""
        return self.connected_at is not None

    def _update(self) -> None:
        peer = self._peer()
        if peer is None:
            return
        with self._lock:  # the page's thread (at the start) and the event loop's
            now = self._clock()
            state = peer.connectionState
            # aioice forgets a connection's candidates when it closes: read them while it is open.
            if self.candidates is None and peer.iceGatheringState == "complete" and state != "closed":
                self.candidates = gathered_kinds(peer)
                if self.relay is not None and "relay" not in self.candidates and not self._asked:
                    self._asked = True
                    threading.Thread(target=self._ask_relay, name="knn-relay-probe", daemon=True).start()
            if state == "connected" and self.connected_at is None:
                self.connected_at = now
            if self.failed_at is None and ("failed" in (state, peer.iceConnectionState) or ended_by_itself(peer)):
                self.failed_at = now
            if state == "closed" and self.closed_at is None:
                self.closed_at = now

    def _ask_relay(self) -> None:
        assert self.relay is not None
        self.relay_answer = self._ask(self.relay)

    def problem(self, now: float | None = None) -> Problem | None:
        """What the page should say about this connection at `now` (the clock's now by default);
        None while it works, is still being made, or was closed (a STOP) before anything failed."""
        now = self._clock() if now is None else now
        kinds = self.candidates or ()
        relay_url = self.relay.url if self.relay is not None else None
        if self.connected_at is not None:
            if self.failed_at is None:
                return None
            return Problem("lost", kinds, relay_url, seconds=round(self.failed_at - self.connected_at))
        no_relay = self.relay is not None and self.candidates is not None and "relay" not in self.candidates
        if no_relay and not kinds:  # no address at all (a relay-only policy): it can never connect
            return Problem("no relay", kinds, relay_url, self.relay_answer)
        waited = (self.closed_at if self.closed_at is not None else now) - self.started
        if self.failed_at is None and waited < self.stall_seconds:
            return None
        if no_relay:
            return Problem("no relay", kinds, relay_url, self.relay_answer)
        return Problem("stalled", kinds, relay_url, seconds=self.stall_seconds)


def ended_by_itself(peer: Any) -> bool:
    """Whether the connection broke while its owner had not closed it: DTLS failed, or closed because
    the ICE connection under it did (aioice forgets a connection's candidates when it closes, as
    when the browser stops answering consent checks; a browser's goodbye closes DTLS alone). aiortc
    then closes the peer without ever reporting "failed"."""
    if peer.signalingState == "closed":  # RTCPeerConnection.close() began: a STOP, or the worker's end
        return False
    transports = {t.receiver.transport for t in peer.getTransceivers()}
    if any(dtls.state == "failed" for dtls in transports):
        return True
    return any(dtls.state == "closed" for dtls in transports) and not any(
        dtls.transport.iceGatherer.getLocalCandidates() for dtls in transports
    )


def gathered_kinds(peer: Any) -> tuple[str, ...]:
    """The kinds of local ICE candidate `peer` gathered (aiortc's RTCIceGatherer.getLocalCandidates)."""
    kinds = {
        candidate.type
        for transceiver in peer.getTransceivers()
        for candidate in transceiver.receiver.transport.transport.iceGatherer.getLocalCandidates()
    }
    return tuple(sorted(kinds, key=lambda k: KINDS.index(k) if k in KINDS else len(KINDS)))
