"""The serving process's settings: one object, read once from the environment.

Every variable is optional; README's table lists them (`VARIABLES` is that table). A value that
cannot be read is reported in `Settings.problems` and its default is used, so a typo never stops
the app but is never silent either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..live.answer_size import CAMERAS_PER_CORE
from ..persist import DEFAULT_QUOTA, DEFAULT_TTL, default_data_dir
from .socket_drain import MOST as DRAIN_MOST

TRANSPORT_POLICIES = ("all", "relay")
"""W3C RTCIceTransportPolicy values: any candidate, or only a TURN relay's."""
MAX_VIDEO_BITRATE = 500_000
"""bit/s: the most the server sends the captioned video back at (knn.serving.rtc): aiortc's own
start value; the camera's picture came in at 150-600 kbit/s, so more buys little but costs the
encoder 1.4-1.5 times the time per frame at 1.5 Mbit/s (docs/performance.md)."""
SWITCH_INTERVAL_MS = 1.0
"""Milliseconds a thread may hold the GIL while another waits (Python's own is 5)."""
MMAP_THRESHOLD = 128 * 1024
"""Bytes from which glibc's malloc maps a block of its own, fixed (knn.serving.memory)."""
CAPTURE = (640, 480, 30)
"""The camera's width, height and frame rate the page asks the browser for."""

VARIABLES = (
    (
        "KNN_ICE_SERVERS",
        "streamlit-webrtc's choice: Cloudflare or Twilio TURN when their keys are set, else "
        "Google's public STUN server",
        'ICE servers for WebRTC as a JSON list of RTCIceServer objects (`st.secrets["ice_servers"]` wins); '
        "`[]` for loopback",
    ),
    (
        "KNN_ICE_TRANSPORT_POLICY",
        "all",
        "`relay`: browsers and the server use only TURN relay candidates, so all video crosses the relay "
        "(to prove a relay works, or where peers must not see each other's addresses)",
    ),
    (
        "KNN_BACKBONE",
        "MobileNetV2 1.0 at 224 where its weights can be had, else v1",
        "the backbone new sessions start with, e.g. `mobilenet_v2_1.0_320` for the accurate mode",
    ),
    ("KNN_THREADS", "one per core", "threads per LiteRT invoke"),
    (
        "KNN_GC_SECONDS",
        "30",
        "seconds between the process's full garbage collections, which free closed sessions (Streamlit's "
        "collection after every page run is off: `runner.postScriptGC`); `0`: no such thread",
    ),
    (
        "KNN_SWITCH_INTERVAL_MS",
        f"{SWITCH_INTERVAL_MS:g}",
        "milliseconds a thread may hold the GIL while another waits (camera frames cross three threads); "
        "`0`: Python's own (5)",
    ),
    (
        "KNN_MMAP_THRESHOLD",
        str(MMAP_THRESHOLD),
        "bytes from which glibc maps each block of its own, fixed, so frame buffers go back to the system; "
        "`0`: glibc's own sliding threshold",
    ),
    (
        "KNN_UVLOOP",
        "1",
        "`0`: the server's event loop is asyncio's own though uvloop is installed. Streamlit picks its loop "
        "before the app runs and has no setting for it, so this is read where the server is started (the "
        "harness's `AppServer`); elsewhere uninstall uvloop",
    ),
    (
        "KNN_CAPTURE",
        "640x480@30",
        "the camera size (and frame rate) the page asks browsers for, `WIDTHxHEIGHT` or `WIDTHxHEIGHT@FPS`",
    ),
    (
        "KNN_STOCK",
        "none",
        "adaptations of aiortc, aioice, streamlit-webrtc and Streamlit to leave stock, comma-separated "
        "(`all` for every one; names in [docs/adaptations.md](docs/adaptations.md))",
    ),
    (
        "KNN_MAX_BITRATE",
        str(MAX_VIDEO_BITRATE),
        "bit/s ceiling on the captioned video the server sends back; 0 leaves aiortc's own (1.5 Mbit/s)",
    ),
    (
        "KNN_STEADY",
        "1",
        "`1`: a camera frame that barely differs from the last one the model saw reuses its "
        "prediction (the model still sees each camera twice a second); `0`: every frame goes to the model, "
        "for scenes whose smallest changes must show at once",
    ),
    (
        "KNN_CAMERAS_PER_CORE",
        "2",
        "above this many streaming cameras per core, the captioned video goes back at "
        "half width and height (its encode is the server's largest cost per frame); `0`: always the camera's size",
    ),
    (
        "KNN_UDP_DRAIN",
        str(DRAIN_MOST),
        "datagrams read from a WebRTC socket each time the event loop finds it "
        "readable; `1`: asyncio's own one per turn, with which a busy server's loop leaves seconds of video waiting "
        "in the kernel's queues (docs/performance.md)",
    ),
    (
        "KNN_STORE",
        "1",
        "`0`: projects live only while their tab is open and nothing is written (docs/projects.md)",
    ),
    (
        "KNN_DATA_DIR",
        "~/.local/share/knn",
        "the folder of the SQLite project store (`projects.sqlite3`), created private to the user (0700)",
    ),
    (
        "KNN_DATABASE_URL",
        "none: SQLite in `KNN_DATA_DIR`",
        "a `postgresql://user:password@host/database` URL for the project store, shared by several processes "
        "(a `[connections.knn]` `url` in `.streamlit/secrets.toml` wins)",
    ),
    (
        "KNN_PROJECT_TTL",
        "30d",
        "projects not opened for this long are deleted (`s`, `m`, `h` or `d`; a bare number is seconds)",
    ),
    (
        "KNN_STORE_QUOTA",
        "5GB",
        "bytes all stored projects may take together (`kB`, `MB`, `GB`); a change past it is refused and "
        "kept in its tab only",
    ),
    ("KNN_METRICS_FILE", "none", "write the process's live metrics to this JSON file"),
    ("KNN_METRICS_INTERVAL", "1", "seconds between two metrics snapshots"),
    ("KNN_WEIGHTS_DIR", "none", "a folder of `<backbone>_no_top.weights.h5` files (read by the engine)"),
    ("KNN_CACHE", "~/.cache/knn", "where converted weights and LiteRT models are kept (read by the engine)"),
    (
        "KNN_OFFLINE",
        "0",
        "`1`: never try Keras' weight download (read by the engine); it is tried only when its "
        "host answers within 3 s anyway",
    ),
)
"""(name, default, what it does) of every environment variable the app reads."""


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """What an operator can set; see `VARIABLES`.

    Attributes:
        ice_servers: RTCIceServer dicts from KNN_ICE_SERVERS, or None when unset.
        ice_transport_policy: "all" or "relay" (`TRANSPORT_POLICIES`).
        backbone: the backbone id sessions start with, or None for the best available.
        threads: LiteRT threads per invoke; None for one per core.
        gc_seconds, switch_interval_ms, mmap_threshold, uvloop, max_bitrate, steady,
            cameras_per_core, udp_drain, metrics_file, metrics_interval:
            as `VARIABLES` says.
        capture: (width, height, frames per second) the page asks the camera for.
        stock: names of the adaptations left stock (knn.serving.adapt), every one for `all`.
        store, data_dir, database_url, project_ttl (seconds), store_quota (bytes): the project
            store's, as `VARIABLES` says (knn.serving.projects opens it).
        problems: one message per variable whose value was refused (its default is used).
    """

    ice_servers: tuple[dict, ...] | None = None
    ice_transport_policy: str = "all"
    backbone: str | None = None
    threads: int | None = None
    gc_seconds: float = 30.0
    switch_interval_ms: float = SWITCH_INTERVAL_MS
    mmap_threshold: int = MMAP_THRESHOLD
    uvloop: bool = True
    capture: tuple[int, int, int] = CAPTURE
    stock: frozenset[str] = frozenset()
    max_bitrate: int = MAX_VIDEO_BITRATE
    steady: bool = True
    cameras_per_core: float = CAMERAS_PER_CORE
    udp_drain: int = DRAIN_MOST
    metrics_file: Path | None = None
    metrics_interval: float = 1.0
    store: bool = True
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = field(default=None, repr=False)  # may hold a password
    project_ttl: float = DEFAULT_TTL
    store_quota: int = DEFAULT_QUOTA
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        problems: list[str] = []
        values: dict[str, Any] = {}  # attribute -> its parser's value, of the attribute's type

        def read(name: str, attr: str, parse: Callable[[str], object]) -> None:
            text = env.get(name, "").strip()
            if not text:
                return
            try:
                values[attr] = parse(text)
            except (ValueError, SettingsError) as exc:
                shown = "(the URL)" if name == "KNN_DATABASE_URL" else repr(text)  # never echo a password
                problems.append(f"{name}={shown} is ignored: {exc}")

        read("KNN_ICE_SERVERS", "ice_servers", lambda t: tuple(parse_ice_servers(_json(t), "KNN_ICE_SERVERS")))
        read("KNN_ICE_TRANSPORT_POLICY", "ice_transport_policy", _policy)
        read("KNN_BACKBONE", "backbone", _backbone)
        read("KNN_THREADS", "threads", lambda t: _number(t, int, 1))
        read("KNN_GC_SECONDS", "gc_seconds", lambda t: _number(t, float, 0.1, off=0))
        read("KNN_SWITCH_INTERVAL_MS", "switch_interval_ms", lambda t: _number(t, float, 0.01, off=0))
        read("KNN_MMAP_THRESHOLD", "mmap_threshold", lambda t: _number(t, int, 4096, off=0))
        read("KNN_UVLOOP", "uvloop", _flag)
        read("KNN_CAPTURE", "capture", _capture)
        read("KNN_STOCK", "stock", _stock)
        read("KNN_MAX_BITRATE", "max_bitrate", lambda t: _number(t, int, 0))
        read("KNN_STEADY", "steady", _flag)
        read("KNN_CAMERAS_PER_CORE", "cameras_per_core", lambda t: _number(t, float, 0))
        read("KNN_UDP_DRAIN", "udp_drain", lambda t: _number(t, int, 1))
        read("KNN_METRICS_FILE", "metrics_file", Path)
        read("KNN_METRICS_INTERVAL", "metrics_interval", lambda t: _number(t, float, 0.05))
        read("KNN_STORE", "store", _flag)
        read("KNN_DATA_DIR", "data_dir", lambda t: Path(t).expanduser())
        read("KNN_DATABASE_URL", "database_url", _database_url)
        read("KNN_PROJECT_TTL", "project_ttl", _duration)
        read("KNN_STORE_QUOTA", "store_quota", _size)
        servers = values.get("ice_servers")
        if values.get("ice_transport_policy") == "relay" and servers is not None and not has_turn(servers):
            problems.append(
                "KNN_ICE_TRANSPORT_POLICY='relay' is ignored: KNN_ICE_SERVERS has no turn: or "
                "turns: URL, and without one no connection could be made"
            )
            del values["ice_transport_policy"]
        return cls(**values, problems=tuple(problems))

    def ice_server_list(self, secret: object = None) -> list[dict] | None:
        """ICE servers: a secret's value first (st.secrets["ice_servers"]), then KNN_ICE_SERVERS;
        None when neither is set (streamlit-webrtc then chooses, knn.serving.ice). Raises
        SettingsError for a malformed secret, or one without a TURN server when only relays may be used."""
        if secret is not None:
            servers = parse_ice_servers(secret, "the ice_servers secret")
            if self.ice_transport_policy == "relay" and not has_turn(servers):
                raise SettingsError(
                    "the ice_servers secret has no turn: or turns: URL, and "
                    "KNN_ICE_TRANSPORT_POLICY=relay allows only a TURN relay"
                )
            return servers
        return None if self.ice_servers is None else [dict(s) for s in self.ice_servers]


def parse_ice_servers(value: object, where: str) -> list[dict]:
    """A list of RTCIceServer dicts ({"urls": ..., "username": ..., "credential": ...}); [] is valid."""
    if not isinstance(value, (list, tuple)) or not all(hasattr(s, "get") and s.get("urls") for s in value):
        raise SettingsError(f'{where} must be a list of {{"urls": ...}} objects, got {value!r}')
    return [dict(s) for s in value]


def has_turn(servers: list[dict] | tuple[dict, ...]) -> bool:
    """Whether any of these RTCIceServer dicts is a TURN relay."""
    urls = [u for s in servers for u in ([s["urls"]] if isinstance(s["urls"], str) else s["urls"])]
    return any(str(u).startswith(("turn:", "turns:")) for u in urls)


def _policy(text: str) -> str:
    if text.lower() not in TRANSPORT_POLICIES:
        raise SettingsError(f"expected one of {', '.join(TRANSPORT_POLICIES)}")
    return text.lower()


def _backbone(text: str) -> str:
    from ..model.backbones import get_backbone

    return get_backbone(text).id  # ValueError lists the ids


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"not valid JSON ({exc})") from None


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise SettingsError("expected 0 or 1")
    return text == "1"


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_BYTES = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def _duration(text: str) -> float:
    """Seconds from `3600`, `90m`, `12h` or `30d`; at least a minute."""
    unit = text[-1].lower() if text[-1].isalpha() else "s"
    number = text[:-1] if text[-1].isalpha() else text
    try:
        seconds = float(number.strip()) * _SECONDS[unit]
    except (KeyError, ValueError):
        raise SettingsError("expected a duration such as 30d, 12h, 90m or 3600 (seconds)") from None
    if not seconds >= 60:
        raise SettingsError("must be at least 60 seconds")
    return seconds


def _size(text: str) -> int:
    """Bytes from `5GB`, `500MB`, `64kB` or a bare number."""
    digits = text.rstrip("bBkKmMgGtT ")
    try:
        size = int(float(digits) * _BYTES[text[len(digits) :].strip().lower()])
    except (KeyError, ValueError):
        raise SettingsError("expected a size such as 5GB, 500MB or a number of bytes") from None
    if size < 1:
        raise SettingsError("must be at least 1 byte")
    return size


def _database_url(text: str) -> str:
    from ..persist.database import engine_for
    from ..persist.errors import StoreError

    try:
        engine_for(text).dispose()  # parses the URL and loads its driver; connects to nothing
    except StoreError as exc:
        raise SettingsError(str(exc)) from None
    return text


def _number(text: str, kind: type, least: float, off: float | None = None) -> float:
    """A number of `kind`, at least `least`, or exactly `off` (a value that turns the setting off)."""
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"expected a {'whole ' if kind is int else ''}number") from None
    if not value >= least and value != off:
        raise SettingsError(f"must be at least {least:g}" + ("" if off is None else f", or {off:g}"))
    return value


def _capture(text: str) -> tuple[int, int, int]:
    """(width, height, fps) from `320x240` or `320x240@15`."""
    size, _, fps = text.lower().partition("@")
    width, _, height = size.partition("x")
    try:
        values = int(width), int(height), int(fps) if fps else CAPTURE[2]
    except ValueError:
        raise SettingsError("expected WIDTHxHEIGHT or WIDTHxHEIGHT@FPS, e.g. 320x240 or 640x480@15") from None
    if not (64 <= values[0] <= 3840 and 48 <= values[1] <= 2160 and 1 <= values[2] <= 60):
        raise SettingsError("expected a width of 64-3840, a height of 48-2160 and 1-60 frames per second")
    return values


def _stock(text: str) -> frozenset[str]:
    from .adapt import declared

    known = [a.name for a in declared()]
    names = {name.strip() for name in text.split(",") if name.strip()}
    if names == {"all"}:
        return frozenset(known)
    unknown = sorted(names - set(known))
    if unknown:
        raise SettingsError(f"no adaptation is called {', '.join(unknown)} (known: {', '.join(known)}, or all)")
    return frozenset(names)
