"""Every workaround of Streamlit's or streamlit-webrtc's behaviour that the page relies on, each
with the reason it exists (the measurements are in docs/performance.md)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile

from knn.serving.camera_context import forget_last_draw
from knn.serving.clicks import fragments_alone

from .resources import serving
from .state import ss

P = ParamSpec("P")

# Keyboard hints mean nothing on a touch screen, and there they would make each class's buttons
# wider than a phone's half width; st.button has no setting to hide them.
_TOUCH_CSS = "<style>@media (hover: none), (max-width: 640px) {.st-key-quick_add kbd {display: none;}}</style>"


# ---- one click, one action -----------------------------------------------------------------------


def one_click(callback: Callable[P, None]) -> Callable[P, None]:
    """For a button drawn outside the live panel's fragment: skip the copy of a click that the
    panel's timed rerun carries, so a click acts once (knn.serving.clicks)."""

    @functools.wraps(callback)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> None:
        if serving().one_click_each and fragments_alone(get_script_run_ctx()):
            return None
        return callback(*args, **kwargs)

    return wrapped


def page_is_being_drawn() -> bool:
    """Whether this run draws the whole page, so the live panel must not ask for a page redraw: the
    request would stop the run, and a page whose runs all stop keeps showing elements of its
    earlier runs (the next timed run asks again; knn.serving.clicks)."""
    return serving().one_click_each and not fragments_alone(get_script_run_ctx())


# ---- the camera keeps streaming ------------------------------------------------------------------


def keep_camera_context() -> None:
    """Before the camera is drawn: streamlit-webrtc's orphaned-context check would stop a camera
    drawn on every run when a run count arrives late under load (knn.serving.camera_context)."""
    if serving().cameras_kept:
        forget_last_draw(ss.get("camera"))


# ---- uploads taken once, by the page -------------------------------------------------------------
# Uploads are taken by the page's run, not by a callback: Streamlit stops a callback at its first
# st.session_state access while another rerun waits, and an uploader never calls it again
# (docs/performance.md). Each file is taken once, by its upload's id: Streamlit's fast reruns
# (`runner.fastReruns`, on by default) start a new run of the page while the last one still runs,
# so two runs can see the same files (seen in CI: one batch of 8 photos stored twice), and the
# browser can send an uploader's files again under its old key. A new key (a nonce) then gives
# the card an empty uploader.

_TAKING = threading.Lock()
"""Held while a run looks at and marks the uploads taken, so that two runs cannot both take one."""


def upload_key(slot: int) -> str:
    """The key of class `slot`'s image uploader."""
    return f"upload_{slot}_{ss.get(f'upload_nonce_{slot}', 0)}"


def project_key() -> str:
    """The key of the project uploader."""
    return f"project_upload_{ss.get('project_nonce', 0)}"


def empty_upload(slot: int) -> None:
    """Give class `slot`'s card a new, empty image uploader on this run."""
    ss[f"upload_nonce_{slot}"] = ss.get(f"upload_nonce_{slot}", 0) + 1


def empty_project_upload() -> None:
    """Give the Project section a new, empty uploader on this run."""
    ss.project_nonce = ss.get("project_nonce", 0) + 1


def untaken(files: list[UploadedFile]) -> list[UploadedFile]:
    """Those of `files` that no run of this page has taken."""
    with _TAKING:
        taken = ss.setdefault("taken_uploads", set())
        return [f for f in files if f.file_id not in taken]


def take(files: list[UploadedFile]) -> list[UploadedFile]:
    """Those of `files` that no run of this page has taken, marked taken by this run now: it must
    then use them before anything that can stop it (a call that draws)."""
    with _TAKING:
        taken = ss.setdefault("taken_uploads", set())
        new = [f for f in files if f.file_id not in taken]
        taken.update(f.file_id for f in new)
        return new


# ---- widgets that show the engine's values -------------------------------------------------------
# The Settings widgets and a class card's name field take their defaults from the engine, never a
# value set through st.session_state: a widget the browser mounts from a later run falls back to its
# default (docs/performance.md). To show the engine's new values, their state is dropped instead.


def show_backbone_in_use() -> None:
    """Show the backbone in use in the Backbone and Input widgets (after a switch or a restore)."""
    ss.pop("network", None)
    ss.pop("resolution", None)


def show_classifier_settings() -> None:
    """Show the classifier's own k and threshold in the widgets (after a project restore)."""
    ss.pop("k", None)
    ss.pop("threshold", None)


# ---- the link stays on this page ----------------------------------------------------------------
# A project's link is its key, and it is the page's URL. Streamlit cannot set response headers, so a
# plain `streamlit run` cannot send `Referrer-Policy: no-referrer` (deploy/'s HAProxy and ingress
# do); the page sets the same policy with a <meta name="referrer">, which st.html's sanitiser would
# drop from markup, so a script adds it to the document's head. It covers what the page requests
# or links to once it has run; browsers already send other sites no more than the origin
# (strict-origin-when-cross-origin), never the query that holds the link.
_NO_REFERRER = """<script>
if (!document.head.querySelector('meta[name="referrer"]')) {
  const meta = document.createElement("meta");
  meta.name = "referrer";
  meta.content = "no-referrer";
  document.head.appendChild(meta);
}
</script>"""


def no_referrer() -> None:
    """After the title, on every run (a fixed element above the camera): the page sends no Referer."""
    st.html(_NO_REFERRER, unsafe_allow_javascript=True)


# ---- looks ---------------------------------------------------------------------------------------


def hide_key_hints_on_touch() -> None:
    """The quick buttons' keyboard hints, hidden on touch screens and narrow windows."""
    st.html(_TOUCH_CSS)
