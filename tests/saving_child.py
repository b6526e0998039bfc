"""A LiveSession with a project store in a process of its own, for tests/test_saving_kill.py to kill.

    python -m tests.saving_child upload|record DATABASE_URL PHOTOS_DIR

It teaches with the real model and real photos and prints what it did, one line at a time:
`token T` once the project exists, `acked N` after each upload batch returns, and `inside` when
it is in the middle of the transaction that writes the examples of upload batch 3 (or those of
Record's third commit), where it then waits to be killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import sqlalchemy as sa

import knn
from knn.core.image_folders import class_folders
from knn.live.session import LiveSession
from knn.persist import ProjectStore
from tests.frames import photo_frame, show

BATCH = 4
STOP_AT = 3


def say(*words: object) -> None:
    print(*words, flush=True)


def main(mode: str, url: str, photos_dir: str) -> None:
    photos = class_folders(Path(photos_dir))
    store = ProjectStore(url, sweep=False)
    clock = [1000.0]
    session = LiveSession(knn.Embedder(), classes=["rock", "hand"], clock=lambda: clock[0], steady=False, store=store)
    armed, commits = [False], None  # commits: Record's, counted once it starts

    @sa.event.listens_for(store.engine, "after_cursor_execute")
    def stop_inside(conn, cursor, statement, *args) -> None:
        if armed[0] and statement.lstrip().upper().startswith("INSERT INTO EXAMPLES"):
            say("inside")
            time.sleep(120)  # killed here, the transaction open and rows written in it

    @sa.event.listens_for(store.engine, "commit")
    def count(conn) -> None:
        if commits is None:
            return
        commits.append(1)
        if len(commits) == STOP_AT - 1:  # two of Record's commits, then stop in the third
            armed[0] = True

    first = photos["rock"][:BATCH]
    session.add_images("rock", [(p.name, p.read_bytes()) for p in first])
    say("token", session.project_token)
    if mode == "upload":
        for n in range(1, 20):
            batch = photos["rock"][n * BATCH : (n + 1) * BATCH]
            ids, _ = session.add_images("rock", [(p.name, p.read_bytes()) for p in batch])
            say("acked", n, len(ids))
            armed[0] = n == STOP_AT - 1
    else:
        clock[0] += 0.1
        show(session, photo_frame(photos["paper"][0]))
        commits = []
        session.start_recording("hand", seconds=1000)
        for path in photos["paper"][1:200]:
            clock[0] += 0.1
            show(session, photo_frame(path))
            time.sleep(0.05)  # a camera's pace: several commits, several frames each


if __name__ == "__main__":
    main(*sys.argv[1:])
