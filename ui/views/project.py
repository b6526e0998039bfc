"""The Project section: its link (the key to it), **Share a copy**, **Download project** and, beside
it, **Forget this project**, which asks first; restore a project file (taken by ui.uploads);
build the taught model as one .keras or .tflite file to use in your own code."""

from __future__ import annotations

import streamlit as st

from knn.core.project import MAX_PROJECT_BYTES, project_bytes
from knn.live.session import LiveSession
from knn.model.export import ExportError, export_bytes

from ..actions import on_forget, on_forget_ask, on_forget_cancel, on_share
from ..links import SHARE, link_url
from ..messages import begin_action, progress_bar, say, show_messages
from ..state import live, read_only, ss
from ..streamlit_fixes import project_key

EXPORT_FORMATS = {"keras": "Keras (.keras)", "tflite": "LiteRT (.tflite)"}


def project() -> None:
    session = live()
    link(session)
    with st.container(horizontal=True, gap="small"):
        st.download_button(
            "Download project",
            # Built only when clicked (on another thread): the session object, not st.*, is used.
            data=lambda: project_bytes(session.classifier, session.embedder.backbone),
            file_name="knn-project.npz",
            mime="application/octet-stream",
            on_click="ignore",
            key="download_project",
            icon=":material/download:",
        )
        forget_button(session)
    forget_confirmation(session)
    show_messages("project")
    st.file_uploader(
        "Restore a project (.npz)",
        type=["npz"],
        key=project_key(),  # taken by ui.uploads.restore_if_asked
        max_upload_size=max(1, MAX_PROJECT_BYTES // 1024**2),
        disabled=read_only(),
    )
    export_model_files(session)


def link(session: LiveSession) -> None:
    """The project's link to copy, and Share a copy with the share link it made."""
    state, token = session.save_state, session.project_token
    if state.kind == "off":
        return
    if token:
        st.markdown("**Link to this project**")
        st.code(link_url(token), language=None, wrap_lines=True)
        st.caption("Anyone with this link can open and change this project. Keep it (or bookmark the page).")
    elif state.kind == "new":
        st.caption("The project's link appears here, and in the address bar, with your first change.")
    st.button(
        "Share a copy",
        key="share",
        on_click=on_share,
        icon=":material/share:",
        disabled=state.kind == "stopped",
        help="A link that gives each person who opens it a copy of this project as it is now, as a project "
        "of their own; your own link stays private",
    )
    shared = ss.get("share_link")
    if shared:
        st.code(link_url(shared, SHARE), language=None, wrap_lines=True)
        st.caption(
            "Whoever opens this share link gets their own copy of the project as it was when you made the link; "
            "what they change stays theirs, and what you change stays yours."
        )


def forget_button(session: LiveSession) -> None:
    """Forget this project: it asks first (`forget_confirmation`)."""
    stored = session.project_token is not None
    st.button(
        "Forget this project",
        key="forget_ask",
        on_click=on_forget_ask,
        icon=":material/delete_forever:",
        disabled=not stored,
        help="Delete it from the server now" if stored else "Nothing of this project is stored on the server yet",
    )


def forget_confirmation(session: LiveSession) -> None:
    """Asked to forget: delete the project from the server now, or keep it."""
    if not ss.get("forget_asked") or session.project_token is None:
        return
    st.warning(
        "Delete this project from the server **now**? Its link then opens nothing, in every tab, and this cannot "
        "be undone. Download it first to keep a copy."
    )
    with st.container(horizontal=True, gap="small"):
        st.button("Forget it", key="forget", type="primary", on_click=on_forget)
        st.button("Keep it", key="forget_cancel", on_click=on_forget_cancel)


def export_model_files(session: LiveSession) -> None:
    """Build the taught model as one .keras/.tflite file (a child process), then offer it."""
    st.markdown("**Use it in your own code**")
    fmt = st.radio(
        "Model format", list(EXPORT_FORMATS), format_func=EXPORT_FORMATS.get, horizontal=True, key="export_format"
    )
    if st.button(
        "Build model file",
        key="build_export",
        help="MobileNet + the KNN head as one model; the class names are inside it",
    ):
        begin_action()
        with progress_bar("Starting the export…") as progress:
            try:
                data = export_bytes(session.classifier, session.embedder.backbone, fmt, progress=progress)
            except (ExportError, RuntimeError) as exc:
                say("error", f"Could not export: {exc}", "export")
            else:
                ss.export = (fmt, data, session.classifier.counts())
    show_messages("export")
    built = ss.get("export")
    if built is not None:
        built_fmt, data, counts = built
        st.download_button(
            f"Download model.{built_fmt} ({len(data) / 1024**2:.1f} MB)",
            data,
            file_name=f"knn-model.{built_fmt}",
            mime="application/octet-stream",
            on_click="ignore",
            key="download_export",
        )
        if counts != session.classifier.counts():
            st.caption("The examples changed since this file was built: build it again to include them.")
