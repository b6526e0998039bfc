"""LiveSession with a project store (knn.live.saving): taught with the real model on real photos,
opened again by its token in a new session; the database away, full, damaged or taken over by
another tab while the session keeps working in memory."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import sqlalchemy as sa

import knn
from knn.core.classifier import KNNClassifier
from knn.live.saving import CHECK_SECONDS
from knn.live.session import LiveSession
from knn.live.worker import ModelWorker
from knn.persist import ProjectStore, sqlite_url
from knn.persist.schema import projects
from tests.frames import photo_frame, show, wait_until


class Clock:
    """The session's clock, moved by the test (recordings, frame ages)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def worker():
    return ModelWorker("test-saving")


def new_session(embedder, store, worker, clock=None, classes=("rock", "paper", "scissors")) -> LiveSession:
    return LiveSession(embedder, classes=classes, worker=worker, clock=clock or Clock(), steady=False, store=store)


def files(paths) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in paths]


def look(session, path) -> None:
    """The camera shows `path`; the session's clock moves on a tenth of a second."""
    session._clock.now += 0.1
    show(session, photo_frame(path))


def notice_of(session) -> str:
    """The recording's notice, which the saver posts once its last frames are committed."""
    notices = []
    wait_until(lambda: notices.append(session.take_notice()) or notices[-1], 10, "the recording's notice")
    return notices[-1]


def same_project(a: LiveSession, b: LiveSession) -> None:
    sa_, sb = a.classifier.state(), b.classifier.state()
    assert sa_.classes == sb.classes
    assert [a.classifier.label_of(i) for i in sa_.ids] == [b.classifier.label_of(i) for i in sb.ids]
    np.testing.assert_array_equal(sa_.vector_counts(), sb.vector_counts())
    np.testing.assert_array_equal(sa_.embeddings, sb.embeddings)
    assert sa_.images == sb.images
    assert list(a.batches().values()) == list(b.batches().values())
    assert a.embedder.backbone == b.embedder.backbone
    assert (a.classifier.k, a.classifier.unknown_threshold, a.augment, a.mirror) == (
        b.classifier.k,
        b.classifier.unknown_threshold,
        b.augment,
        b.mirror,
    )
    assert rule(a) == rule(b)


def rule(session: LiveSession) -> tuple[str, float, bool]:
    return session.classifier.vote, session.classifier.centroid_weight, session.classifier.centred


def count_projects(url: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(projects)).scalar_one()
    engine.dispose()
    return n


def test_a_taught_project_opens_in_a_new_session_as_it_was(db_url, embedder, worker, photos):
    store = ProjectStore(db_url, sweep=False)
    session = new_session(embedder, store, worker)
    assert session.save_state.kind == "new" and session.project_token is None
    ids, errors = session.add_images("rock", files(photos["rock"][:4]))
    assert len(ids) == 4 and not errors
    token = session.project_token
    assert token and session.save_state.kind == "saved" and session.save_state.message == store.where
    session.add_images("paper", files(photos["paper"][:3]))
    look(session, photos["scissors"][0])
    session.add_latest("scissors")
    session.augment = True
    look(session, photos["scissors"][1])
    session.add_latest("scissors")  # 12 vectors
    session.start_recording("paper", seconds=0.45)
    for path in photos["paper"][10:15]:
        look(session, path)
    assert notice_of(session).startswith("Recorded 4 examples")
    session.set_k(1)
    session.set_unknown_threshold(0.3)
    session.set_mirror(True)
    session.rename_class("rock", "fist")
    session.move_example(ids[0], "paper")
    session.remove_example(ids[1])
    session.add_class("lizard")
    assert session.save_state.kind == "saved" and session.save_state.pending == 0

    other = new_session(knn.Embedder(), ProjectStore(db_url, sweep=False), worker, classes=())
    opened = other.open_project(token)
    assert opened.ok and not opened.shared and "12 examples" in opened.message
    same_project(session, other)
    assert other.project_token == token and other.save_state.kind == "saved"
    # What came together: two uploads (4, one since removed; and 3), two Adds, a recording of 4.
    assert sorted(Counter(other.batches().values()).values()) == [1, 1, 3, 3, 4]


def test_a_recording_is_reported_finished_once_its_frames_are_committed(db_url, embedder, worker, photos):
    session = new_session(embedder, ProjectStore(db_url, sweep=False), worker)
    session.add_class("hand")
    token = session.project_token
    look(session, photos["rock"][0])
    session.start_recording("hand", seconds=1.05)
    for path in photos["rock"][1:12]:
        look(session, path)
    recording = session.snapshot().recording  # over, and still shown until its frames are committed
    assert recording is None or recording[1] <= 0
    assert notice_of(session) == "Recorded 10 examples into “hand”."
    # The notice came from the saver, after the commit: another process's view has them all.
    reader = ProjectStore(db_url, sweep=False)
    assert reader.open(token).classifier.counts()["hand"] == 10


def test_a_recording_whose_camera_stopped_is_committed_then_reported(db_url, embedder, worker, photos):
    from knn.live.recording import END_GRACE

    session = new_session(embedder, ProjectStore(db_url, sweep=False), worker)
    session.add_class("hand")
    token = session.project_token
    look(session, photos["rock"][0])
    session.start_recording("hand", seconds=10)
    for path in photos["rock"][1:4]:
        look(session, path)
    session._clock.now += 10 + END_GRACE  # no frame after the deadline: the page's look ends it
    session.snapshot()
    assert notice_of(session) == "Recorded 3 examples into “hand”."
    assert ProjectStore(db_url, sweep=False).open(token).classifier.counts()["hand"] == 3


def test_a_stopped_postgresql_leaves_the_session_working_and_saying_so(embedder, worker, photos, tmp_path):
    from harness.postgres import Cluster, missing

    if missing():
        pytest.skip(f"no PostgreSQL: {missing()}")
    cluster = Cluster().start()
    try:
        url = cluster.create_database()
        session = new_session(embedder, ProjectStore(url, sweep=False), worker)
        session.add_images("rock", files(photos["rock"][:2]))
        token = session.project_token
        cluster.stop()
        ids, _ = session.add_images("paper", files(photos["paper"][:2]))  # nothing raised
        look(session, photos["scissors"][0])
        session.add_latest("scissors")
        state = session.save_state
        assert state.kind == "failing" and state.message.startswith("not being saved: the project database cannot")
        assert session.snapshot().saving == state and session.classifier.counts()["paper"] == 2
        cluster.start()
        wait_until(lambda: session.save_state.kind == "saved", 30, "the saver to catch up")
        opened = new_session(embedder, ProjectStore(url, sweep=False), worker).open_project(token)
        assert opened.ok and "3 classes, 5 examples" in opened.message
    finally:
        cluster.remove()


def test_a_full_store_keeps_the_work_in_memory_and_says_so(db_url, embedder, worker, photos):
    session = new_session(embedder, ProjectStore(db_url, quota=60_000, sweep=False), worker)
    session.add_images("rock", files(photos["rock"][:2]))
    assert session.save_state.kind == "saved"
    ids, _ = session.add_images("rock", files(photos["rock"][2:10]))
    assert len(ids) == 8 and session.classifier.counts()["rock"] == 10
    assert session.save_state.kind == "failing" and "storage for projects is full" in session.save_state.message


def test_a_damaged_sqlite_file_leaves_the_session_working(tmp_path, embedder, worker, photos):
    url = sqlite_url(tmp_path)
    (tmp_path / "projects.sqlite3").write_bytes(b"not a database " * 500)
    store = ProjectStore(url, sweep=False)
    assert store.start().wait(60)  # the process's start finds it damaged: a new session says so before any change
    session = new_session(embedder, store, worker)
    assert session.save_state.kind == "failing" and "damaged" in session.save_state.message
    ids, _ = session.add_images("rock", files(photos["rock"][:2]))
    assert len(ids) == 2 and session.project_token is None
    assert session.save_state.kind == "failing" and "damaged" in session.save_state.message


def test_a_second_tab_takes_over_and_the_first_stops_saving(db_url, embedder, worker, photos):
    first = new_session(embedder, ProjectStore(db_url, sweep=False), worker)
    first.add_images("rock", files(photos["rock"][:2]))
    token = first.project_token
    second = new_session(embedder, ProjectStore(db_url, sweep=False), worker, classes=())
    assert second.open_project(token).ok
    # Idle, the first tab finds out by itself within a few seconds, before its user tries anything.
    wait_until(lambda: first.save_state.kind == "stopped", 4 * CHECK_SECONDS, "the first tab to stop")
    assert not first.save_state.gone
    first.add_images("paper", files(photos["paper"][:2]))  # in memory only now
    assert first.save_state.kind == "stopped"
    assert first.save_state.message == "not being saved: this project is open in another tab; this one stopped saving"
    assert first.project_token is None
    second.add_class("lizard")
    third = new_session(embedder, ProjectStore(db_url, sweep=False), worker, classes=())
    third.open_project(token)
    assert third.classifier.counts() == {"rock": 2, "paper": 0, "scissors": 0, "lizard": 0}


def test_forget_deletes_and_an_old_tab_cannot_bring_it_back(db_url, embedder, worker, photos):
    old_tab = new_session(embedder, ProjectStore(db_url, sweep=False), worker)
    old_tab.add_images("rock", files(photos["rock"][:2]))
    token = old_tab.project_token
    tab = new_session(embedder, ProjectStore(db_url, sweep=False), worker, classes=())
    tab.open_project(token)
    tab.forget(classes=["Class 1"])
    assert tab.classifier.classes == ["Class 1"] and len(tab.classifier) == 0
    assert tab.project_token is None and tab.save_state.kind == "new" and count_projects(db_url) == 0
    wait_until(lambda: old_tab.save_state.gone, 4 * CHECK_SECONDS, "the old tab to find its project gone")
    assert old_tab.save_state.message.startswith("not being saved: this project was forgotten or expired")
    old_tab.add_images("rock", files(photos["rock"][2:4]))
    old_tab.add_class("back?")
    assert old_tab.save_state.kind == "stopped" and count_projects(db_url) == 0
    assert not tab.open_project(token).ok
    tab.add_class("fresh")  # a new project under a new link
    assert tab.project_token not in (None, token) and count_projects(db_url) == 1


def test_a_share_link_gives_each_visitor_their_own_copy(db_url, embedder, worker, photos):
    owner = new_session(embedder, ProjectStore(db_url, sweep=False), worker)
    owner.add_images("rock", files(photos["rock"][:3]))
    share = owner.share()
    visitors = [new_session(embedder, ProjectStore(db_url, sweep=False), worker, classes=()) for _ in range(2)]
    for visitor in visitors:
        opened = visitor.open_project(share)
        assert opened.ok and opened.shared and visitor.project_token is None
        same_project(owner, visitor)
    assert count_projects(db_url) == 2  # a bare visit stores nothing: the project and its snapshot
    visitors[0].add_class("mine")
    visitors[1].remove_class("rock")
    tokens = {owner.project_token, share, visitors[0].project_token, visitors[1].project_token}
    assert None not in tokens and len(tokens) == 4
    again = new_session(embedder, ProjectStore(db_url, sweep=False), worker, classes=())
    again.open_project(owner.project_token)
    assert again.classifier.classes == ["rock", "paper", "scissors"] and len(again.classifier) == 3
    again.open_project(share)
    assert again.classifier.classes == ["rock", "paper", "scissors"]


def test_a_project_opens_with_its_own_backbone_or_is_re_embedded(tmp_path, embedder, worker, photos):
    url = sqlite_url(tmp_path)
    session = new_session(embedder, ProjectStore(url, sweep=False), worker)
    session.add_images("rock", files(photos["rock"][:3]))
    wide = knn.Embedder("mobilenet_v2_1.0_320")
    session.set_embedder(wide)
    token = session.project_token

    def has(backbone):
        assert backbone == wide.backbone
        return wide

    same_backbone = new_session(embedder, ProjectStore(url, sweep=False), worker, classes=())
    opened = same_backbone.open_project(token, has)
    assert opened.ok and same_backbone.embedder is wide
    same_project(session, same_backbone)

    def lacks(backbone):
        raise knn.WeightsUnavailable(f"no weights for {backbone} here")

    other = new_session(embedder, ProjectStore(url, sweep=False), worker, classes=())
    opened = other.open_project(token, lacks)
    assert opened.ok and "re-embedded with mobilenet_v2_1.0_224" in opened.message
    assert other.embedder is embedder and other.classifier.counts()["rock"] == 3
    other.add_class("after")  # the first change stores the re-embedded project whole
    check = new_session(embedder, ProjectStore(url, sweep=False), worker, classes=())
    check.open_project(token, lacks)
    assert check.classifier.dim == embedder.dim and check.classifier.classes[-1] == "after"


def test_a_projects_rule_is_stored_and_comes_back_by_its_link(db_url, embedder, worker, photos):
    own = KNNClassifier(vote="centroids", centroid_weight=0.6, centred=False)
    store = ProjectStore(db_url, sweep=False)
    session = LiveSession(embedder, own, ["rock", "paper"], worker, Clock(), steady=False, store=store)
    session.add_images("rock", files(photos["rock"][:2]))
    other = new_session(embedder, ProjectStore(db_url, sweep=False), worker, classes=())
    assert rule(other) == ("blend", 0.3, True)  # a new project's
    assert other.open_project(session.project_token).ok
    assert rule(other) == ("centroids", 0.6, False)
    same_project(session, other)
    other.forget(classes=["Class 1"])
    other.add_class("next")  # the new project, stored under a new link, keeps the rule
    third = new_session(embedder, ProjectStore(db_url, sweep=False), worker, classes=())
    assert third.open_project(other.project_token).ok and rule(third) == ("centroids", 0.6, False)


def test_without_a_store_nothing_changes(embedder, worker, photos):
    session = new_session(embedder, None, worker)
    session.add_images("rock", files(photos["rock"][:1]))
    assert session.save_state.kind == "off" and session.project_token is None
    assert not session.open_project("a" * 32).ok


def test_a_closed_session_is_freed_and_its_saver_stops(tmp_path, embedder, worker):
    import gc
    import threading
    import weakref

    session = new_session(embedder, ProjectStore(sqlite_url(tmp_path), sweep=False), worker)
    session.add_class("lizard")
    saver, gone = session._saver, weakref.ref(session)
    del session
    gc.collect()
    assert gone() is None
    wait_until(lambda: not saver._thread.is_alive(), 10, "the saver's thread to end")
    assert saver._thread not in threading.enumerate()
