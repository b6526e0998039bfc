"""The project store's database: an engine from a URL, SQLite's settings, the schema version.

One SQL layer for both databases (SQLAlchemy Core with psycopg 3 for PostgreSQL). SQLite is the
embedded default, one file in `KNN_DATA_DIR`; PostgreSQL is for several processes. SQLite runs
with these settings on every connection:

- `journal_mode=WAL`: readers never wait for the writer (the page reads while Record writes).
- `synchronous=FULL`: each commit is on disk before it returns, so an acknowledged change
  survives a killed process and a power cut; NORMAL would survive only the first. It costs one
  fsync per commit, which bench/store.py measures (docs/projects.md).
- `foreign_keys=ON` (a class's examples go with it), `secure_delete=ON` (deleted rows are
  overwritten, so Forget means gone from the file too), a busy timeout for a second process.
- Writes begin with `BEGIN IMMEDIATE`, so two writers queue instead of failing to upgrade a read.

`migrate` creates the tables of a new database, upgrades an older schema in one transaction, and
refuses a newer one: processes of two versions can share one PostgreSQL during a rolling deploy,
and the old one must not write what it does not understand.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from .content import LEGACY_RULE
from .errors import SchemaTooNew, StoreError, StoreUnavailable
from .schema import METADATA, SCHEMA_VERSION, examples, projects, schema_version, tables

SQLITE_FILE = "projects.sqlite3"
BUSY_TIMEOUT = 10.0
"""Seconds a SQLite writer waits for another process's transaction before giving up."""
CONNECT_TIMEOUT = 5
"""Seconds to reach PostgreSQL; past it the session keeps working in memory and says so."""
_MIGRATION_LOCK = 0x6B6E6E  # pg_advisory_xact_lock key: processes starting together migrate once


def default_data_dir() -> Path:
    """Where SQLite's file goes unless `KNN_DATA_DIR` says: outside the repository, per user."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "knn"


def sqlite_url(data_dir: str | os.PathLike) -> str:
    """The SQLite URL of the store in `data_dir`, which is created private to this user (0700)."""
    folder = Path(data_dir).expanduser()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return sa.URL.create("sqlite", database=str(folder.resolve() / SQLITE_FILE)).render_as_string()


def describe(url: str | sa.URL) -> str:
    """The URL without its password, for logs and messages."""
    return sa.make_url(url).render_as_string(hide_password=True)


def engine_for(url: str | sa.URL) -> sa.Engine:
    """An engine for a `sqlite:///…` or `postgresql://…` URL (psycopg 3 is used for the latter).

    Raises:
        StoreError: another kind of database, or a URL that cannot be parsed.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError("the database URL cannot be read: expected postgresql://… or sqlite:///…") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed,
            pool_pre_ping=True,  # a restarted server's dead connections are replaced, not failed on
            connect_args={"connect_timeout": CONNECT_TIMEOUT, "application_name": "knn"},
        )
    if backend != "sqlite":
        raise StoreError(f"projects are stored in PostgreSQL or SQLite, not {backend}")
    engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT})
    sa.event.listen(engine, "connect", _sqlite_settings)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_settings(dbapi_connection: sqlite3.Connection, _record) -> None:
    dbapi_connection.isolation_level = None  # the driver's own BEGIN off: `_sqlite_begin` says which
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT * 1000:.0f}")
        (mode,) = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode.lower() != "wal":  # e.g. a file system without shared memory
            raise sqlite3.OperationalError(f"the database cannot use write-ahead logging (journal mode {mode})")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA secure_delete = ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    writing = connection.get_execution_options().get("knn_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


@contextlib.contextmanager
def transaction(engine: sa.Engine, write: bool = True) -> Iterator[sa.Connection]:
    """One transaction; every database error leaves it as StoreUnavailable with a short reason."""
    with translated(), engine.connect().execution_options(knn_write=write) as conn, conn.begin():
        yield conn


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Database errors as StoreUnavailable, their reason in a few words (never the URL's password)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise StoreUnavailable(reason(exc)) from exc


def reason(exc: BaseException) -> str:
    """What a database error says, in the words a page can show."""
    original = getattr(exc, "orig", None) or exc
    text = " ".join(str(original).split()) or type(original).__name__
    lowered = text.lower()
    if "is not a database" in lowered or "malformed" in lowered:
        return f"the project database is damaged ({text})"
    if "locked" in lowered or "busy" in lowered:
        return f"the project database is busy in another process ({text})"
    if "disk is full" in lowered or "no space" in lowered:
        return f"the disk holding the projects is full ({text})"
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return f"the project database cannot be reached ({text[:160]})"
    return f"the project database refused the change ({text[:160]})"


def checkpoint(engine: sa.Engine) -> None:
    """SQLite: copy the write-ahead log into the file and truncate it, so deleted rows leave no
    copy there (with secure_delete they are zeroed in the file). Nothing to do on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return
    with translated():
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            raw.close()


# ---- the schema version -------------------------------------------------------------------------


def _add_batch(conn: sa.Connection) -> None:
    """1 -> 2: examples get the batch they came with; an old example is a batch of its own."""
    column = sa.schema.CreateColumn(examples.c.batch).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE examples ADD COLUMN {column}"))
    conn.execute(examples.update().values(batch=examples.c.id))


def _add_rule(conn: sa.Connection) -> None:
    """2 -> 3: each project's settings get the rule it was made with (the k nearest examples vote,
    not centred), so a change of the defaults never changes how a saved project decides. Settings
    that are not a JSON object are left as they are: reading the project refuses them as before."""
    updates = []
    for row in conn.execute(sa.select(projects.c.id, projects.c.settings)):
        try:
            settings = json.loads(row.settings)
        except (TypeError, ValueError, RecursionError):
            continue
        if isinstance(settings, dict):
            updates.append({"row": row.id, "new": json.dumps({**LEGACY_RULE, **settings}, sort_keys=True)})
    if updates:
        conn.execute(
            projects.update().where(projects.c.id == sa.bindparam("row")).values(settings=sa.bindparam("new")), updates
        )


MIGRATIONS = {1: _add_batch, 2: _add_rule}
"""version -> the step that upgrades a database of that version to the next one."""


def migrate(engine: sa.Engine) -> int:
    """Create the tables of an empty database or upgrade an older schema; returns the version
    found. Raises SchemaTooNew for a newer schema, StoreUnavailable when unreachable."""
    with transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
        inspector = sa.inspect(conn)
        if not inspector.has_table("knn_schema"):
            if inspector.has_table("projects"):
                raise StoreError("the database has a projects table but no schema version: it is not this app's")
            METADATA.create_all(conn)
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            return SCHEMA_VERSION
        found = conn.execute(sa.select(schema_version.c.version)).scalars().all()
        if len(found) != 1:
            raise StoreError(f"the database's schema version is unreadable ({len(found)} rows in knn_schema)")
        (version,) = found
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the project database has schema version {version}, written by a newer version of this app; "
                f"this one knows up to {SCHEMA_VERSION}: update the app (nothing was changed)"
            )
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](conn)
        if version != SCHEMA_VERSION:
            conn.execute(schema_version.update().values(version=SCHEMA_VERSION))
        return version


def create_version(engine: sa.Engine, version: int) -> None:
    """Make an empty database of an older schema `version` (for testing its migration)."""
    with transaction(engine) as conn:
        tables(version).create_all(conn)
        conn.execute(schema_version.insert().values(version=version))
