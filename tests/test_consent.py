"""knn.serving.consent: a late answer to aioice's consent check keeps the connection.

The behaviour tests connect two real aioice connections over loopback. The far peer sends each
answer to a check 1 s late (as a loaded server read its queued answers, docs/performance.md).
Checks run every ~0.2 s instead of every ~5 s (aioice's CONSENT_INTERVAL, set for the test only),
so that six failed checks take seconds, not half a minute.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import types
from pathlib import Path

import aioice
import pytest
from aioice import ice, stun

from knn.serving import consent
from knn.serving.adapt import adapt
from knn.serving.consent import PATIENT_CONSENT
from tests.adapted import adapted

ANSWER_DELAY = 1.0
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stock_protocol(monkeypatch):
    """aioice's own StunProtocol, put back after the test."""
    stock = getattr(ice.StunProtocol, "stock", ice.StunProtocol)
    monkeypatch.setattr(ice, "StunProtocol", stock)
    return stock


class LateAnswers(ice.StunProtocol):
    """aioice's protocol, sending its answers (not its own checks) ANSWER_DELAY late."""

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        if message.message_class == stun.Class.RESPONSE:
            asyncio.get_running_loop().call_later(ANSWER_DELAY, super().send_stun, message, addr)
        else:
            super().send_stun(message, addr)


class SlowPeer:
    """An aioice connection that answers late, on its own thread's event loop."""

    def __init__(self, monkeypatch) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        under_test = ice.StunProtocol
        monkeypatch.setattr(ice, "StunProtocol", LateAnswers)  # read when candidates are gathered
        self.connection: ice.Connection = self.run(self._make())
        monkeypatch.setattr(ice, "StunProtocol", under_test)

    async def _make(self) -> ice.Connection:
        connection = ice.Connection(ice_controlling=False, use_ipv6=False)
        await connection.gather_candidates()
        return connection

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.connection.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def connected_then_watched(peer: SlowPeer, watch_seconds: float) -> bool:
    """Connect to `peer` and say whether the connection still stands after `watch_seconds` of
    consent checks."""
    local = ice.Connection(ice_controlling=True, use_ipv6=False)
    await local.gather_candidates()
    remote = peer.connection
    for candidate in remote.local_candidates:
        await local.add_remote_candidate(candidate)
    await local.add_remote_candidate(None)
    local.remote_username, local.remote_password = remote.local_username, remote.local_password

    async def remote_side() -> None:
        for candidate in local.local_candidates:
            await remote.add_remote_candidate(candidate)
        await remote.add_remote_candidate(None)
        remote.remote_username, remote.remote_password = local.local_username, local.local_password
        await remote.connect()

    remote_connected = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(remote_side(), peer.loop))
    await asyncio.wait_for(asyncio.gather(local.connect(), remote_connected), 20)
    try:  # the far peer sends no data: recv() returns only when aioice gives the connection up
        await asyncio.wait_for(local.recv(), watch_seconds)
    except TimeoutError:
        return True
    except ConnectionError:
        return False
    finally:
        await local.close()


def watch(monkeypatch, seconds: float = 8.0) -> bool:
    monkeypatch.setattr(ice, "CONSENT_INTERVAL", 0.2)  # read by query_consent on each round
    peer = SlowPeer(monkeypatch)
    try:
        return asyncio.run(connected_then_watched(peer, seconds))
    finally:
        peer.close()


def test_stock_aioice_gives_up_a_peer_whose_answers_come_late(stock_protocol, monkeypatch):
    assert not watch(monkeypatch)


def test_with_the_adaptation_late_answers_keep_the_connection(stock_protocol, monkeypatch):
    adapted(PATIENT_CONSENT)  # as the server does: with KNN_STOCK=consent, aioice stays stock
    assert watch(monkeypatch), "a peer answering late was given up"
    assert ice.StunProtocol.stock is stock_protocol
    assert ice.StunProtocol.consent_retransmissions == consent.CONSENT_RETRANSMISSIONS


def test_applying_twice_subclasses_once(stock_protocol):
    assert adapt(PATIENT_CONSENT) and adapt(PATIENT_CONSENT, 2)
    assert [c for c in ice.StunProtocol.__mro__ if "request" in vars(c)] == [
        ice.StunProtocol.__mro__[1],
        stock_protocol,
    ]
    assert ice.StunProtocol.stock is stock_protocol
    assert ice.StunProtocol.consent_retransmissions == 2


def test_the_installed_aioice_fits():
    assert PATIENT_CONSENT.check(PATIENT_CONSENT.find()) == []


def module_like_ice(**changes) -> types.ModuleType:
    """A stand-in for aioice.ice that the check reads like the real one, with `changes`."""
    fake = types.ModuleType("fake_ice")
    fake.StunProtocol, fake.Connection = ice.StunProtocol, ice.Connection
    fake.__dict__.update(changes)
    return fake


@pytest.mark.parametrize(
    "module, problem",
    [
        (module_like_ice(StunProtocol=object), "StunProtocol.request is missing"),
        (
            module_like_ice(Connection=type("Connection", (), {"query_consent": lambda self: None})),
            "no longer asks for a single try",
        ),
    ],
)
def test_a_changed_aioice_is_refused_with_a_warning_and_left_stock(module, problem, stock_protocol, caplog):
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(PATIENT_CONSENT, version=aioice.__version__, found=module)
    assert problem in caplog.text
    assert ice.StunProtocol is stock_protocol
