"""knn.serving.connection: what a ConnectionWatch makes of a real aiortc peer on loopback, answering
another aiortc peer that stands for the browser: nothing while it connects and works; no relay
address (with the relay's answer); no check succeeding within the stall time; a connection lost
after it worked (the browser's side gone silent, so the server's consent checks fail).

The same messages on the page, in Chromium, with their causes: tests/test_connection_page.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aioice import ice

from harness.processes import free_port
from knn.serving.connection import STALL_SECONDS, ConnectionWatch, Problem
from knn.serving.relay_probe import relay_of


@contextlib.asynccontextmanager
async def answered(server_config=None) -> AsyncIterator[tuple]:
    """(browser, server): the server's peer has answered the browser's offer for one video
    transceiver, as streamlit-webrtc's worker has when the page first finds it."""
    from aiortc import RTCPeerConnection

    browser, server = RTCPeerConnection(), RTCPeerConnection(server_config)
    browser.addTransceiver("video")
    try:
        await browser.setLocalDescription(await browser.createOffer())
        await server.setRemoteDescription(browser.localDescription)
        await server.setLocalDescription(await server.createAnswer())
        yield browser, server
    finally:
        await asyncio.gather(browser.close(), server.close())


async def until(condition, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


def relay_only(url: str):
    from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

    return RTCConfiguration([RTCIceServer(url, "u", "p")], RTCIceTransportPolicy.RELAY)


def test_a_connection_that_works_has_no_problem_even_once_closed():
    async def run():
        async with answered() as (browser, server):
            watch = ConnectionWatch(server, None)
            assert watch.follows(server) and watch.candidates == ("host",)
            await browser.setRemoteDescription(server.localDescription)
            await until(lambda: watch.connected, "the server's peer to connect", 20)
            assert watch.problem() is None
            assert watch.problem(now=watch.started + 10 * STALL_SECONDS) is None  # it connected: no stall
            await browser.close()  # the user's STOP: DTLS says goodbye, nothing failed
            await until(lambda: watch.closed_at is not None, "the server's peer to close", 20)
            assert watch.failed_at is None and watch.problem() is None

    asyncio.run(run())


def test_checks_that_never_succeed_are_a_stall_after_the_stall_time():
    async def run():
        async with answered() as (browser, server):
            watch = ConnectionWatch(server, None)  # the browser never gets the answer: no check succeeds
            await until(lambda: server.iceConnectionState == "checking", "the server's checks", 10)
            assert watch.problem(now=watch.started + STALL_SECONDS - 1) is None  # still being made
            assert watch.problem(now=watch.started + STALL_SECONDS) == Problem("stalled", ("host",), seconds=15)
            assert not watch.connected

    asyncio.run(run())


def test_a_relay_only_peer_without_a_relay_address_says_so_with_the_relays_answer():
    port = free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
    url = f"turn:127.0.0.1:{port}?transport=tcp"  # nothing listens there: refused at once

    async def run():
        async with answered(relay_only(url)) as (_, server):
            watch = ConnectionWatch(server, relay_of([{"urls": url, "username": "u", "credential": "p"}]))
            assert watch.candidates == ()  # relay only, and no relay: no address at all
            # It can never connect, so the page need not wait for the stall time. (The relay's answer
            # may be in already: a refused connection comes back at once.)
            first = watch.problem()
            assert first is not None and dataclasses.replace(first, relay_answer=None) == Problem("no relay", (), url)
            await until(lambda: watch.relay_answer is not None, "the relay's answer", 10)
            problem = watch.problem()
            assert problem is not None and problem.relay_answer is not None
            assert problem.relay_answer.kind == "connection refused"

    asyncio.run(run())


def test_with_direct_addresses_a_missing_relay_address_is_said_once_checks_stall():
    from aiortc import RTCConfiguration, RTCIceServer

    port = free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
    url = f"turn:127.0.0.1:{port}?transport=tcp"

    async def run():
        async with answered(RTCConfiguration([RTCIceServer(url, "u", "p")])) as (_, server):
            watch = ConnectionWatch(server, relay_of([{"urls": url, "username": "u", "credential": "p"}]))
            assert watch.candidates == ("host",)
            assert watch.problem(now=watch.started + 1) is None  # a direct path may still work
            await until(lambda: watch.relay_answer is not None, "the relay's answer", 10)
            stalled = watch.problem(now=watch.started + STALL_SECONDS)
            assert stalled is not None and stalled.relay_answer is not None
            assert stalled == Problem("no relay", ("host",), url, stalled.relay_answer)
            assert stalled.relay_answer.kind == "connection refused"

    asyncio.run(run())


def test_a_connection_lost_after_it_worked(monkeypatch):
    # aioice's public consent constants, shortened: a silent peer is given up in about a second
    # (with knn.serving.consent applied in this process, each check may wait 7.5 s more).
    monkeypatch.setattr(ice, "CONSENT_INTERVAL", 0.2)
    monkeypatch.setattr(ice, "CONSENT_FAILURES", 2)

    async def run():
        async with answered() as (browser, server):
            watch = ConnectionWatch(server, None)
            await browser.setRemoteDescription(server.localDescription)
            await until(lambda: watch.connected, "the server's peer to connect", 20)
            # The browser's network drops: its ICE sockets close without a goodbye.
            await browser.getTransceivers()[0].receiver.transport.transport.stop()
            await until(lambda: watch.failed_at is not None, "the server's peer to fail", 40)
            problem = watch.problem()
            assert problem is not None and (problem.kind, problem.candidates) == ("lost", ("host",))
            assert problem.seconds == round(watch.failed_at - watch.connected_at)

    asyncio.run(run())


@pytest.mark.parametrize("state", ["failed", "closed"])
def test_a_peer_gone_before_the_watch_leaves_it_alone(state):
    """The page may find the worker's peer already closed (the worker stopped it): the watch then
    reads no candidates, as aioice has forgotten them, rather than calling it relay-less."""

    async def run():
        async with answered() as (_, server):
            await server.close()
            watch = ConnectionWatch(server, None)
            assert watch.candidates is None and watch.closed_at is not None
            assert watch.problem(now=watch.started + STALL_SECONDS) is None  # closed at once: a STOP

    asyncio.run(run())
