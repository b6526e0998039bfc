"""The process's model while it is built (knn.serving.model_job): a progress bar under the camera
that names the step, redrawn by a fragment until the model answers; then one page run redraws
what named it as loading (the header's backbone caption), and the fragment is not drawn again."""

from __future__ import annotations

import streamlit as st

from ..markdown import md
from ..resources import model

REFRESH_SECONDS = 0.5


def model_progress() -> None:
    """The model's progress bar while it loads, or why it could not be built."""
    job = model()
    if job.loading:
        st.fragment(model_progress_body, run_every=REFRESH_SECONDS)()
    elif (error := job.status().error) is not None:
        st.error(md(f"The model could not be loaded, so the camera cannot be answered: {error}"))


def model_progress_body() -> None:
    status = model().status()
    if status.done:
        st.rerun(scope="app")  # the header and the panel then show the model in use
    with st.container(key="model_progress"):
        st.progress(status.fraction, text=f"The page works already; the model is loading. {status.text}")
