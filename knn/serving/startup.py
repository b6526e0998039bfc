"""Once per serving process: what keeps live video flowing on a shared server.

Memory and garbage collection (knn.serving.memory), the GIL's switch interval, the adaptations of
aiortc, aioice, streamlit-webrtc and Streamlit (each declared in its own knn.serving module and
applied by knn.serving.adapt, unless KNN_STOCK names it) and the metrics writer
(knn.serving.metrics). docs/adaptations.md has a row for each adaptation.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..live.pipeline import ANSWER_SIZE
from .adapt import Adaptation, adapt
from .memory import fix_mmap_threshold, start_periodic_gc
from .settings import Settings


@dataclass(frozen=True)
class Started:
    """What `start` set up, for the page and the metrics."""

    settings: Settings
    applied: frozenset[str] = field(default_factory=frozenset)
    """The names of the adaptations that apply in this process (knn.serving.adapt)."""
    mmap_threshold_fixed: bool = False
    event_loop: str = "unknown"
    """The class of the server's event loop, e.g. uvloop.Loop (where aiortc runs every camera)."""

    @property
    def server_relay(self) -> bool:
        """KNN_ICE_TRANSPORT_POLICY=relay reaches the server's peer too (knn.serving.ice)."""
        return "relay_policy" in self.applied

    @property
    def cameras_kept(self) -> bool:
        """The page may clear the camera context's last-draw count (knn.serving.camera_context)."""
        return "camera_context" in self.applied

    @property
    def one_click_each(self) -> bool:
        """The page can tell a click from its copy in a fragment's timed rerun (knn.serving.clicks)."""
        return "clicks" in self.applied

    @property
    def peers_reachable(self) -> bool:
        """The page may follow each camera's server-side peer (knn.serving.camera_peer)."""
        return "camera_peer" in self.applied

    def record(self) -> dict[str, object]:
        """What this process runs with, for the metrics: a benchmark's run says what it measured."""
        s = self.settings
        return {
            "adaptations": sorted(self.applied),
            "event_loop": self.event_loop,
            "switch_interval_ms": round(sys.getswitchinterval() * 1000, 3),
            "mmap_threshold": s.mmap_threshold if self.mmap_threshold_fixed else 0,
            "gc_seconds": s.gc_seconds,
            "post_script_gc": _streamlit_option("runner.postScriptGC"),
            "capture": list(s.capture),
            "max_bitrate": s.max_bitrate,
            "udp_drain": s.udp_drain,
            "cameras_per_core": s.cameras_per_core,
        }


def start(settings: Settings) -> Started:
    """Apply the process-wide settings and start the background threads (each thread once per
    process, so a second call only reapplies the settings)."""
    from .camera_context import CAMERA_CONTEXT
    from .camera_peer import CAMERA_PEER
    from .clicks import CLICKS
    from .consent import PATIENT_CONSENT
    from .ice import RELAY_POLICY
    from .rtc import BITRATE_CEILING, ENCODER_WORD
    from .socket_drain import SOCKET_DRAIN
    from .upload_urls import KEEP_UPLOAD_URLS

    fixed = settings.mmap_threshold > 0 and fix_mmap_threshold(settings.mmap_threshold)
    if settings.switch_interval_ms > 0:
        sys.setswitchinterval(settings.switch_interval_ms / 1000)
    if settings.gc_seconds > 0:
        start_periodic_gc(settings.gc_seconds)
    wanted: list[tuple[Adaptation, object, bool]] = [  # (adaptation, its value, whether the settings ask for it)
        (BITRATE_CEILING, settings.max_bitrate, settings.max_bitrate > 0),
        (ENCODER_WORD, None, True),
        (SOCKET_DRAIN, settings.udp_drain, settings.udp_drain > 1),
        (PATIENT_CONSENT, None, True),
        (RELAY_POLICY, None, settings.ice_transport_policy == "relay"),
        (CAMERA_CONTEXT, None, True),
        (CAMERA_PEER, None, True),
        (CLICKS, None, True),
        (KEEP_UPLOAD_URLS, None, True),
    ]
    applied = frozenset(
        a.name for a, value, asked in wanted if asked and a.name not in settings.stock and adapt(a, value)
    )
    ANSWER_SIZE.set_cameras_per_core(settings.cameras_per_core)
    started = Started(settings, applied, fixed, _event_loop())
    if settings.metrics_file is not None:
        from .metrics import start_writer

        start_writer(settings.metrics_file, settings.metrics_interval, started.record())
    return started


def _event_loop() -> str:
    """The class of Streamlit's event loop, where aiortc runs; "unknown" outside a Streamlit server."""
    try:
        from streamlit_webrtc.eventloop import get_global_event_loop

        loop = get_global_event_loop()
    except Exception:  # no Streamlit runtime (a test, a script): nothing to tell
        return "unknown"
    return f"{type(loop).__module__}.{type(loop).__name__}"


def _streamlit_option(name: str) -> object:
    try:
        from streamlit import config

        return config.get_option(name)
    except Exception:  # Streamlit's config unreadable here: the record says so
        return None
