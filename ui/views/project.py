"""The Project section: download the project, restore one (taken by ui.uploads), and build the
taught model as one .keras or .tflite file to use in your own code."""

from __future__ import annotations

import streamlit as st

from knn.core.project import MAX_PROJECT_BYTES, project_bytes
from knn.live.session import LiveSession
from knn.model.export import ExportError, export_bytes

from ..messages import begin_action, progress_bar, say, show_messages
from ..state import live, ss
from ..streamlit_fixes import project_key

EXPORT_FORMATS = {"keras": "Keras (.keras)", "tflite": "LiteRT (.tflite)"}


def project() -> None:
    session = live()
    st.download_button(
        "Download project",
        # Built only when clicked (on another thread): the session object, not st.*, is used.
        data=lambda: project_bytes(session.classifier, session.embedder.backbone),
        file_name="knn-project.npz",
        mime="application/octet-stream",
        on_click="ignore",
        key="download_project",
    )
    st.file_uploader(
        "Restore a project (.npz)",
        type=["npz"],
        key=project_key(),  # taken by ui.uploads.restore_if_asked
        max_upload_size=max(1, MAX_PROJECT_BYTES // 1024**2),
    )
    export_model_files(session)


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
                data = export_bytes(session.classifier, session.embedder, fmt, progress=progress)
            except (ExportError, RuntimeError) as exc:
                say("error", f"Could not export: {exc}", "project")
            else:
                ss.export = (fmt, data, session.classifier.counts())
    show_messages("project")
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
