"""knn.serving.receive_queue: aioice's sockets keep a short kernel receive queue.

Two real aioice connections connect on loopback; a plain socket then sends one of them a burst of
video-sized datagrams while its event loop does not run (as a busy server's loop does not), and
the connection counts what it can still read: what waited in the kernel's queue, the backlog a
busy server would work through before reaching the present. Linux reports twice the size asked
for (its bookkeeping), capped by `net.core.rmem_max`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import aioice
import pytest
from aioice import ice, turn

from knn.serving import receive_queue
from knn.serving.adapt import adapt
from knn.serving.receive_queue import RECEIVE_QUEUE_SIZE
from tests.ice_pair import DATAGRAM, RTP_LIKE, connected_pair, received, send_burst

ROOT = Path(__file__).resolve().parents[1]
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")
STOCK_SIZE = turn.UDP_SOCKET_BUFFER_SIZE
BURST = 2000  # datagrams: ~2.4 MB, more than any queue here holds


@pytest.fixture
def stock_size(monkeypatch):
    """aioice's own size, put back after the test."""
    monkeypatch.setattr(turn, "UDP_SOCKET_BUFFER_SIZE", STOCK_SIZE)


@pytest.fixture
def kernel_cap() -> int:
    if not RMEM_MAX.exists():
        pytest.skip("no /proc/sys/net/core/rmem_max: not a Linux kernel whose socket limits can be read")
    return int(RMEM_MAX.read_text())


def held_then_read() -> tuple[int, int]:
    """(SO_RCVBUF of a new aioice connection's socket, datagrams of a burst sent while its loop was
    held that it still read afterwards)."""

    async def run() -> tuple[int, int]:
        sockets: list[socket.socket] = []

        class Recording(ice.StunProtocol):
            def connection_made(self, transport) -> None:
                super().connection_made(transport)
                sockets.append(transport.get_extra_info("socket"))

        async with connected_pair(Recording) as (connection, _):
            size = sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            send_burst(connection, BURST)
            return size, sum(data == RTP_LIKE for data in await received(connection))

    return asyncio.run(run())


def test_a_held_loop_finds_a_short_backlog_not_seconds_of_old_video(stock_size, kernel_cap):
    stock_bytes, stock_read = held_then_read()
    assert stock_bytes == 2 * min(STOCK_SIZE, kernel_cap)
    assert adapt(RECEIVE_QUEUE_SIZE)
    short_bytes, short_read = held_then_read()
    assert short_bytes == 2 * min(receive_queue.RECEIVE_QUEUE, kernel_cap)
    # The kernel counts each datagram's whole buffer, not its payload: bounds, not exact counts.
    assert 0 < short_read <= 2 * receive_queue.RECEIVE_QUEUE // DATAGRAM
    assert stock_read >= 4 * short_read, (stock_read, short_read)


def test_the_installed_aioice_fits():
    assert RECEIVE_QUEUE_SIZE.check(RECEIVE_QUEUE_SIZE.find()) == []


def fake_module(**attributes) -> types.ModuleType:
    module = types.ModuleType("fake")
    module.__dict__.update(attributes)
    return module


@pytest.mark.parametrize(
    "ice_module, turn_module, problem",
    [
        (ice, fake_module(), "aioice.turn.UDP_SOCKET_BUFFER_SIZE is missing"),
        (fake_module(), turn, "the source of aioice.ice is missing"),
        (turn, turn, "aioice.ice no longer reads turn.UDP_SOCKET_BUFFER_SIZE"),
    ],
)
def test_a_changed_aioice_is_refused_and_left_stock(ice_module, turn_module, problem, stock_size, caplog):
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(RECEIVE_QUEUE_SIZE, version=aioice.__version__, found=(ice_module, turn_module))
    assert problem in caplog.text
    assert turn.UDP_SOCKET_BUFFER_SIZE == STOCK_SIZE


def test_the_serving_process_applies_it_when_asked():
    """What `streamlit run app.py` runs once per process (knn.serving.startup.start) applies it when
    KNN_UDP_RECEIVE_QUEUE asks for it, and leaves aioice's own size otherwise."""
    code = (
        "from aioice import turn; from knn.serving.settings import Settings; "
        "from knn.serving.startup import start; "
        "started = start(Settings.from_env()); print('receive_queue' in started.applied, turn.UDP_SOCKET_BUFFER_SIZE)"
    )
    for env, expected in (
        ({"KNN_UDP_RECEIVE_QUEUE": str(receive_queue.RECEIVE_QUEUE)}, ["True", str(receive_queue.RECEIVE_QUEUE)]),
        ({}, ["False", str(STOCK_SIZE)]),
    ):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**{k: v for k, v in os.environ.items() if k != "KNN_UDP_RECEIVE_QUEUE"}, **env},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-2:] == expected
