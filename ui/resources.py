"""What a server process sets up once and every browser session shares: the serving settings, the
embedders (one per backbone; they are thread-safe) and the project store."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import knn
from knn.model.choice import BackboneChoice, choose_backbone
from knn.model.embedder import Embedder
from knn.persist import ProjectStore, StoreError
from knn.serving.projects import project_store
from knn.serving.settings import Settings
from knn.serving.startup import Started, start


@st.cache_resource(show_spinner=False)
def serving() -> Started:
    """Once per process: settings from the environment, memory, GC, the bandwidth floor, metrics."""
    return start(Settings.from_env())


@st.cache_resource(show_spinner=False)
def load_embedder(backbone: str) -> Embedder:
    """One embedder per backbone per process, shared by all sessions (it is thread-safe)."""
    embedder: Embedder = knn.Embedder(backbone, threads=serving().settings.threads)  # knn's name: tests swap it
    return embedder


@st.cache_resource(show_spinner=False)
def default_backbone() -> BackboneChoice:
    """Once per process: the backbone sessions start with, and why: the operator's KNN_BACKBONE,
    else the best one this machine can get (knn.model.choice)."""
    configured = serving().settings.backbone
    if configured:
        return BackboneChoice(configured, "set by the server's KNN_BACKBONE")
    return choose_backbone()


def embedder_for(backbone: str) -> Embedder:
    """The embedder of `backbone`, with a spinner while it loads (raises knn.WeightsUnavailable)."""
    with st.spinner(f"Loading {backbone}… (the first time, weights are converted: up to a minute)"):
        return load_embedder(backbone)


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
