"""What the camera's two WebRTC peers are given to find each other: ICE servers and transport policy.

The ICE servers are the operator's (st.secrets["ice_servers"] or KNN_ICE_SERVERS) or, when neither
is set, streamlit-webrtc's own choice (a Cloudflare, Twilio or Hugging Face TURN relay when their
keys are set, else Google's public STUN server); browser and server get the same.
KNN_ICE_TRANSPORT_POLICY=relay holds both to relay candidates: streamlit-webrtc 0.79 drops the
server's policy, so the `RELAY_POLICY` adaptation carries it over to aiortc (where it does not
apply, only the browsers are held to the relay).
`relay_configured` and `is_local` decide whether the page must say, before anyone waits, that
cameras behind NAT need a relay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Protocol

from .adapt import Adaptation
from .settings import Settings, has_turn

PROVIDER_KEYS = (
    ("CLOUDFLARE_TURN_KEY_ID", "CLOUDFLARE_TURN_KEY_API_TOKEN"),
    ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
    ("HF_TOKEN",),
)
"""The environment variables with which streamlit-webrtc fetches a TURN relay's credentials (each
group complete), when no ICE servers are configured."""
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts from which a browser reaches the server on the same machine: no relay needed."""


def relay_configured(servers: list[dict] | None, env: Mapping[str, str]) -> bool:
    """Whether the camera's peers are given a TURN relay: a `turn:`/`turns:` URL among the configured
    `servers`, or (None: streamlit-webrtc chooses) a provider's keys in `env`."""
    if servers is not None:
        return has_turn(servers)
    return any(all(env.get(key) for key in keys) for keys in PROVIDER_KEYS)


def is_local(host: str | None) -> bool:
    """Whether the page's host (st.context's URL host, no port) is this machine; None (unknown) counts
    as local, so nothing is said on a guess."""
    return host is None or host.strip("[]").lower() in LOCAL_HOSTS


def server_ice_servers(servers: list[dict] | None) -> list[dict]:
    """The ICE servers the server's peer is given: `servers`, or (None) streamlit-webrtc's choice,
    which it caches, so this is the list the peer got."""
    if servers is not None:
        return servers
    from streamlit_webrtc.credentials import get_available_ice_servers

    return [dict(s) for s in get_available_ice_servers()]


class StartedLike(Protocol):
    """What `camera_rtc` reads of knn.serving.startup.Started (which imports this module); read-only
    members, as Started is a frozen dataclass."""

    @property
    def settings(self) -> Settings: ...

    @property
    def server_relay(self) -> bool: ...


def camera_rtc(servers: list[dict] | None, started: StartedLike) -> dict[str, dict]:
    """The `frontend_rtc_configuration` and `server_rtc_configuration` arguments of webrtc_streamer.

    `servers` are RTCIceServer dicts, or None to let streamlit-webrtc choose (the key is then left
    out, which is how it knows). The relay policy reaches the server only where `started` says
    `RELAY_POLICY` applied.
    """
    base = {} if servers is None else {"iceServers": servers}
    policy = {"iceTransportPolicy": "relay"} if started.settings.ice_transport_policy == "relay" else {}
    return {
        "frontend_rtc_configuration": {**base, **policy},
        "server_rtc_configuration": {**base, **(policy if started.server_relay else {})},
    }


def _find() -> tuple[ModuleType, ModuleType]:
    from streamlit_webrtc import component, config

    return component, config


def _check(found: tuple[ModuleType, ModuleType]) -> list[str]:
    component, config = found
    used = getattr(component, "compile_rtc_configuration", None)
    if used is not getattr(config, "compile_rtc_configuration", None) and not hasattr(used, "keeps_policy"):
        return [
            "streamlit_webrtc.component no longer builds the server's configuration with "
            "streamlit_webrtc.config.compile_rtc_configuration"
        ]
    return []


def _change(found: tuple[ModuleType, ModuleType], _: object) -> None:
    component, config = found
    component.compile_rtc_configuration = policy_keeping(config.compile_rtc_configuration)  # type: ignore[attr-defined]  # the adaptation's one change


RELAY_POLICY = Adaptation(
    name="relay_policy",
    package="streamlit-webrtc",
    checked="0.79.0",
    reason="streamlit-webrtc builds aiortc's configuration from iceServers alone and drops iceTransportPolicy",
    kept_by="tests/test_ice.py (stock: the server's peer is not held to the relay), tests/test_turn.py",
    lost="The server's WebRTC peer is not held to the relay, browsers still are",
    find=_find,
    check=_check,
    change=_change,
)
"""Applied only with KNN_ICE_TRANSPORT_POLICY=relay."""


def policy_keeping(compile_configuration: Callable[[dict[str, Any]], Any]) -> PolicyKeeping:
    """`compile_configuration` that also sets aiortc's `iceTransportPolicy` from the dict, and leaves
    `iceServers` unset (None: streamlit-webrtc then chooses) when the dict does not name any, as
    streamlit-webrtc does for an empty dict."""
    return PolicyKeeping(getattr(compile_configuration, "stock", compile_configuration))  # applying twice wraps once


class PolicyKeeping:
    """`policy_keeping`'s compile function; `stock` is streamlit-webrtc's."""

    keeps_policy = True

    def __init__(self, stock: Callable[[dict[str, Any]], Any]) -> None:
        self.stock = stock

    def __call__(self, rtc_configuration: dict[str, Any]) -> Any:
        from aiortc import RTCIceTransportPolicy

        compiled = self.stock(rtc_configuration)
        policy = rtc_configuration.get("iceTransportPolicy")
        if policy is not None:
            compiled.iceTransportPolicy = RTCIceTransportPolicy(policy)
        if "iceServers" not in rtc_configuration:
            compiled.iceServers = None
        return compiled
