"""A project's durable copy: classes and examples saved as they change, behind a private link.

One SQL layer (SQLAlchemy Core, psycopg 3) over SQLite by default (a file in `KNN_DATA_DIR`) or
PostgreSQL given a URL (several processes share it). Named apart from knn.core.store, which holds
a session's vectors in memory. No Streamlit here: the session (knn.live.session) calls it through
its saver (knn.live.saving); docs/projects.md says where projects live and for how long.

- `database`: an engine from a URL, SQLite's settings, the schema version and its migrations.
- `schema`: the tables.  `keys`: tokens and the hashes stored in their place.
- `content`: a project as the session hands it over.  `rows`: rows written and read back, checked.
- `projects`: `ProjectStore` (open, create, share, forget, expire, quota) and `Writer` (the lease).
"""

from __future__ import annotations

from .content import Content, NewExample, ProjectSettings
from .database import default_data_dir, describe, sqlite_url
from .errors import (
    LeaseLost,
    ProjectGone,
    QuotaExceeded,
    SchemaTooNew,
    StoreError,
    StoreUnavailable,
    UnreadableProject,
)
from .projects import DEFAULT_QUOTA, DEFAULT_TTL, Loaded, ProjectStore, Writer

__all__ = [
    "DEFAULT_QUOTA",
    "DEFAULT_TTL",
    "Content",
    "LeaseLost",
    "Loaded",
    "NewExample",
    "ProjectGone",
    "ProjectSettings",
    "ProjectStore",
    "QuotaExceeded",
    "SchemaTooNew",
    "StoreError",
    "StoreUnavailable",
    "UnreadableProject",
    "Writer",
    "default_data_dir",
    "describe",
    "sqlite_url",
]
