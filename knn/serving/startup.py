"""Once per serving process: what keeps live video flowing on a shared server.

Memory and garbage collection (knn.serving.memory), a 1 ms GIL switch interval, the
version-checked adaptations of aiortc, aioice, streamlit-webrtc and Streamlit (one module each in
knn.serving) and the metrics writer (knn.serving.metrics). Each is a row of docs/performance.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ..live.pipeline import ANSWER_SIZE
from .memory import fix_mmap_threshold, start_periodic_gc
from .settings import Settings

SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while another waits (Python's default is 0.005)."""


@dataclass(frozen=True)
class Started:
    """What `start` set up, for the page and the metrics."""

    settings: Settings
    mmap_threshold_fixed: bool
    bitrate_floor: bool
    bitrate_cap: bool = False
    server_relay: bool = False
    """KNN_ICE_TRANSPORT_POLICY=relay reaches the server's peer too (knn.serving.ice)."""
    cameras_kept: bool = False
    """The page may clear the camera context's last-draw count (knn.serving.camera_context)."""
    patient_consent: bool = False
    """A late answer to a consent check keeps the stream (knn.serving.consent)."""
    one_click_each: bool = False
    """The page can tell a click from its copy in a fragment's timed rerun (knn.serving.clicks)."""
    short_queues: bool = False
    """WebRTC sockets keep a short kernel receive queue (knn.serving.receive_queue)."""
    drained_sockets: bool = False
    """WebRTC sockets are read up to `Settings.udp_drain` datagrams per wake (knn.serving.socket_drain)."""
    peers_reachable: bool = False
    """The page may follow each camera's server-side peer to say why it does not connect (knn.serving.camera_peer)."""


def start(settings: Settings) -> Started:
    """Apply the process-wide settings and start the background threads (each thread once per
    process, so a second call only reapplies the settings)."""
    from .camera_context import keep_cameras_drawn
    from .camera_peer import peers_reachable
    from .clicks import tell_copied_clicks
    from .consent import patient_consent
    from .ice import keep_server_transport_policy
    from .receive_queue import short_receive_queues
    from .rtc import cap_send_bitrate, floor_receive_bitrate
    from .socket_drain import drain_sockets

    fixed = fix_mmap_threshold()
    sys.setswitchinterval(SWITCH_INTERVAL)
    start_periodic_gc(settings.gc_seconds)
    floored = settings.min_bitrate > 0 and floor_receive_bitrate(settings.min_bitrate)
    server_relay = settings.ice_transport_policy == "relay" and keep_server_transport_policy()
    capped = settings.max_bitrate > 0 and cap_send_bitrate(settings.max_bitrate)
    short_queues = settings.udp_receive_queue > 0 and short_receive_queues(settings.udp_receive_queue)
    drained = settings.udp_drain > 1 and drain_sockets(settings.udp_drain)
    ANSWER_SIZE.set_cameras_per_core(settings.cameras_per_core)
    if settings.metrics_file is not None:
        from .metrics import start_writer

        start_writer(settings.metrics_file, settings.metrics_interval)
    return Started(
        settings,
        fixed,
        floored,
        bitrate_cap=capped,
        server_relay=server_relay,
        cameras_kept=keep_cameras_drawn(),
        patient_consent=patient_consent(),
        one_click_each=tell_copied_clicks(),
        short_queues=short_queues,
        drained_sockets=drained,
        peers_reachable=peers_reachable(),
    )
