"""A page for tests/test_upload_urls.py: one image uploader that keeps every file chosen, on a page
that reruns whole every `RERUN_SECONDS` (as the app does now and then: a panel's redraw asking for
the page, a click). The server applies knn.serving.upload_urls unless KNN_STOCK names it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` adds tests/ alone

import streamlit as st

from knn.serving.upload_urls import KEEP_UPLOAD_URLS
from tests.adapted import adapted

RERUN_SECONDS = 0.1


@st.cache_resource
def applied() -> bool:
    return adapted(KEEP_UPLOAD_URLS)


st.caption(f"upload_urls applied: {applied()}")
files = st.file_uploader("Images", accept_multiple_files=True)
st.markdown(f"taken: {len(files)}")


@st.fragment(run_every=RERUN_SECONDS)
def rerun_the_page() -> None:
    st.rerun(scope="app")


rerun_the_page()
time.sleep(RERUN_SECONDS / 2)  # a page run takes a while, as the app's does
