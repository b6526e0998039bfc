"""knn.serving.relay_probe: the relay aiortc picks among the ICE servers, and what a real coturn
answers when asked for an address: granted, our credentials refused (401), nothing listening,
no answer, a name that does not resolve."""

from __future__ import annotations

import asyncio
import socket

import pytest

from harness.processes import find_binary, free_port
from harness.turn import TurnServer
from knn.serving.relay_probe import Relay, RelayAnswer, ask_relay, probe_relay, relay_of


def test_the_relay_is_the_first_usable_turn_url_as_aiortc_takes_it():
    servers = [
        {"urls": "stun:stun.example.org:3478"},
        {"urls": ["turn:a.example.org?transport=sctp", "turn:b.example.org:3479?transport=tcp"], "username": "u"},
        {"urls": "turn:c.example.org", "username": "v", "credential": "w"},
    ]
    relay = relay_of(servers)
    assert relay == Relay("b.example.org", 3479, "tcp", False, "u", None)
    assert relay.url == "turn:b.example.org:3479?transport=tcp"  # no credentials in it
    assert relay_of([{"urls": "turns:d.example.org"}]) == Relay("d.example.org", 5349, "tcp", True, None, None)
    assert relay_of([{"urls": "turn:e.example.org"}]).url == "turn:e.example.org:3478?transport=udp"
    assert relay_of([{"urls": "stun:stun.example.org"}]) is None
    assert relay_of([]) is None


@pytest.fixture(scope="module")
def turn():
    if find_binary(TurnServer.BINARY) is None:
        pytest.skip("coturn's turnserver is absent (apt-get install coturn; .ci/run does)")
    with TurnServer() as server:
        yield server


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_coturn_grants_an_address_and_refuses_a_wrong_password(turn, transport):
    relay = relay_of(turn.ice_servers(transport))
    before = len(turn.allocations())
    assert probe_relay(relay) == RelayAnswer("allocated")
    assert len(turn.allocations()) == before + 1  # coturn's own log: it granted one
    wrong = relay_of([{**turn.ice_servers(transport)[0], "credential": "wrong"}])
    assert probe_relay(wrong) == RelayAnswer("refused", 401, "Unauthorized")
    assert f"user {turn.username} credentials are incorrect" in turn.log()


def test_a_relay_that_is_not_there():
    port = free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
    tcp = Relay("127.0.0.1", port, "tcp", False, "u", "p")
    assert probe_relay(tcp).kind == "connection refused"  # nothing listens: the kernel says so at once
    udp = Relay("127.0.0.1", port, "udp", False, "u", "p")
    assert asyncio.run(ask_relay(udp, seconds=0.5)) == RelayAnswer("no answer", detail="0.5 s")  # UDP: silence
    assert probe_relay(Relay("relay.invalid", 3478, "udp", False)).kind == "unresolved"
