"""What the page says under the camera about its connection, in Chromium, each message with its real
cause (ui.views.connection; the diagnosis itself on aiortc peers: tests/test_connection.py):

- held to the relay (KNN_ICE_TRANSPORT_POLICY=relay) with a relay URL where nothing listens: the
  server got no relay address, and asked again the relay did not answer;
- a real coturn given the wrong password: the relay refused the server's credentials (401); once
  coturn has the app's password, the next START connects through the relay and the message goes;
- the page opened under another host name (knn.test, mapped to 127.0.0.1 in Chromium) with no
  relay configured: the relay advice, before anyone presses START; under localhost: none.

Screenshots of each go to the test's tmp_path (printed). Slow: marked `browser`.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from harness.app_server import AppServer
from harness.browser import CHROMIUM, RECORD_PEERS, Page, launch, skip_without_chromium
from harness.processes import find_binary, free_port
from harness.turn import TurnServer

pytestmark = pytest.mark.browser

PROBLEM, ADVICE = "connection_problem", "relay_advice"


@pytest.fixture(scope="module")
def chromium() -> Path:
    skip_without_chromium()
    return CHROMIUM


@pytest.fixture(scope="module")
def turn(chromium):
    if find_binary(TurnServer.BINARY) is None:
        pytest.skip("coturn's turnserver is absent (apt-get install coturn; .ci/run does)")
    with TurnServer() as server:
        yield server


def relay_only_app(servers: list[dict]) -> AppServer:
    return AppServer(env={"KNN_ICE_SERVERS": json.dumps(servers), "KNN_ICE_TRANSPORT_POLICY": "relay"})


def open_page(playwright, url: str, origins: tuple[str, ...] = ()):
    browser = launch(playwright, None, origins=origins)
    context = browser.new_context(viewport={"width": 1400, "height": 1300})  # the messages under the camera fit
    context.add_init_script(RECORD_PEERS)
    return browser, Page(context.new_page(), url)


def screenshot(page: Page, path: Path) -> None:
    page.page.mouse.move(1380, 20)  # no tooltip over the page
    page.page.locator("h1").first.scroll_into_view_if_needed()  # START scrolled the page: back to its top
    page.page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_held_to_a_relay_that_is_not_there(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    port = free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
    url = f"turn:127.0.0.1:{port}?transport=udp"
    with relay_only_app([{"urls": [url], "username": "knn", "credential": "x"}]) as app, sync_playwright() as p:
        browser, page = open_page(p, app.url)
        try:
            page.press_start()
            # Gathering waits 5 s for the relay, then asking it again 5 s more.
            page.wait_for(lambda: "did not answer within 5 s" in page.notice(PROBLEM), "the relay's silence", 60)
            text = page.notice(PROBLEM)
            assert "the server got no address from the relay" in text and url in text, text
            assert "no other address to offer the browser" in text, text  # held to the relay
            assert page.notice(ADVICE) == ""  # served as 127.0.0.1
            assert page.ice_pairs()[-1]["remote_offered"] == []  # the server's answer: no candidate at all
            screenshot(page, tmp_path / "relay_unreachable.png")
        finally:
            browser.close()


def test_a_relay_that_refuses_our_password_then_takes_it(turn, tmp_path):
    from playwright.sync_api import sync_playwright

    turn.set_user("class", "an old password")
    servers = [{"urls": turn.ice_servers()[0]["urls"], "username": "class", "credential": "the app's password"}]
    with relay_only_app(servers) as app, sync_playwright() as p:
        browser, page = open_page(p, app.url)
        try:
            page.press_start()
            page.wait_for(lambda: "Asked again" in page.notice(PROBLEM), "the relay's answer", 60)
            text = page.notice(PROBLEM)
            assert "refused the server's credentials (401 Unauthorized)" in text, text
            assert "user class credentials are incorrect" in turn.log()  # coturn's side of it
            screenshot(page, tmp_path / "relay_refused.png")

            turn.set_user("class", "the app's password")  # the operator fixes the relay
            page.stop_camera()
            page.start_camera()  # waits for the first processed frame
            page.wait_for(lambda: page.notice(PROBLEM) == "", "the message to go once the camera connects", 30)
            pair = [p for p in page.ice_pairs() if p["state"] == "connected"][-1]
            assert (pair["local"], pair["remote"]) == ("relay", "relay"), pair
            screenshot(page, tmp_path / "relay_working.png")
        finally:
            browser.close()


def test_another_host_without_a_relay_is_told_before_start(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    with AppServer() as app, sync_playwright() as p:  # no ICE servers at all: KNN_ICE_SERVERS=[]
        alias = f"http://knn.test:{app.port}"
        browser, page = open_page(p, alias, origins=(alias,))
        try:
            page.wait_for(lambda: page.notice(ADVICE) != "", "the relay advice", 30)
            text = page.notice(ADVICE)
            assert "Cameras behind NAT need a relay" in text and "served as knn.test" in text, text
            assert "CLOUDFLARE_TURN_KEY_ID" in text and "TWILIO_ACCOUNT_SID" in text and "ice_servers" in text, text
            page.start_camera()  # this browser is on the server's machine: it connects directly
            assert page.notice(ADVICE) != ""  # still said: the next user may be behind NAT
            screenshot(page, tmp_path / "relay_advice.png")
            page.stop_camera()
            page.wait_runs(3, "after STOP")
            assert page.notice(PROBLEM) == ""  # a STOP is not a lost connection
            for local in (f"http://localhost:{app.port}", app.url):
                page = Page(browser.new_context().new_page(), local)
                page.wait_runs(3, f"{local} drawn")
                assert page.notice(ADVICE) == "", local
        finally:
            browser.close()
