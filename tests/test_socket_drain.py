"""knn.serving.socket_drain: a WebRTC socket's queue is read to the end at each wake of the loop.

Two real aioice connections connect on loopback; a plain socket then sends one of them a burst of
video-sized datagrams while its event loop does not run (as a busy server's loop does not). Then
the loop turns a few times, and the test counts what the connection's sockets passed on: asyncio
alone reads one datagram per turn, so a busy loop leaves the rest in the kernel's queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import aioice
import pytest
from aioice import ice, turn

from knn.serving import consent, socket_drain
from knn.serving.adapt import adapt
from knn.serving.consent import PATIENT_CONSENT
from knn.serving.socket_drain import SOCKET_DRAIN
from tests.adapted import adapted
from tests.ice_pair import RTP_LIKE, connected_pair, received, send_burst

ROOT = Path(__file__).resolve().parents[1]
BURST = 40  # datagrams, more than one wake's worth (socket_drain.MOST)
TURNS = 4


def read_within_turns(layers: str) -> tuple[int, list[bytes]]:
    """(datagrams of a burst a counting layer saw within `TURNS` turns of the loop, everything the
    connection then received). `layers`: "stock" (aioice's own protocol), "installed" (what
    aioice.ice.StunProtocol is now), "drain over count" or "count over drain" (another adaptation's
    layer above the drain's)."""

    async def run() -> tuple[int, list[bytes]]:
        passed = []
        stock = getattr(ice.StunProtocol, "stock", ice.StunProtocol)  # aioice's own, whatever ran before
        drained = socket_drain.draining_protocol(stock, socket_drain.MOST)

        below = {"count over drain": drained, "installed": ice.StunProtocol}.get(layers, stock)

        class Counting(below):
            def datagram_received(self, data, addr) -> None:
                passed.append(data)
                super().datagram_received(data, addr)

        protocol = (
            socket_drain.draining_protocol(Counting, socket_drain.MOST) if layers == "drain over count" else Counting
        )
        async with connected_pair(protocol) as (connection, _):
            await asyncio.sleep(0.2)  # the connectivity checks' last answers are read
            passed.clear()
            send_burst(connection, BURST)
            for _ in range(TURNS):
                await asyncio.sleep(0)  # one turn of the loop each
            within = sum(data == RTP_LIKE for data in passed)
            return within, await received(connection)

    return asyncio.run(run())


def test_a_burst_is_read_in_one_wake_and_reaches_the_connection_whole(monkeypatch):
    stock = getattr(ice.StunProtocol, "stock", ice.StunProtocol)
    monkeypatch.setattr(ice, "StunProtocol", stock)  # put back after the test
    stock_within, stock_received = read_within_turns("stock")
    assert stock_within < TURNS  # asyncio: one datagram per turn
    assert stock_received == [RTP_LIKE] * BURST
    adapted(SOCKET_DRAIN, socket_drain.MOST)  # as the server does: with KNN_STOCK=socket_drain, aioice stays stock
    within, received = read_within_turns("installed")
    assert within == BURST, "the burst waited in the kernel's queue"
    assert received == [RTP_LIKE] * BURST
    for layers in ("drain over count", "count over drain"):  # every layer sees every datagram
        within, received = read_within_turns(layers)
        assert within == BURST, layers
        assert received == [RTP_LIKE] * BURST, layers  # nothing lost, nothing doubled


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="no /proc/self/fd to count open files in")
def test_the_second_handle_on_each_socket_is_closed_with_its_connection():
    async def run() -> None:
        async with connected_pair(socket_drain.draining_protocol(ice.StunProtocol, socket_drain.MOST)):
            pass

    asyncio.run(run())  # the first run imports and caches what it needs
    before = open_descriptors()
    for _ in range(3):
        asyncio.run(run())
    assert open_descriptors() == before


def test_it_keeps_the_patient_consent_checks_and_they_keep_it_in_either_order(monkeypatch):
    stock = getattr(ice.StunProtocol, "stock", ice.StunProtocol)

    def drain_sockets() -> bool:
        return adapt(SOCKET_DRAIN, socket_drain.MOST)

    def patient_consent() -> bool:
        return adapt(PATIENT_CONSENT)

    for first, second in ((drain_sockets, patient_consent), (patient_consent, drain_sockets)):
        monkeypatch.setattr(ice, "StunProtocol", stock)
        assert first() and second() and first() and second()  # as a second call of the startup would
        layers = [c for c in ice.StunProtocol.__mro__ if issubclass(c, stock)]
        assert [c for c in layers if "datagram_received" in vars(c)][1:] == [stock]  # one layer drains
        assert [c for c in layers if "request" in vars(c)][1:] == [stock]  # one layer waits for late answers
        assert ice.StunProtocol.stock is stock
        assert ice.StunProtocol.drain_most == socket_drain.MOST
        assert ice.StunProtocol.consent_retransmissions == consent.CONSENT_RETRANSMISSIONS


def test_the_installed_aioice_fits():
    assert SOCKET_DRAIN.check(SOCKET_DRAIN.find()) == []


class ChangedProtocol(ice.StunProtocol):
    def datagram_received(self, data, addr, flags=0) -> None:
        super().datagram_received(data, addr)


@pytest.mark.parametrize(
    "module, problem",
    [
        (types.ModuleType("fake"), "aioice.ice.StunProtocol is missing"),
        (
            types.SimpleNamespace(StunProtocol=ChangedProtocol),
            "aioice.ice.StunProtocol.datagram_received takes ['self', 'data', 'addr', 'flags']",
        ),
        (types.SimpleNamespace(StunProtocol=ice.StunProtocol), "the source of aioice.ice is missing"),
    ],
)
def test_a_changed_aioice_is_refused_with_a_warning_and_left_stock(module, problem, caplog):
    stock = getattr(module, "StunProtocol", None)
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(SOCKET_DRAIN, socket_drain.MOST, version=aioice.__version__, found=module)
    assert problem in caplog.text
    assert getattr(module, "StunProtocol", None) is stock


def test_an_aioice_that_builds_its_protocol_otherwise_is_refused(monkeypatch, caplog):
    monkeypatch.setattr(turn, "StunProtocol", ice.StunProtocol, raising=False)  # aioice.turn never builds it
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(SOCKET_DRAIN, socket_drain.MOST, version=aioice.__version__, found=turn)
    assert "no longer builds its sockets' protocol as StunProtocol(self)" in caplog.text
    assert turn.StunProtocol is ice.StunProtocol


def test_the_serving_process_applies_it_unless_told_not_to():
    """What `streamlit run app.py` runs once per process (knn.serving.startup.start) drains the
    sockets by default, and leaves asyncio's one datagram per turn with KNN_UDP_DRAIN=1."""
    code = (
        "from aioice import ice; from knn.serving.settings import Settings; "
        "from knn.serving.startup import start; "
        "started = start(Settings.from_env()); print('socket_drain' in started.applied, 'consent' in started.applied, "
        "getattr(ice.StunProtocol, 'drain_most', 1))"
    )
    for env, expected in (
        ({}, ["True", "True", str(socket_drain.MOST)]),
        ({"KNN_UDP_DRAIN": "1"}, ["False", "True", "1"]),
    ):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**{k: v for k, v in os.environ.items() if k not in ("KNN_UDP_DRAIN", "KNN_STOCK")}, **env},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-3:] == expected
