"""knn.serving.ice: the camera's ICE configuration, and the relay policy reaching aiortc through
streamlit-webrtc (refused, leaving it stock, for a version it was not checked against).

The relay itself, with a real coturn and Chromium, is tests/test_turn.py."""

from __future__ import annotations

import asyncio
import logging
import types

import pytest

from knn.serving.adapt import adapt
from knn.serving.ice import RELAY_POLICY, camera_rtc, is_local, relay_configured
from knn.serving.settings import Settings
from knn.serving.startup import Started
from tests.adapted import adapted

TURN = [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "c"}]


def started(policy: str = "all", server_relay: bool = False) -> Started:
    return Started(Settings(ice_transport_policy=policy), frozenset({"relay_policy"} if server_relay else ()))


def test_the_same_servers_for_both_peers_and_the_policy_where_it_can_go():
    assert camera_rtc(TURN, started()) == {
        "frontend_rtc_configuration": {"iceServers": TURN},
        "server_rtc_configuration": {"iceServers": TURN},
    }
    relay = {"iceServers": TURN, "iceTransportPolicy": "relay"}
    assert camera_rtc(TURN, started("relay", True)) == {
        "frontend_rtc_configuration": relay,
        "server_rtc_configuration": relay,
    }
    # The adaptation did not apply: the browser alone is held to the relay.
    assert camera_rtc(TURN, started("relay", False))["server_rtc_configuration"] == {"iceServers": TURN}
    # No servers configured: the key is left out, so streamlit-webrtc chooses them for both peers.
    assert camera_rtc(None, started()) == {"frontend_rtc_configuration": {}, "server_rtc_configuration": {}}


@pytest.fixture()
def component():
    """streamlit-webrtc's component module, its compile function put back afterwards (the app, run
    in this process by other tests, may have adapted it already)."""
    from streamlit_webrtc import component, config

    before = component.compile_rtc_configuration
    component.compile_rtc_configuration = config.compile_rtc_configuration
    yield component
    component.compile_rtc_configuration = before


def test_the_relay_policy_reaches_aiortc(component):
    from aiortc import RTCIceTransportPolicy

    stock = component._resolve_server_rtc_configuration({"iceServers": TURN, "iceTransportPolicy": "relay"})
    assert stock.iceTransportPolicy is RTCIceTransportPolicy.ALL  # why the adaptation exists
    adapted(RELAY_POLICY)  # as the server does: KNN_STOCK=relay_policy leaves it stock
    config = component._resolve_server_rtc_configuration({"iceServers": TURN, "iceTransportPolicy": "relay"})
    assert config.iceTransportPolicy is RTCIceTransportPolicy.RELAY, "the server's peer is not held to the relay"
    assert adapt(RELAY_POLICY)  # twice: one wrapper, not a wrapper of a wrapper
    assert component.compile_rtc_configuration.stock.__module__ == "streamlit_webrtc.config"
    config = component._resolve_server_rtc_configuration({"iceServers": TURN, "iceTransportPolicy": "relay"})
    assert config.iceTransportPolicy is RTCIceTransportPolicy.RELAY
    assert [(s.urls, s.username, s.credential) for s in config.iceServers] == [(TURN[0]["urls"], "u", "c")]
    plain = component._resolve_server_rtc_configuration({"iceServers": []})
    assert plain.iceTransportPolicy is RTCIceTransportPolicy.ALL and plain.iceServers == []


def test_without_servers_streamlit_webrtc_still_chooses_them(component, monkeypatch):
    """The dict names a policy but no servers: they come from streamlit-webrtc (here Google's STUN,
    as no provider key is set), as for an empty dict."""
    for name in (
        "CLOUDFLARE_TURN_KEY_ID",
        "CLOUDFLARE_TURN_KEY_API_TOKEN",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "HF_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    assert adapt(RELAY_POLICY)
    config = component._resolve_server_rtc_configuration({"iceTransportPolicy": "relay"})
    assert [s.urls for s in config.iceServers] == ["stun:stun.l.google.com:19302"]


def test_aiortc_held_to_the_relay_offers_no_host_candidate():
    """What the policy does to the server's peer: without a TURN server it has nothing to offer."""
    from aiortc import RTCConfiguration, RTCIceTransportPolicy, RTCPeerConnection

    async def offer(policy) -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], iceTransportPolicy=policy))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    assert "typ host" in asyncio.run(offer(RTCIceTransportPolicy.ALL))
    assert "a=candidate" not in asyncio.run(offer(RTCIceTransportPolicy.RELAY))


def test_another_streamlit_webrtc_is_left_stock(caplog):
    def compile_rtc_configuration(d):
        return d

    config = types.SimpleNamespace(compile_rtc_configuration=compile_rtc_configuration)
    component = types.SimpleNamespace(compile_rtc_configuration=compile_rtc_configuration)
    assert RELAY_POLICY.check((component, config)) == []
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(RELAY_POLICY, version="9.9.9", found=(component, config))
    assert component.compile_rtc_configuration is compile_rtc_configuration
    assert "not the version this was checked against" in caplog.text and "browsers still are" in caplog.text
    moved = types.SimpleNamespace(compile_rtc_configuration=lambda d: d)  # the component builds it elsewhere
    (problem,) = RELAY_POLICY.check((moved, config))
    assert "no longer builds" in problem


def test_a_relay_is_configured_by_a_turn_url_or_a_providers_complete_keys():
    assert relay_configured(TURN, {}) and not relay_configured([{"urls": "stun:stun.example.org"}], {})
    assert not relay_configured([], {"HF_TOKEN": "t"})  # servers named: the keys are not used
    assert not relay_configured(None, {})  # streamlit-webrtc's choice is then Google's STUN server
    assert relay_configured(None, {"CLOUDFLARE_TURN_KEY_ID": "i", "CLOUDFLARE_TURN_KEY_API_TOKEN": "t"})
    assert not relay_configured(None, {"CLOUDFLARE_TURN_KEY_ID": "i"})  # half a pair: not used
    assert relay_configured(None, {"TWILIO_ACCOUNT_SID": "s", "TWILIO_AUTH_TOKEN": "t"})
    assert relay_configured(None, {"HF_TOKEN": "t"})


def test_only_this_machine_is_local():
    assert all(is_local(h) for h in ("localhost", "127.0.0.1", "::1", "[::1]", "LOCALHOST", None))
    assert not any(is_local(h) for h in ("knn.test", "192.168.1.20", "app.streamlit.app", "localhost.example.org"))
