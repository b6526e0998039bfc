"""What the page says under the camera about its connection: before anyone waits, that a page
served to other machines needs a TURN relay when none is configured; and, when a connection fails or
stalls, what the server saw of it (knn.serving.connection), until a later connection works."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import streamlit as st

from knn.serving.camera_peer import server_peer
from knn.serving.connection import ConnectionWatch, Problem
from knn.serving.ice import is_local, relay_configured, server_ice_servers
from knn.serving.relay_probe import ASK_SECONDS, RelayAnswer, relay_of

from ..markdown import md
from ..resources import serving
from ..state import ss

SECRETS_HELP = "https://docs.streamlit.io/deploy/streamlit-community-cloud/deploy-your-app/secrets-management"
WHAT_TO_PUT = (
    "Put one in the app's [Secrets](" + SECRETS_HELP + ") (README, *Deploying*): "
    "`CLOUDFLARE_TURN_KEY_ID` and `CLOUDFLARE_TURN_KEY_API_TOKEN` (Cloudflare Realtime TURN), "
    "`TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN` (Twilio), or an `[[ice_servers]]` entry with a "
    "`turn:` URL, `username` and `credential` (your own coturn)."
)


def follow_connection(context: object, servers: list[dict] | None) -> None:
    """After the camera is drawn: follow its server-side peer from the first run that has one.
    `servers` are the ICE servers the page gave webrtc_streamer (None: streamlit-webrtc's choice)."""
    ss.relay_configured = relay_configured(servers, os.environ)
    if not serving().peers_reachable:
        return
    peer = server_peer(context)
    watch: ConnectionWatch | None = ss.get("connection_watch")
    if peer is not None and (watch is None or not watch.follows(peer)):
        ss.connection_watch = ConnectionWatch(peer, relay_of(server_ice_servers(servers)))


def shown_problem() -> Problem | None:
    """The problem the page shows now: the current connection's, else the last one's until a later
    connection works (a new START that is still connecting keeps the last word)."""
    watch: ConnectionWatch | None = ss.get("connection_watch")
    last: Problem | None = ss.get("drawn_problem")
    if watch is None:
        return last
    problem = watch.problem()
    if problem is not None:
        return problem
    return None if watch.connected else last


def connection_notices() -> None:
    """Under the camera: the relay advice, then the connection's problem (the live panel's timed run
    redraws the page when it changes: ui.views.live_panel)."""
    host = page_host()
    if not is_local(host) and not ss.get("relay_configured", True):
        st.container(key="relay_advice").warning(
            f"**Cameras behind NAT need a relay.** This page is served as {md(host)} and no TURN relay is "
            "configured: only cameras on the server's own network can connect. " + WHAT_TO_PUT,
            icon=":material/router:",
        )
    problem = ss.drawn_problem = shown_problem()
    if problem is not None:
        st.container(key="connection_problem").error(describe(problem), icon=":material/videocam_off:")


def page_host() -> str | None:
    """The host name the browser opened this page with (no port), None where Streamlit cannot tell."""
    url = st.context.url
    if url:
        return urlsplit(url).hostname
    host = st.context.headers.get("Host")
    return urlsplit(f"//{host}").hostname if host else None


def describe(problem: Problem) -> str:
    """The problem in the user's words, saying only what the server saw."""
    offered = ", ".join(problem.candidates)
    relay = code(problem.relay_url) if problem.relay_url else "the relay"
    if problem.kind == "no relay":
        where = (
            "Held to the relay (`KNN_ICE_TRANSPORT_POLICY=relay`), it has no other address to offer the browser."
            if not problem.candidates
            else f"No connectivity check with its other addresses ({offered}) succeeded."
        )
        return f"**The camera cannot connect: the server got no address from the relay** {relay}. {where} " + (
            answer_text(problem.relay_answer) if problem.relay_answer else "Asking the relay again…"
        )
    if problem.kind == "stalled":
        text = (
            f"**The camera did not connect:** no connectivity check between this browser and the server "
            f"succeeded within {problem.seconds:g} s (the server offered {offered or 'no'} addresses). "
        )
        if problem.relay_url is None:
            return text + "Browser and server cannot reach each other directly: they need a TURN relay. " + WHAT_TO_PUT
        return text + (
            f"The relay {relay} gave the server an address, so the browser could not reach the relay or the "
            "server: check the relay's URL and that its ports are open to the browser's network."
        )
    return (
        f"**The camera's connection was lost** after it had worked for {problem.seconds:g} s: the server stopped "
        "hearing from the browser (the network changed or dropped). Press **START** to connect again."
    )


def code(text: str) -> str:
    """`text` as inline code (Markdown shows it literally; only a backtick could end it)."""
    return "`" + text.replace("`", "'") + "`"


def answer_text(answer: RelayAnswer) -> str:
    """What the relay answered when the server asked it again for an address."""
    if answer.kind == "refused" and answer.code == 401:
        return (
            f"Asked again, the relay refused the server's credentials ({answer.code} {md(answer.detail)}): "
            "check the `username` and `credential` in the app's Secrets."
        )
    texts = {
        "refused": f"Asked again, the relay refused ({answer.code} {md(answer.detail)}).",
        "no answer": (
            f"Asked again, the relay did not answer within {ASK_SECONDS:g} s: it is unreachable from the "
            "server (a wrong host or port, or a firewall dropping its packets)."
        ),
        "connection refused": "Asked again, nothing accepted the connection there: a wrong port, or the relay is down.",
        "unresolved": "The relay's host name does not resolve on the server.",
        "unreachable": f"The server cannot reach the relay ({md(answer.detail)}).",
        "allocated": "Asked again, the relay gave an address: it was unreachable for a moment. Press **START** again.",
    }
    return texts[answer.kind]
