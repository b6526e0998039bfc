"""Every project of this server: open by token, create on the first change, forget, expire, share.

A `ProjectStore` is the process's one door to the database. Opening a project by its token takes
the writer lease: the project's `generation` goes up by one and the returned `Writer` holds the
new number. Every write is one transaction that starts with a compare-and-set on that number, so
the newest opener edits and an older tab's write fails with `LeaseLost` (or `ProjectGone` once
the row is deleted): nothing but `create` inserts a project, so a tab on a forgotten or expired
project cannot bring it back.

A share link opens a read-only snapshot (a project row of kind "snapshot" with its own token and
a copy of the rows, nothing pointing back to the original). Opening it gives the visitor its
content and no writer: the visitor's project is created from it on their first change.

The quota (bytes of all stored examples, server-wide) is checked inside each growing write,
before anything is written. Projects not opened or changed for `ttl` seconds are deleted by a
background sweep, at start and when an expired token is opened.

Example::

    store = ProjectStore(sqlite_url("~/.local/share/knn"))
    token, writer = store.create(content)      # the session's first change
    writer.add([NewExample(...)])              # one transaction per change
    loaded = store.open(token)                 # another tab: it takes the lease
    writer.add(...)                            # -> LeaseLost
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from ..core.classifier import KNNClassifier
from .content import Content, NewExample, ProjectSettings
from .database import checkpoint, describe, engine_for, migrate, transaction
from .errors import LeaseLost, ProjectGone, QuotaExceeded, StoreError
from .keys import key_hash, new_token
from .rows import FLOAT32, example_row, example_size, read_project
from .schema import classes, examples, projects

log = logging.getLogger(__name__)

DAY = 86_400.0
DEFAULT_TTL = 30 * DAY
"""Projects unopened this long are deleted (docs/projects.md says why a month)."""
DEFAULT_QUOTA = 5 * 1024**3
"""Bytes of examples all projects together may store (docs/projects.md)."""
SWEEP_EVERY = 3_600.0
"""Seconds between two sweeps for expired projects (at most; less for a short ttl)."""


@dataclass
class Loaded:
    """A project or snapshot read back: its classifier (ids 0..N-1 in stored order), settings and
    batches, and the writer (None for a share link's snapshot, which nobody edits)."""

    classifier: KNNClassifier
    settings: ProjectSettings
    batches: list[int]
    writer: Writer | None

    @property
    def shared(self) -> bool:
        return self.writer is None


class ProjectStore:
    """The projects in one database (a SQLite file or a PostgreSQL database).

    Args:
        url: `sqlite:///…` or `postgresql://…` (see knn.persist.database).
        ttl: seconds a project may stay unopened before it is deleted.
        quota: bytes all stored examples may take together.
        clock: wall-clock seconds (tests move it to expire projects).
        sweep: keep sweeping in a background thread (every `SWEEP_EVERY` at most) once started.

    Nothing connects until the first use; `ready` connects and migrates, raising StoreError.
    """

    def __init__(
        self,
        url: str,
        ttl: float = DEFAULT_TTL,
        quota: int = DEFAULT_QUOTA,
        clock: Callable[[], float] = time.time,
        sweep: bool = True,
    ) -> None:
        self.engine = engine_for(url)
        self.url = describe(url)
        self.ttl, self.quota, self.clock = float(ttl), int(quota), clock
        self.dialect = self.engine.dialect.name
        self.problem: str | None = None
        """Why the database could not be used the last time it was tried (None: it could)."""
        self._ready = False
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._closed = threading.Event()
        self._started = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._sweep = sweep

    def __repr__(self) -> str:
        return f"ProjectStore({self.url!r})"

    @property
    def where(self) -> str:
        """Where a saved project is, in the page's words."""
        return "saved in the database" if self.dialect == "postgresql" else "saved on this server"

    def ready(self) -> None:
        """Connect and bring the schema up to date, once; then sweep (and, with `sweep`, keep
        sweeping in the background).

        Raises:
            StoreError: the database cannot be used now (`problem` says why until it can).
        """
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                migrate(self.engine)
            except StoreError as exc:
                self.problem = str(exc)
                raise
            self._ready, self.problem = True, None
        self.sweep()
        if self._sweep:
            self.start()

    def start(self) -> threading.Event:
        """At the process's start: one background thread connects, migrates and sweeps out expired
        projects (so a database that is slow to answer never holds up the first page), then, with
        `sweep`, keeps sweeping. A database that is away only sets `problem`: the thread, and the
        first session's change, try again. Returns an event set once the first attempt is over."""
        with self._start_lock:
            if self._sweeper is None:
                self._sweeper = threading.Thread(target=self._run, name="knn-project-store", daemon=True)
                self._sweeper.start()
        return self._started

    def close(self) -> None:
        self._closed.set()
        self.engine.dispose()

    # ---- projects ------------------------------------------------------------------------------

    def create(self, content: Content) -> tuple[str, Writer]:
        """Store a new project; returns its token (the only copy of it) and its writer."""
        self.ready()
        token, now = new_token(), self.clock()
        new = content.examples()
        with transaction(self.engine) as conn:
            self._check_quota(conn, sum(_size(e) for e in new))
            project_id = conn.execute(
                projects.insert()
                .values(
                    key_hash=key_hash(token),
                    kind="project",
                    created=now,
                    opened=now,
                    generation=1,
                    settings=content.settings.to_json(),
                    bytes=0,
                )
                .returning(projects.c.id)
            ).scalar_one()
            writer = Writer(self, project_id, 1, token)
            class_ids = writer._insert_classes(conn, content.state.classes, 0)
            rows = writer._insert_examples(conn, class_ids, new)
        writer._classes, writer._rows = class_ids, rows
        return token, writer

    def open(self, token: str) -> Loaded | None:
        """The project or snapshot behind `token`, or None (never was, forgotten, or expired).

        A project's writer lease is taken (the previous holder's next write fails). A snapshot's
        last-opened time moves on, so a link in use does not expire; nothing else is written.

        Raises:
            UnreadableProject: its rows fail the checks.
            StoreUnavailable: the database cannot be reached.
        """
        self.ready()
        digest = key_hash(token)
        if digest is None:
            return None
        now = self.clock()
        with transaction(self.engine) as conn:
            expired = projects.c.opened < now - self.ttl
            if conn.execute(projects.delete().where(projects.c.key_hash == digest, expired)).rowcount:
                checkpoint_after = True
            else:
                checkpoint_after = False
            row = conn.execute(
                projects.update()
                .where(projects.c.key_hash == digest)
                .values(generation=projects.c.generation + 1, opened=now)
                .returning(projects.c.id, projects.c.kind, projects.c.generation)
            ).one_or_none()
        if checkpoint_after:
            checkpoint(self.engine)
        if row is None:
            return None
        # Read in its own transaction: a long read must not hold the project's row lock.
        with transaction(self.engine, write=False) as conn:
            found = conn.execute(
                sa.select(projects.c.settings, projects.c.generation).where(projects.c.id == row.id)
            ).one_or_none()
            if found is None:
                return None
            classifier, settings, batches, row_ids, class_ids = read_project(conn, row.id, found.settings)
        writer = None
        if row.kind == "project":
            writer = Writer(self, row.id, row.generation, token)
            writer._classes, writer._rows = class_ids, dict(enumerate(row_ids))
        return Loaded(classifier, settings, batches, writer)

    def share(self, content: Content) -> str:
        """Store a read-only snapshot of `content` under a new token; returns that token."""
        self.ready()
        token, now = new_token(), self.clock()
        new = content.examples()
        with transaction(self.engine) as conn:
            self._check_quota(conn, sum(_size(e) for e in new))
            project_id = conn.execute(
                projects.insert()
                .values(
                    key_hash=key_hash(token),
                    kind="snapshot",
                    created=now,
                    opened=now,
                    generation=0,
                    settings=content.settings.to_json(),
                    bytes=0,
                )
                .returning(projects.c.id)
            ).scalar_one()
            snapshot = Writer(self, project_id, 0, token)
            snapshot._insert_examples(conn, snapshot._insert_classes(conn, content.state.classes, 0), new)
        return token

    def forget(self, token: str) -> bool:
        """Delete the project or snapshot behind `token` now; False if there was none."""
        self.ready()
        digest = key_hash(token)
        if digest is None:
            return False
        with transaction(self.engine) as conn:
            deleted = conn.execute(projects.delete().where(projects.c.key_hash == digest)).rowcount
        checkpoint(self.engine)
        return bool(deleted)

    def sweep(self) -> int:
        """Delete every project and snapshot unopened for `ttl`; returns how many."""
        with transaction(self.engine) as conn:
            deleted = conn.execute(projects.delete().where(projects.c.opened < self.clock() - self.ttl)).rowcount
        if deleted:
            checkpoint(self.engine)
            log.info("expired %d projects unopened for %.0f days", deleted, self.ttl / DAY)
        return deleted

    def used_bytes(self) -> int:
        """Bytes all stored examples take (what the quota counts)."""
        self.ready()
        with transaction(self.engine, write=False) as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(projects.c.bytes), 0))).scalar_one())

    # ---- internals -----------------------------------------------------------------------------

    def _check_quota(self, conn: sa.Connection, growth: int) -> None:
        if growth <= 0:
            return
        used = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(projects.c.bytes), 0))).scalar_one())
        if used + growth > self.quota:
            raise QuotaExceeded(
                f"the server's storage for projects is full ({_mb(used)} of {_mb(self.quota)} used); "
                "this change is kept in this tab only: download the project to keep it"
            )

    def _run(self) -> None:
        interval = max(1.0, min(SWEEP_EVERY, self.ttl / 4))
        try:
            self.ready()
        except StoreError as exc:  # the database is away: said by `problem`, tried again below
            log.warning("the project store cannot be used now (%s): %s", self.url, exc)
        finally:
            self._started.set()
        while self._sweep and not self._closed.wait(interval):
            try:
                if self._ready:
                    self.sweep()
                else:
                    self.ready()
            except StoreError as exc:  # the database is away: try again next time
                log.warning("could not expire old projects: %s", exc)


class Writer:
    """The writer lease on one project: each method is one transaction, refused with `LeaseLost`
    once another tab opened the project, or `ProjectGone` once it was deleted.

    It maps the session's example ids and class names to their rows; methods take ids and names.
    Not thread-safe: the session's saver (knn.live.saving) calls it from one thread.
    """

    def __init__(self, store: ProjectStore, project_id: int, generation: int, token: str) -> None:
        self.store, self.project_id, self.generation, self.token = store, project_id, generation, token
        self._classes: dict[str, int] = {}  # class name -> row id
        self._rows: dict[int, int] = {}  # the classifier's example id -> row id

    def __repr__(self) -> str:
        return f"Writer(project {self.project_id}, generation {self.generation})"

    # ---- changes -------------------------------------------------------------------------------

    def check(self) -> None:
        """Read whether this writer still edits the project: raises LeaseLost once another tab
        opened it, ProjectGone once it was forgotten or expired (StoreError when unreachable)."""
        with transaction(self.store.engine, write=False) as conn:
            generation = conn.execute(
                sa.select(projects.c.generation).where(projects.c.id == self.project_id)
            ).scalar_one_or_none()
        if generation is None:
            raise ProjectGone()
        if generation != self.generation:
            raise LeaseLost()

    def add(self, new: Sequence[NewExample]) -> None:
        """Add examples (their classes exist, or are created at the end)."""
        classes_now = dict(self._classes)
        with self._write(sum(_size(e) for e in new)) as conn:
            missing = [e.label for e in new if e.label not in classes_now]
            if missing:
                classes_now.update(self._insert_classes(conn, list(dict.fromkeys(missing)), self._next_position(conn)))
            rows = self._insert_examples(conn, classes_now, new)
        self._classes = classes_now
        self._rows.update(rows)

    def add_class(self, name: str) -> None:
        with self._write() as conn:
            ids = self._insert_classes(conn, [name], self._next_position(conn))
        self._classes.update(ids)

    def rename_class(self, old: str, new: str) -> None:
        if old == new:
            return
        with self._write() as conn:
            conn.execute(classes.update().where(classes.c.id == self._classes[old]).values(name=new))
        self._classes[new] = self._classes.pop(old)

    def remove_class(self, name: str, example_ids: Iterable[int]) -> None:
        """Delete a class and its examples (`example_ids`: theirs, as the session knew them)."""
        class_id = self._classes[name]
        with self._write() as conn:
            self._delete_examples(conn, examples.c.class_id == class_id)
            conn.execute(classes.delete().where(classes.c.id == class_id))
        del self._classes[name]
        for example_id in example_ids:
            self._rows.pop(example_id, None)

    def clear_class(self, name: str, example_ids: Iterable[int]) -> None:
        """Delete a class's examples (`example_ids`), keeping the class."""
        with self._write() as conn:
            self._delete_examples(conn, examples.c.class_id == self._classes[name])
        for example_id in example_ids:
            self._rows.pop(example_id, None)

    def remove_example(self, example_id: int) -> None:
        row = self._rows[example_id]
        with self._write() as conn:
            self._delete_examples(conn, examples.c.id == row)
        del self._rows[example_id]

    def move_example(self, example_id: int, name: str) -> None:
        with self._write() as conn:
            row, class_id = self._rows[example_id], self._classes[name]
            conn.execute(examples.update().where(examples.c.id == row).values(class_id=class_id))

    def set_settings(self, settings: ProjectSettings) -> None:
        with self._write() as conn:
            conn.execute(projects.update().where(projects.c.id == self.project_id).values(settings=settings.to_json()))

    def reembed(self, pairs: Sequence[tuple[int, int]], new: Sequence[NewExample], settings: ProjectSettings) -> None:
        """A backbone switch: every kept example's vectors replaced (`pairs`: old id -> new id,
        `new`: the re-embedded examples under their new ids), the others deleted, the new backbone
        in the settings; one transaction, images untouched."""
        by_id = {e.example_id: e for e in new}
        kept = {old for old, _ in pairs}
        sizes = {self._rows[old]: _size(by_id[new_id]) for old, new_id in pairs}

        def growth(conn: sa.Connection) -> int:
            return sum(sizes.values()) - self._stored_bytes(conn)

        with self._write(growth) as conn:
            dropped = [row for old, row in self._rows.items() if old not in kept]
            if dropped:
                self._delete_examples(conn, examples.c.id.in_(dropped))
            updates = []
            for old, new_id in pairs:
                vectors = np.ascontiguousarray(by_id[new_id].vectors, FLOAT32)
                updates.append(
                    {
                        "row": self._rows[old],
                        "vectors": vectors.shape[0],
                        "dim": vectors.shape[1],
                        "embedding": vectors.tobytes(),
                        "size": sizes[self._rows[old]],
                    }
                )
            if updates:
                old_sizes = self._stored_bytes(conn)
                conn.execute(
                    examples.update()
                    .where(examples.c.id == sa.bindparam("row"))
                    .values(
                        vectors=sa.bindparam("vectors"),
                        dim=sa.bindparam("dim"),
                        embedding=sa.bindparam("embedding"),
                        size=sa.bindparam("size"),
                    ),
                    updates,
                )
                delta = sum(sizes.values()) - old_sizes
            else:
                delta = 0
            conn.execute(
                projects.update()
                .where(projects.c.id == self.project_id)
                .values(settings=settings.to_json(), bytes=projects.c.bytes + delta)
            )
        self._rows = {new_id: self._rows[old] for old, new_id in pairs}

    def replace(self, content: Content) -> None:
        """Make the stored project `content` exactly (a restored project file, or catching up after
        the database was away): one transaction."""
        new = content.examples()
        with self._write(sum(_size(e) for e in new), replacing=True) as conn:
            conn.execute(examples.delete().where(examples.c.project_id == self.project_id))
            conn.execute(classes.delete().where(classes.c.project_id == self.project_id))
            conn.execute(
                projects.update()
                .where(projects.c.id == self.project_id)
                .values(settings=content.settings.to_json(), bytes=0)
            )
            class_ids = self._insert_classes(conn, content.state.classes, 0)
            rows = self._insert_examples(conn, class_ids, new)
        self._classes, self._rows = class_ids, rows

    # ---- internals -----------------------------------------------------------------------------

    def _write(self, growth: int | Callable[[sa.Connection], int] = 0, replacing: bool = False) -> _Write:
        return _Write(self, growth, replacing)

    def _next_position(self, conn: sa.Connection) -> int:
        top = conn.execute(
            sa.select(sa.func.max(classes.c.position)).where(classes.c.project_id == self.project_id)
        ).scalar_one()
        return 0 if top is None else top + 1

    def _insert_classes(self, conn: sa.Connection, names: Iterable[str], start: int) -> dict[str, int]:
        names = list(names)
        if not names:
            return {}
        ids = conn.execute(
            classes.insert().returning(classes.c.id, sort_by_parameter_order=True),
            [{"project_id": self.project_id, "position": start + i, "name": n} for i, n in enumerate(names)],
        ).scalars()
        return dict(zip(names, ids, strict=True))

    def _insert_examples(
        self, conn: sa.Connection, class_ids: dict[str, int], new: Sequence[NewExample]
    ) -> dict[int, int]:
        if not new:
            return {}
        rows = [example_row(self.project_id, class_ids[e.label], e) for e in new]
        ids = conn.execute(examples.insert().returning(examples.c.id, sort_by_parameter_order=True), rows).scalars()
        conn.execute(
            projects.update()
            .where(projects.c.id == self.project_id)
            .values(bytes=projects.c.bytes + sum(r["size"] for r in rows))
        )
        return dict(zip((e.example_id for e in new), ids, strict=True))

    def _stored_bytes(self, conn: sa.Connection, *where) -> int:
        total = sa.func.coalesce(sa.func.sum(examples.c.size), 0)
        return int(conn.execute(sa.select(total).where(examples.c.project_id == self.project_id, *where)).scalar_one())

    def _delete_examples(self, conn: sa.Connection, where) -> None:
        freed = self._stored_bytes(conn, where)
        conn.execute(examples.delete().where(examples.c.project_id == self.project_id, where))
        conn.execute(projects.update().where(projects.c.id == self.project_id).values(bytes=projects.c.bytes - freed))


class _Write:
    """One write transaction: the lease's compare-and-set first, the quota before any growth."""

    def __init__(self, writer: Writer, growth: int | Callable[[sa.Connection], int], replacing: bool) -> None:
        self.writer, self.growth, self.replacing = writer, growth, replacing

    def __enter__(self) -> sa.Connection:
        writer = self.writer
        self._tx = transaction(writer.store.engine)
        conn = self._tx.__enter__()
        try:
            taken = conn.execute(
                projects.update()
                .where(projects.c.id == writer.project_id, projects.c.generation == writer.generation)
                .values(opened=writer.store.clock())
                .returning(projects.c.bytes)
            ).one_or_none()
            if taken is None:
                exists = conn.execute(sa.select(projects.c.id).where(projects.c.id == writer.project_id)).first()
                raise LeaseLost() if exists else ProjectGone()
            growth = self.growth(conn) if callable(self.growth) else self.growth
            writer.store._check_quota(conn, growth - (taken.bytes if self.replacing else 0))
        except BaseException as exc:
            self._tx.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return conn

    def __exit__(self, *exc_info) -> bool | None:
        return self._tx.__exit__(*exc_info)


def _size(example: NewExample) -> int:
    return example_size(int(np.asarray(example.vectors).size) * FLOAT32.itemsize, example.image)


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.0f} MB" if n >= 1024**2 else f"{n / 1024:,.0f} kB"
