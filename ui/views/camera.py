"""The camera and what sits under it: the quick Add and Record buttons of the first nine classes,
and the ICE setting's problem if the operator's value was refused (what the page says about the
connection itself: ui.views.connection)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from knn.serving.ice import camera_rtc
from knn.serving.settings import SettingsError

from ..actions import on_add, on_record
from ..markdown import md
from ..resources import serving
from ..state import live, read_only, record_seconds, slot_of, ss
from ..streamlit_fixes import hide_key_hints_on_touch, keep_camera_context
from .connection import follow_connection

KEYED_CLASSES = 9  # keys 1-9 add to classes 1-9, Shift+1-9 record


def camera() -> None:
    """The WebRTC camera: frames go to this session's pipeline, its results come back."""
    from streamlit_webrtc import WebRtcMode, webrtc_streamer  # looked up per run: tests swap it

    pipeline = live().pipeline
    keep_camera_context()  # drawn on every run: never an orphan
    servers = configured_ice_servers()
    rtc = camera_rtc(servers, serving())
    width, height, fps = serving().settings.capture  # KNN_CAPTURE
    context = webrtc_streamer(
        key="camera",
        mode=WebRtcMode.SENDRECV,
        frontend_rtc_configuration=rtc["frontend_rtc_configuration"],
        server_rtc_configuration=rtc["server_rtc_configuration"],
        media_stream_constraints={
            "video": {"width": {"ideal": width}, "height": {"ideal": height}, "frameRate": {"ideal": fps}},
            "audio": False,
        },
        sink_video_track=pipeline.sink,
        source_video_track=pipeline.output,
    )
    follow_connection(context, servers)
    st.caption(
        "Press **START** and allow camera access. Frames are classified on the server; "
        "a frame is kept only when you press Add or Record."
    )


def configured_ice_servers() -> list[dict[str, Any]] | None:
    """The operator's ICE servers (a secret, else KNN_ICE_SERVERS); None: streamlit-webrtc chooses."""
    ss.ice_problem = None
    try:
        secret = st.secrets.get("ice_servers")
    except Exception:  # no secrets.toml at all: that is the usual case locally
        secret = None
    settings = serving().settings
    try:
        return settings.ice_server_list(secret)
    except SettingsError as exc:  # said under the camera (`ice_problem`): nothing may stand above it
        ss.ice_problem = f"ICE server setting ignored: {exc}"
        return settings.ice_server_list(None)


def ice_problem() -> None:
    """Why the operator's ICE servers were ignored, under the camera."""
    if ss.get("ice_problem"):
        st.error(md(ss.ice_problem))


def quick_add() -> None:
    """Add and Record for the first nine classes under the camera: keys 1-9 and Shift+1-9 press
    them (Streamlit ignores them while a text box has the focus), and on a phone they are reachable
    without opening the sidebar."""
    labels = live().classifier.classes[:KEYED_CLASSES]
    frozen = read_only()
    hide_key_hints_on_touch()
    with st.container(horizontal=True, gap="small", key="quick_add"):
        for n, label in enumerate(labels, 1):
            slot = slot_of(label)
            with st.container(horizontal=True, gap=None, width="content", key=f"quick_{slot}"):
                st.button(
                    md(label),
                    icon=":material/add:",
                    key=f"quick_add_{slot}",
                    on_click=on_add,
                    args=(slot,),
                    kwargs={"where": "main"},
                    shortcut=str(n),
                    help=md(f"Add the current frame to “{label}” (key {n})"),
                    disabled=frozen,
                )
                st.button(
                    "",
                    icon=":material/radio_button_checked:",
                    key=f"quick_record_{slot}",
                    on_click=on_record,
                    args=(slot,),
                    kwargs={"where": "main"},
                    shortcut=f"Shift+{n}",
                    help=md(f"Record frames into “{label}” for {record_seconds():g} s (Shift+{n})"),
                    disabled=frozen,
                )
    if len(live().classifier.classes) > KEYED_CLASSES:
        st.caption(f"Classes after the {KEYED_CLASSES}th: Add and Record on their cards in the sidebar.")
