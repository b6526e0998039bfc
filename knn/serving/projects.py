"""The process's project store (knn.persist), opened once per database from the settings.

`project_store(settings)` is what the page calls: None when `KNN_STORE=0`; else PostgreSQL at the
URL the page found in `.streamlit/secrets.toml` (`[connections.knn] url = ...`), or at
`KNN_DATABASE_URL`, or SQLite in `KNN_DATA_DIR`. A new store connects, migrates and deletes
expired projects in a background thread at once (the process's start), so the first page never
waits on the database; one that is away then only makes sessions say their work is not being saved.
"""

from __future__ import annotations

import threading

from ..persist import ProjectStore, sqlite_url
from .settings import Settings

_STORES: dict[str, ProjectStore] = {}
_LOCK = threading.Lock()


def project_store(settings: Settings, url: str | None = None) -> ProjectStore | None:
    """The store for these settings, one per database URL in this process.

    Args:
        settings: the process's settings (knn.serving.settings).
        url: a database URL from Streamlit's secrets (`st.secrets.connections.knn.url`); it wins
            over `KNN_DATABASE_URL`.

    Raises:
        knn.persist.StoreError: the URL names a database other than PostgreSQL or SQLite.
    """
    if not settings.store:
        return None
    url = url or settings.database_url or sqlite_url(settings.data_dir)
    with _LOCK:
        store = _STORES.get(url)
        if store is None:
            store = _STORES[url] = ProjectStore(url, ttl=settings.project_ttl, quota=settings.store_quota)
            store.start()
        return store
