"""What a server process sets up once and every browser session shares: the serving settings, the
model (built in the background; knn.serving.model_job), other backbones' embedders (one per
backbone; they are thread-safe) and the project store."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import knn
from knn.live.pipeline import EmbedderLike
from knn.model.embedder import Embedder
from knn.persist import ProjectStore, StoreError
from knn.serving.model_job import ModelJob, model_job
from knn.serving.projects import project_store
from knn.serving.settings import Settings
from knn.serving.startup import Started, start


@st.cache_resource(show_spinner=False)
def serving() -> Started:
    """Once per process: settings from the environment, memory, GC, the library adaptations, metrics."""
    return start(Settings.from_env())


def model() -> ModelJob:
    """The process's model (knn.serving.model_job): built once in the background, from the first
    page run on; sessions use it at once and it answers once it is ready."""
    settings = serving().settings
    return model_job(settings.backbone, settings.threads)


@st.cache_resource(show_spinner=False)
def load_embedder(backbone: str) -> Embedder:
    """One embedder per backbone per process, shared by all sessions (it is thread-safe)."""
    embedder: Embedder = knn.Embedder(backbone, threads=serving().settings.threads)  # knn's name: tests swap it
    return embedder


def embedder_for(backbone: str) -> EmbedderLike:
    """The embedder of `backbone`: the process's model when it is that backbone (waited for by
    whoever embeds), else one loaded now behind a spinner (raises knn.WeightsUnavailable)."""
    job = model()
    if backbone == job.backbone:
        return job
    with st.spinner(f"Loading {backbone}… (the first time, weights are converted: up to a minute)"):
        return load_embedder(backbone)


def wait_for_model(why: str) -> Embedder:
    """Wait for the process's model with its progress bar where the page is drawing, e.g. before
    embedding uploads; raises the model's error if it could not be built."""
    job = model()
    if not job.ready:
        bar = st.progress(0.0)
        while not job.wait(0.25):
            status = job.status()
            bar.progress(status.fraction, text=f"{why} waits for the model: {status.text}")
        bar.empty()
    return job.embedder


@dataclass(frozen=True)
class Storage:
    """The process's project store; None when saving is off (`KNN_STORE=0`) or its database
    setting cannot be used (`problem` says why, for the page to say)."""

    store: ProjectStore | None
    problem: str | None = None


@st.cache_resource(show_spinner=False)
def storage() -> Storage:
    """Once per process: the project store from the settings and the `[connections.knn] url`
    secret, started at once (knn.serving.projects: its expiry sweep runs now, not at first use)."""
    try:
        return Storage(project_store(serving().settings, secret_database_url()))
    except StoreError as exc:
        return Storage(None, f"the project database setting cannot be used ({exc})")


def secret_database_url() -> str | None:
    """`url` of `[connections.knn]` in .streamlit/secrets.toml (Community Cloud's Secrets), if any."""
    try:
        url = st.secrets["connections"]["knn"]["url"]
    except (KeyError, AttributeError, FileNotFoundError):  # no secrets file (the usual case locally), or no entry
        return None
    return str(url) if url else None
