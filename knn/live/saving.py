"""A session's changes committed to its stored project, in the order they were made, on one thread.

The session changes its classifier in memory first, then hands the change to its `Saver`
(cheaply, under its lock, so the order is the order of the changes). The saver's thread commits
each change in its own transaction (knn.persist's `Writer`); Record's frames, which arrive on the
model worker thread, are gathered for at most `COMMIT_WINDOW` into one transaction, so neither the
camera nor the page ever waits on the database. The page's changes wait for their commit
(`wait`), so what the page shows as saved is committed.

Nothing stored yet (a new project, a share link's copy) or the database away: the next change
writes the whole project from memory (the first change creates it; catching up replaces it),
and while the database is away the saver tries again every `RETRY_SECONDS`. While idle it reads
every `CHECK_SECONDS` whether another tab took the project over or it was forgotten, so an older
tab says so before its user tries another change. The session never sees a database error:
`state` says where the work is kept, or why it is not being saved.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..persist import Content, LeaseLost, ProjectGone, ProjectStore, StoreError, Writer

log = logging.getLogger(__name__)

COMMIT_WINDOW = 0.25
"""Seconds Record's frames are gathered into one transaction: with the commit's own time, a
crash loses well under the half second the issue allows, and never half an example."""
WAIT_SECONDS = 15.0
"""How long the page waits for a change's commit before going on (the state then says saving)."""
RETRY_SECONDS = 5.0
"""While the database is away, how often the saver tries to catch up."""
CHECK_SECONDS = 3.0
"""While idle, how often the saver reads whether its project was taken over or forgotten: one
indexed read per session, so the older of two tabs says it stopped within a few seconds."""


@dataclass(frozen=True)
class SaveState:
    """Where a session's work is kept, for the page to say.

    Attributes:
        kind: "off" (no store on this server), "new" (nothing stored yet: the first change
            creates the project), "saved", "failing" (the database is away, full or refused:
            the work is in memory only), "stopped" (another tab took the project over, or it was
            forgotten or expired: this session no longer writes it).
        message: the page's words: "saved on this server", "not being saved: <reason>", ...
        pending: changes made but not yet committed.
        gone: "stopped" because the project was forgotten or expired (not taken over): nothing
            may bring it back, so the page offers no "Edit here instead".
    """

    kind: str
    message: str
    pending: int = 0
    gone: bool = False


OFF = SaveState("off", "saving is off on this server: a project lives only while its tab is open")


@dataclass
class Change:
    """One change, as the saver applies it: a `Writer` method and its arguments, or one of the
    saver's own steps ("replace", "attach", "forget", or None for a notice after the frames
    before it)."""

    seq: int
    method: str | None
    args: tuple = ()
    record: bool = False
    queued: float = field(default_factory=time.monotonic)
    done: Callable[[], None] | None = None  # called once applied (a recording's notice)
    error: str | None = None  # what went wrong, for the page ("forget" waits for this)


_STOP = object()


class Saver:
    """Commits one session's changes to `store`, in order, on its own thread.

    Args:
        store: the server's project store.
        content: the session's whole project and the sequence number of its last change, taken
            under the session's lock; None once the session is gone.
    """

    def __init__(self, store: ProjectStore, content: Callable[[], tuple[int, Content] | None]) -> None:
        self.store = store
        self._content = content
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: Writer | None = None
        self._needs_full = True  # the next change writes the whole project (nothing stored yet)
        self._synced = 0  # the last change the store has
        self._done = 0  # the last change applied or failed
        self._submitted = 0
        self._problem: str | None = None
        self._stopped: str | None = None
        self._gone = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ---- the session's side --------------------------------------------------------------------

    def submit(self, change: Change) -> None:
        """Queue a change (never blocks; call under the session's lock so order is kept)."""
        self._submitted = change.seq
        self._queue.put(change)
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="knn-saver", daemon=True)
            self._thread.start()

    def wait(self, seq: int, timeout: float = WAIT_SECONDS) -> bool:
        """Wait until change `seq` was applied (or failed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= seq, timeout)

    def close(self) -> None:
        """Stop the thread once the queued changes are applied."""
        self._closed = True
        self._queue.put(_STOP)

    @property
    def token(self) -> str | None:
        """The stored project's token, once it exists (it goes in the page's URL)."""
        writer = self._writer
        return None if writer is None or self._stopped else writer.token

    @property
    def state(self) -> SaveState:
        pending = max(0, self._submitted - self._done)
        if self._stopped:
            return SaveState("stopped", f"not being saved: {self._stopped}", pending, self._gone)
        problem = self._problem or (self.store.problem if self._writer is None else None)
        if problem:  # the store's own: the database could not be used at the process's start
            return SaveState("failing", f"not being saved: {problem}", pending)
        if self._writer is None:
            return SaveState("new", f"not saved yet: it will be {self.store.where} from your first change", pending)
        return SaveState("saved", self.store.where, pending)

    # ---- the saver's thread --------------------------------------------------------------------

    def _run(self) -> None:
        held = None
        while True:
            if held is not None:
                change, held = held, None
            else:
                retrying = self._problem is not None and self._stopped is None
                checking = self._writer is not None and not self._gone
                try:
                    change = self._queue.get(timeout=RETRY_SECONDS if retrying else CHECK_SECONDS if checking else None)
                except queue.Empty:
                    if retrying:
                        self._retry()
                    else:
                        self._check()
                    continue
            if change is _STOP:
                return
            batch = [change]
            if change.record:  # gather the frames of the next COMMIT_WINDOW into one transaction
                deadline = change.queued + COMMIT_WINDOW
                while True:
                    try:
                        following = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if following is _STOP or not following.record:
                        held = following
                        break
                    batch.append(following)
            self._apply(batch)

    def _apply(self, batch: list[Change]) -> None:
        first, last = batch[0], batch[-1].seq
        try:
            if first.method == "attach":
                self._writer, self._needs_full = first.args
                self._synced, self._problem, self._stopped, self._gone = last, None, None, False
            elif first.method == "forget":
                self._forget(first)
            elif first.method is None or self._stopped:
                pass
            elif self._writer is None or self._needs_full or self._problem or first.method == "replace":
                self._catch_up()
            else:
                fresh = [c for c in batch if c.seq > self._synced]
                if fresh and first.record:
                    self._writer.add([example for c in fresh for example in c.args[0]])
                elif fresh:
                    getattr(self._writer, first.method)(*first.args)
                self._synced = max(self._synced, last)
        except StoreError as exc:
            self._failed(first, exc)
        except Exception as exc:  # a bug must not stop the saver: the session keeps working in memory
            log.exception("saving a change failed")
            self._failed(first, StoreError(f"an unexpected error ({exc})"))
        finally:
            with self._cond:
                self._done = max(self._done, last)
                self._cond.notify_all()
            for change in batch:
                if change.done is not None:
                    change.done()

    def _retry(self) -> None:
        try:
            self._catch_up()
        except StoreError as exc:
            self._failed(None, exc)

    def _check(self) -> None:
        """Idle: has another tab taken the project over, or was it forgotten? (A database that is
        away changes nothing here: the next change finds out and says so.)"""
        writer = self._writer
        if writer is None:
            return
        try:
            writer.check()
        except (LeaseLost, ProjectGone) as exc:
            self._failed(None, exc)
        except StoreError:
            pass

    def _catch_up(self) -> None:
        """Write the whole project from memory: create it, or replace what is stored (StoreError)."""
        if self._stopped:
            return
        got = self._content()
        if got is None:  # the session is gone
            return
        seq, content = got
        if self._writer is None:
            _, self._writer = self.store.create(content)
        else:
            self._writer.replace(content)
        self._synced = max(self._synced, seq)
        self._needs_full, self._problem = False, None

    def _forget(self, change: Change) -> None:
        writer = self._writer
        try:
            if writer is not None:
                self.store.forget(writer.token)
        except StoreError as exc:
            change.error = str(exc)
            return
        self._writer, self._needs_full = None, True
        self._synced, self._problem, self._stopped, self._gone = change.seq, None, None, False

    def _failed(self, change: Change | None, exc: StoreError) -> None:
        if isinstance(exc, LeaseLost | ProjectGone):
            self._stopped, self._gone = str(exc), isinstance(exc, ProjectGone)
        else:
            self._problem, self._needs_full = str(exc), True
            log.warning("a project is not being saved: %s", exc)
        if change is not None:
            change.error = str(exc)
