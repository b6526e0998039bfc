"""What the camera's two WebRTC peers are given to find each other: ICE servers and transport policy.

The ICE servers are the operator's (st.secrets["ice_servers"] or KNN_ICE_SERVERS, knn.serving.settings)
or, when neither is set, streamlit-webrtc's own choice: a TURN relay with short-lived credentials
when CLOUDFLARE_TURN_KEY_ID + CLOUDFLARE_TURN_KEY_API_TOKEN, TWILIO_ACCOUNT_SID + TWILIO_AUTH_TOKEN
or HF_TOKEN are set (in that order), else Google's public STUN server. The browser's
RTCPeerConnection and the server's (aiortc) are given the same servers.

KNN_ICE_TRANSPORT_POLICY=relay makes both peers offer only relay candidates, so every packet
crosses the TURN server. The browser's policy goes through streamlit-webrtc's
`frontend_rtc_configuration`, which its frontend hands to `new RTCPeerConnection` as it is. The
server's cannot: streamlit-webrtc 0.79 builds aiortc's `RTCConfiguration` from the dict's
`iceServers` alone (`streamlit_webrtc.config.compile_rtc_configuration`), although aiortc honours
`iceTransportPolicy`. So `keep_server_transport_policy` makes `streamlit_webrtc.component` use a
compile function that also carries the policy over, after checking that the installed
streamlit-webrtc is a version this was read against; otherwise it logs one warning, streamlit-webrtc
stays stock and only the browsers are held to the relay (which still sends all media through it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Protocol

from .checks import unchecked_version
from .settings import Settings

_LOG = logging.getLogger(__name__)

CHECKED_STREAMLIT_WEBRTC = ("0.79.0",)
"""streamlit-webrtc versions whose server-side configuration path this was read against."""


class StartedLike(Protocol):
    """What `camera_rtc` reads of knn.serving.startup.Started (which imports this module)."""

    settings: Settings
    server_relay: bool


def camera_rtc(servers: list[dict] | None, started: StartedLike) -> dict[str, dict]:
    """The `frontend_rtc_configuration` and `server_rtc_configuration` arguments of webrtc_streamer.

    `servers` are RTCIceServer dicts, or None to let streamlit-webrtc choose (the key is then left
    out, which is how it knows). The relay policy reaches the server only where `started` says
    `keep_server_transport_policy` applied.
    """
    base = {} if servers is None else {"iceServers": servers}
    policy = {"iceTransportPolicy": "relay"} if started.settings.ice_transport_policy == "relay" else {}
    return {
        "frontend_rtc_configuration": {**base, **policy},
        "server_rtc_configuration": {**base, **(policy if started.server_relay else {})},
    }


def check_server_policy(version: str, component: ModuleType, config: ModuleType) -> list[str]:
    """What keeps `keep_server_transport_policy` from applying; empty when it fits."""
    problems = unchecked_version("streamlit-webrtc", version, CHECKED_STREAMLIT_WEBRTC)
    used = getattr(component, "compile_rtc_configuration", None)
    if used is not getattr(config, "compile_rtc_configuration", None) and not hasattr(used, "keeps_policy"):
        problems.append(
            "streamlit_webrtc.component no longer builds the server's configuration with "
            "streamlit_webrtc.config.compile_rtc_configuration"
        )
    return problems


def keep_server_transport_policy(
    *, version: str | None = None, component: ModuleType | None = None, config: ModuleType | None = None
) -> bool:
    """Make streamlit-webrtc pass `iceTransportPolicy` of `server_rtc_configuration` on to aiortc
    (idempotent). The keyword arguments name what to adapt (the installed streamlit-webrtc by
    default; tests pass others). Returns True if it applies, False (after one warning) if not."""
    if version is None or component is None or config is None:
        import importlib.metadata

        from streamlit_webrtc import component as webrtc_component
        from streamlit_webrtc import config as webrtc_config

        version = importlib.metadata.version("streamlit-webrtc")
        component, config = webrtc_component, webrtc_config
    problems = check_server_policy(version, component, config)
    if problems:
        _LOG.warning("The server's WebRTC peer is not held to the relay (%s); browsers still are.", "; ".join(problems))
        return False
    component.compile_rtc_configuration = policy_keeping(config.compile_rtc_configuration)
    return True


def policy_keeping(compile_configuration: Callable) -> Callable:
    """`compile_configuration` that also sets aiortc's `iceTransportPolicy` from the dict, and leaves
    `iceServers` unset (None: streamlit-webrtc then chooses) when the dict does not name any, as
    streamlit-webrtc does for an empty dict."""
    stock = getattr(compile_configuration, "stock", compile_configuration)  # applying twice wraps once

    def compile_keeping_policy(rtc_configuration: dict):
        from aiortc import RTCIceTransportPolicy

        compiled = stock(rtc_configuration)
        policy = rtc_configuration.get("iceTransportPolicy")
        if policy is not None:
            compiled.iceTransportPolicy = RTCIceTransportPolicy(policy)
        if "iceServers" not in rtc_configuration:
            compiled.iceServers = None
        return compiled

    compile_keeping_policy.stock = stock
    compile_keeping_policy.keeps_policy = True
    return compile_keeping_policy
