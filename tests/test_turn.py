"""The camera through a real TURN relay: coturn on loopback, the app and Chromium both held to it.

What Streamlit Community Cloud needs (README, Deploying): browser and server cannot reach each
other directly, so every packet goes through a relay. Here `turnserver` (Debian's coturn) runs on
127.0.0.1 with one static user; the app gets only that server (KNN_ICE_SERVERS) and
KNN_ICE_TRANSPORT_POLICY=relay, which holds the browser's RTCPeerConnection (through
streamlit-webrtc's frontend configuration) and the server's aiortc peer (knn.serving.ice) to relay
candidates. Then frames must flow and predictions come back, Chromium's selected candidate pair
must be relay on both ends, and coturn's log must show the allocations carrying the video.

Chromium needs no flag for this: the relay candidates are 127.0.0.1 and Chromium accepts them.
What loopback needs is on coturn's side, which refuses loopback peers unless --allow-loopback-peers.
Slow (about a minute per test): marked `browser`. Skips with a message if coturn is absent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.app_server import AppServer
from harness.browser import CHROMIUM, RECORD_PEERS, Page, launch, skip_without_chromium
from harness.processes import find_binary
from harness.turn import TurnServer

pytestmark = pytest.mark.browser

VIDEO_BYTES = 50_000
"""Bytes a relay allocation must have carried each way for its call to count as video (a few
seconds of VP8; the STUN and TURN control messages of a call are a few kB)."""


@pytest.fixture(scope="module")
def chromium() -> Path:
    skip_without_chromium()
    if find_binary(TurnServer.BINARY) is None:
        pytest.skip("coturn's turnserver is absent: the TURN test needs it (apt-get install coturn; .ci/run does)")
    return CHROMIUM


def relayed_app(turn: TurnServer, transport: str) -> AppServer:
    return AppServer(
        metrics=True,
        env={"KNN_ICE_SERVERS": json.dumps(turn.ice_servers(transport)), "KNN_ICE_TRANSPORT_POLICY": "relay"},
    )


def open_page(p, app: AppServer, video: Path):
    browser = launch(p, video)
    context = browser.new_context(viewport={"width": 1400, "height": 1050})
    context.add_init_script(RECORD_PEERS)
    return browser, Page(context.new_page(), app.url)


def relay_pair(page: Page) -> dict:
    """The camera's connected peer; both ends of its selected candidate pair must be relays."""
    pairs = page.ice_pairs()
    assert pairs and all(p["policy"] == "relay" for p in pairs), pairs
    connected = [p for p in pairs if p["state"] == "connected"]
    assert connected, pairs
    pair = connected[-1]
    # local: the browser's own relay address; remote: aiortc's, the only kind it offered.
    assert (pair["local"], pair["remote"]) == ("relay", "relay"), pair
    assert pair["remote_offered"] == ["relay"], pair
    return pair


def mirrored_allocations(turn: TurnServer) -> list[tuple[str, str]]:
    """Once the call has ended (coturn logs an allocation's bytes when it is released, so the
    browser stays open until then): pairs of allocations that carried the video to each other,
    what one relay address sent being what the other received, both ways (within 5%: packets in
    flight at the end). That is browser -> its allocation -> the server's allocation -> aiortc,
    and the captioned video back."""

    def mirrored(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return all(abs(x - y) <= 0.05 * max(x, y) for x, y in zip(a, reversed(b), strict=True))

    deadline = time.monotonic() + 30
    while True:
        carried = {sid: b for sid, b in turn.relayed().items() if min(b) >= VIDEO_BYTES}
        pairs = [(a, b) for a in carried for b in carried if a < b and mirrored(carried[a], carried[b])]
        if pairs or time.monotonic() > deadline:
            return pairs
        time.sleep(0.5)


def test_frames_and_predictions_flow_through_the_relay(chromium, photos, rock_video, tmp_path):
    from playwright.sync_api import sync_playwright

    with TurnServer() as turn, relayed_app(turn, "udp") as app, sync_playwright() as p:
        browser, page = open_page(p, app, rock_video)
        try:
            page.start_camera()
            assert page.prediction() == "no examples"
            page.add(slot=0, times=3)
            page.upload(slot=1, files=photos["paper"][60::12])
            page.wait_for(lambda: page.prediction() == "Class 1", "Class 1 as the prediction", 30)
            pair = relay_pair(page)
            assert pair["bytes_sent"] > VIDEO_BYTES and pair["bytes_received"] > VIDEO_BYTES, pair
            # Both peers allocated a relay address: the browser's and the server's.
            assert len(turn.allocations()) >= 2, turn.log()[-3000:]
            examples = 3 + len(photos["paper"][60::12])
            app.wait_metrics(
                lambda m: [(s["examples"], s["frames_processed"] > 30) for s in m["sessions"]] == [(examples, True)],
                f"one session with {examples} examples processing frames",
                30,
            )
            assert page.notice("connection_problem") == ""  # a working relay: nothing to say
            page.page.mouse.move(1380, 20)  # no tooltip over the page
            time.sleep(3.0)  # the live panel's rates settle
            page.page.screenshot(path=str(tmp_path / "relay.png"), full_page=True)
            print(f"screenshot: {tmp_path / 'relay.png'}; pair {pair}")
            page.stop_camera()
            pairs = mirrored_allocations(turn)
        finally:
            browser.close()
        assert pairs, (turn.relayed(), turn.log()[-3000:])


def test_aiortc_and_chromium_reach_the_relay_over_tcp(chromium, rock_video):
    """turn:...?transport=tcp, for networks that block UDP: aioice's TURN client speaks TCP too."""
    from playwright.sync_api import sync_playwright

    with TurnServer() as turn, relayed_app(turn, "tcp") as app, sync_playwright() as p:
        browser, page = open_page(p, app, rock_video)
        try:
            page.start_camera()
            app.wait_metrics(
                lambda m: m["sessions"] and m["sessions"][0]["frames_processed"] > 90,
                "frames processed on the server",
                30,
            )
            relay_pair(page)
            page.stop_camera()
            pairs = mirrored_allocations(turn)
        finally:
            browser.close()
        assert pairs, (turn.relayed(), turn.log()[-3000:])
        assert set(pairs[0]) <= turn.over_tcp(), turn.log()[-3000:]  # both peers came over TCP
