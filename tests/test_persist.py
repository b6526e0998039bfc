"""The project store (knn.persist) on SQLite and on a real PostgreSQL: rows in, rows out, the
writer lease, forget, expiry, share links, the quota, migrations, and rows it must refuse."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from knn.core.classifier import KNNClassifier
from knn.core.images import encode_jpeg
from knn.persist import (
    Content,
    LeaseLost,
    NewExample,
    ProjectGone,
    ProjectSettings,
    ProjectStore,
    QuotaExceeded,
    SchemaTooNew,
    StoreUnavailable,
    UnreadableProject,
    sqlite_url,
)
from knn.persist.database import create_version, engine_for, migrate
from knn.persist.keys import key_hash
from knn.persist.schema import SCHEMA_VERSION, classes, examples, projects, schema_version, tables

ROOT = Path(__file__).resolve().parents[1]
V1_FILE = ROOT / "tests" / "data" / "projects_v1.sqlite3"
V1_TOKEN = "v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1"  # the token of the project in V1_FILE
V2_FILE = ROOT / "tests" / "data" / "projects_v2.sqlite3"
"""A schema-2 database made by main's ProjectStore.create at 2681699 (before the rule was stored):
one project (token V2_TOKEN), rock 2 and paper 1 examples of 4 values (the second rock one with
12 vectors), batches 0, 0, 1; k=5, unknown threshold 0.25, augment and mirror on."""
V2_TOKEN = "v2v2v2v2v2v2v2v2v2v2v2v2v2v2v2v2"
LEGACY_RULE = ("examples", 0.3, False)  # how every project decided before schema 3
DIM = 16
RNG = np.random.default_rng(7)


def jpeg(seed: int) -> bytes:
    return encode_jpeg(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), np.uint8), size=32)


def vectors(n: int = 1) -> np.ndarray:
    return RNG.normal(size=(n, DIM)).astype(np.float32)


def content(n_per_class: int = 2, names=("rock", "paper")) -> Content:
    clf = KNNClassifier(k=5, unknown_threshold=0.25, vote="centroids", centroid_weight=0.5, centred=True)
    for name in names:
        clf.add_class(name)
    labels = [name for name in names for _ in range(n_per_class)]
    counts = [1 + (i % 2) * 11 for i in range(len(labels))]  # plain and augmented examples
    clf.add_many(vectors(sum(counts)), labels, [jpeg(i) for i in range(len(labels))], counts)
    settings = ProjectSettings(
        "mobilenet_v2_1.0_224",
        k=5,
        unknown_threshold=0.25,
        augment=True,
        mirror=True,
        vote="centroids",
        centroid_weight=0.5,
        centred=True,
    )
    return Content(clf.state(), settings, list(range(100, 100 + len(labels))))


@pytest.fixture()
def store(db_url):
    store = ProjectStore(db_url, sweep=False)
    yield store
    store.close()


def same(a: KNNClassifier, b: KNNClassifier) -> None:
    sa_, sb = a.state(), b.state()
    assert sa_.classes == sb.classes
    assert [a.label_of(i) for i in sa_.ids] == [b.label_of(i) for i in sb.ids]
    np.testing.assert_array_equal(sa_.vector_counts(), sb.vector_counts())
    np.testing.assert_allclose(sa_.embeddings, sb.embeddings, rtol=0, atol=0)
    assert sa_.images == sb.images
    assert (a.k, a.unknown_threshold) == (b.k, b.unknown_threshold)
    assert rule(a) == rule(b)


def rule(clf: KNNClassifier) -> tuple[str, float, bool]:
    return clf.vote, clf.centroid_weight, clf.centred


# ---- rows in, rows out -------------------------------------------------------------------------


def test_a_project_comes_back_as_it_was_stored(store):
    original = content()
    token, writer = store.create(original)
    loaded = store.open(token)
    same(loaded.classifier, KNNClassifier.from_state(original.state))
    assert loaded.settings == original.settings and loaded.batches == list(original.batches)
    assert loaded.writer is not None and not loaded.shared


def test_each_change_is_written_and_read_back(store):
    token, _ = store.create(content())
    loaded = store.open(token)
    clf, writer = loaded.classifier, loaded.writer  # clf: what the session holds, changed alike
    new = vectors(3)
    (added,) = clf.add_many(new, ["paper"], [jpeg(50)], [3])
    writer.add([NewExample(added, "paper", new, jpeg(50), 7)])
    clf.add_class("scissors")
    writer.add_class("scissors")
    clf.rename_class("rock", "fist")
    writer.rename_class("rock", "fist")
    clf.move(0, "scissors")
    writer.move_example(0, "scissors")
    clf.remove(1)
    writer.remove_example(1)
    ids_of_paper = [e.example_id for e in clf.examples("paper")]
    clf.clear_class("paper")
    writer.clear_class("paper", ids_of_paper)
    (extra,) = clf.add_many(vectors(1), ["paper"], [None], [1])
    writer.add([NewExample(extra, "paper", clf.state().embeddings[-1:], None, 8)])
    settings = ProjectSettings(
        "mobilenet_v2_1.0_224", k=1, unknown_threshold=None, mirror=False, vote="blend", centroid_weight=0.2
    )
    clf.k, clf.unknown_threshold, clf.vote, clf.centroid_weight, clf.centred = 1, None, "blend", 0.2, True
    rows_before = example_rows(store)
    writer.set_settings(settings)
    assert example_rows(store) == rows_before  # a settings change rewrites no example
    loaded = store.open(token)
    same(loaded.classifier, clf)
    assert loaded.settings == settings
    assert loaded.classifier.classes == ["fist", "paper", "scissors"]
    removed = [e.example_id for e in clf.examples("fist")]
    clf.remove_class("fist")
    loaded.writer.remove_class("fist", removed)
    assert store.open(token).classifier.classes == ["paper", "scissors"]


def example_rows(store: ProjectStore) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(examples).order_by(examples.c.id))]


def test_only_a_hash_of_the_token_is_stored(store, db_url):
    token, _ = store.create(content())
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(projects.c.key_hash)).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).digest()]
    if db_url.startswith("sqlite"):
        assert token.encode() not in Path(store.engine.url.database).read_bytes()
    assert store.open("x" * 32) is None and store.open("not a token") is None and store.open(None) is None


def test_backbone_switch_rewrites_vectors_and_drops_examples_without_an_image(store):
    token, writer = store.create(content())
    old = store.open(token)
    clf, writer = old.classifier, old.writer
    kept = [0, 1, 3]
    new = KNNClassifier(k=5, unknown_threshold=0.25)
    for name in clf.classes:
        new.add_class(name)
    wide = RNG.normal(size=(len(kept), 24)).astype(np.float32)
    new_ids = new.add_many(wide, [clf.label_of(i) for i in kept], [jpeg(i) for i in kept])
    settings = ProjectSettings("mobilenet_v1_1.0_224", k=5, unknown_threshold=0.25, vote="examples", centred=False)
    state = new.state()
    writer.reembed(
        list(zip(kept, new_ids, strict=True)),
        Content(state, settings, [0] * len(kept)).examples(),
        settings,
    )
    loaded = store.open(token)
    same(loaded.classifier, new)
    assert loaded.settings.backbone == "mobilenet_v1_1.0_224" and loaded.classifier.dim == 24


# ---- the lease -----------------------------------------------------------------------------------


def test_the_newest_opener_writes_and_the_older_is_refused(store):
    token, first = store.create(content())
    second = store.open(token).writer
    with pytest.raises(LeaseLost, match="open in another tab"):
        first.add_class("late")
    second.add_class("now")
    assert store.open(token).classifier.classes == ["rock", "paper", "now"]


LEASE_CHILD = """
import sys
from knn.persist import ProjectStore, LeaseLost
store = ProjectStore(sys.argv[1], sweep=False)
writer = store.open(sys.argv[2]).writer
writer.add_class("from the child")
print("opened", flush=True)
sys.stdin.readline()  # the parent opens the project meanwhile
try:
    writer.add_class("after the parent")
except LeaseLost as exc:
    print("refused:", exc, flush=True)
"""


def test_the_lease_holds_across_processes(store, db_url):
    token, writer = store.create(content())
    child = subprocess.Popen(
        [sys.executable, "-c", LEASE_CHILD, db_url, token],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout.readline().strip() == "opened"
        with pytest.raises(LeaseLost):  # the child opened it after us
            writer.add_class("mine")
        newest = store.open(token).writer
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().startswith("refused: this project is open in another tab")
        newest.add_class("parent again")
    finally:
        child.communicate(timeout=60)
    assert store.open(token).classifier.classes == ["rock", "paper", "from the child", "parent again"]


# ---- forget, expiry, share ---------------------------------------------------------------------


def count_projects(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(projects)).scalar_one()


def test_forget_deletes_now_and_an_old_writer_cannot_bring_it_back(store):
    token, writer = store.create(content())
    assert store.forget(token) and store.open(token) is None
    with pytest.raises(ProjectGone):
        writer.add([NewExample(99, "rock", vectors(), jpeg(1), 0)])
    with pytest.raises(ProjectGone):
        writer.replace(content())
    assert count_projects(store) == 0 and store.used_bytes() == 0
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(examples)).scalar_one() == 0
    assert not store.forget(token)


def test_forget_leaves_nothing_in_the_sqlite_file(tmp_path):
    store = ProjectStore(sqlite_url(tmp_path), sweep=False)
    marker = "Zebra-Marker-Class-Name"
    token, _ = store.create(content(names=(marker, "paper")))
    database = Path(store.engine.url.database)
    assert any(marker.encode() in p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(database.name))
    store.forget(token)
    for path in tmp_path.iterdir():  # the file, and the write-ahead log truncated by the checkpoint
        assert marker.encode() not in path.read_bytes(), path.name
    store.close()


def test_projects_unopened_for_the_ttl_expire(db_url):
    now = [1_000_000.0]
    store = ProjectStore(db_url, ttl=3600, clock=lambda: now[0], sweep=False)
    old_token, old_writer = store.create(content())
    now[0] += 1800
    recent_token, _ = store.create(content())
    now[0] += 1801  # the first is 3601 s old, the second 1801 s
    assert store.sweep() == 1
    assert store.open(old_token) is None and store.open(recent_token) is not None
    with pytest.raises(ProjectGone):
        old_writer.add_class("back?")
    now[0] += 3601  # unopened again: opening the link finds it expired and deletes it
    assert store.open(recent_token) is None and count_projects(store) == 0
    store.close()


def test_a_store_started_with_its_process_sweeps_at_once(tmp_path):
    url = sqlite_url(tmp_path)
    old = ProjectStore(url, ttl=3600, clock=lambda: 1_000_000.0, sweep=False)
    old.create(content())
    old.close()
    store = ProjectStore(url, ttl=3600, sweep=False)  # the real clock: that project is long expired
    assert store.start().wait(60)  # the process's start, before any session used the store
    assert store.problem is None and count_projects(store) == 0
    store.close()


def test_a_share_link_gives_each_visitor_a_copy_and_never_the_original(store):
    original = content()
    token, writer = store.create(original)
    share = store.share(original)
    assert share != token
    first, second = store.open(share), store.open(share)
    assert first.shared and first.writer is None
    same(first.classifier, store.open(token).classifier)
    # Each visitor's project is created from the snapshot on their first change.
    mine, _ = store.create(Content(first.classifier.state(), first.settings, first.batches))
    theirs, theirs_writer = store.create(Content(second.classifier.state(), second.settings, second.batches))
    theirs_writer.add_class("only theirs")
    assert "only theirs" not in store.open(mine).classifier.classes
    assert "only theirs" not in store.open(share).classifier.classes
    assert "only theirs" not in store.open(token).classifier.classes
    assert len({token, share, mine, theirs}) == 4 and count_projects(store) == 4
    with store.engine.connect() as conn:
        kinds = conn.execute(sa.select(projects.c.kind, sa.func.count()).group_by(projects.c.kind)).all()
    assert dict(kinds) == {"project": 3, "snapshot": 1}


def test_the_quota_refuses_a_write_before_it_happens(db_url):
    store = ProjectStore(db_url, quota=60_000, sweep=False)
    token, writer = store.create(content(n_per_class=1))
    used = store.used_bytes()
    with pytest.raises(QuotaExceeded, match="storage for projects is full"):
        writer.add([NewExample(50 + i, "rock", vectors(12), jpeg(i), 3) for i in range(60)])
    with pytest.raises(QuotaExceeded):
        store.create(content(n_per_class=30))
    with pytest.raises(QuotaExceeded):
        store.share(content(n_per_class=30))
    assert store.used_bytes() == used and count_projects(store) == 1
    writer.rename_class("rock", "fist")  # what does not grow is still written
    ids = [e.example_id for e in store.open(token).classifier.examples("fist")]
    store.open(token).writer.clear_class("fist", ids)
    assert store.used_bytes() < used
    store.close()


# ---- rows the store must refuse ---------------------------------------------------------------


@pytest.mark.parametrize(
    "table, values, words",
    [
        ("projects", {"settings": "{not json"}, "not valid JSON"),
        ("projects", {"settings": '{"backbone": "x"}'}, "expected fields"),
        ("projects", {"settings": content().settings.to_json().replace('"centroids"', '"majority"')}, "'vote'"),
        ("projects", {"settings": content().settings.to_json().replace("0.5", "1.5")}, "'centroid_weight'"),
        ("examples", {"embedding": b"\x00" * 12}, "size its row declares"),
        ("examples", {"embedding": np.full((1, DIM), np.nan, np.float32).tobytes(), "vectors": 1}, "NaN"),
        ("examples", {"embedding": np.zeros((1, DIM), np.float32).tobytes(), "vectors": 1}, "all zeros"),
        ("examples", {"image": b"GIF89a"}, "not JPEG"),
        ("examples", {"image": b"\xff\xd8" + b"\x00" * 50_000}, "over 40 kB"),
        ("examples", {"vectors": 13, "embedding": vectors(13).tobytes()}, "13 vectors"),
        ("examples", {"dim": 4096, "embedding": np.ones(4096, np.float32).tobytes(), "vectors": 1}, "4096 values"),
        ("classes", {"name": "two\nlines"}, "control characters"),
    ],
)
def test_rows_that_fail_a_project_files_checks_are_refused(store, table, values, words):
    token, _ = store.create(content(n_per_class=1))
    target = {"projects": projects, "examples": examples, "classes": classes}[table]
    with store.engine.begin() as conn:
        first = conn.execute(sa.select(sa.func.min(target.c.id))).scalar_one()
        every = "dim" in values  # one width for all, else the widths would differ first
        conn.execute(target.update().where(sa.true() if every else target.c.id == first).values(**values))
    with pytest.raises(UnreadableProject, match=words):
        store.open(token)


def test_more_examples_than_a_project_may_hold_are_refused_before_they_are_read(store, monkeypatch):
    import knn.persist.rows as rows

    token, _ = store.create(content(n_per_class=3))
    monkeypatch.setattr(rows, "MAX_EXAMPLES", 5)
    with pytest.raises(UnreadableProject, match="6 examples; a project has at most 5"):
        store.open(token)


# ---- the database itself ------------------------------------------------------------------------


def make_v1(url: str) -> None:
    """A version-1 database holding one project (token V1_TOKEN): two classes, three examples.
    tests/data/projects_v1.sqlite3 was made by it."""
    v1 = tables(1)
    engine = engine_for(url)
    create_version(engine, 1)
    settings = json.dumps(  # the settings as schema 1 had them: no rule
        {
            "augment": False,
            "backbone": "mobilenet_v2_1.0_224",
            "k": 3,
            "max_examples_per_class": 1000,
            "mirror": False,
            "unknown_threshold": None,
        }
    )
    with engine.begin() as conn:
        conn.execute(
            v1.tables["projects"]
            .insert()
            .values(  # ids left to the database: 1, 2, ... in a new one
                key_hash=key_hash(V1_TOKEN),
                kind="project",
                created=1.7e9,
                opened=4.0e9,  # far in the future: never expired by the tests' clock
                generation=1,
                settings=settings,
                bytes=3 * 100,
            )
        )
        conn.execute(
            v1.tables["classes"].insert(),
            [{"project_id": 1, "position": 0, "name": "rock"}, {"project_id": 1, "position": 1, "name": "paper"}],
        )
        rng = np.random.default_rng(1)
        conn.execute(
            v1.tables["examples"].insert(),
            [
                {
                    "project_id": 1,
                    "class_id": 1 + i % 2,
                    "vectors": 1,
                    "dim": 4,
                    "embedding": rng.normal(size=(1, 4)).astype("<f4").tobytes(),
                    "image": encode_jpeg(np.full((8, 8, 3), 40 * i, np.uint8), size=8),
                    "size": 100,
                    "created": 1.7e9,
                }
                for i in range(3)
            ],
        )
    engine.dispose()


def check_v1_upgraded(url: str) -> None:
    store = ProjectStore(url, sweep=False)
    loaded = store.open(V1_TOKEN)
    assert loaded.classifier.counts() == {"rock": 2, "paper": 1}
    assert loaded.batches == [1, 2, 3]  # an old example is a batch of its own
    assert rule(loaded.classifier) == LEGACY_RULE  # the rule it was made with, whatever today's default
    assert (loaded.settings.vote, loaded.settings.centroid_weight, loaded.settings.centred) == LEGACY_RULE
    assert all(e.image[:2] == b"\xff\xd8" for e in loaded.classifier.examples())
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(schema_version.c.version)).scalar_one() == SCHEMA_VERSION
    loaded.writer.add([NewExample(9, "paper", vectors(1)[:, :4], None, 4)])  # and it takes new rows
    assert store.open(V1_TOKEN).batches == [1, 2, 3, 4]
    store.close()


def test_the_committed_version_1_sqlite_file_is_upgraded_with_its_rows(tmp_path):
    copy = tmp_path / "projects.sqlite3"
    shutil.copy(V1_FILE, copy)
    with sqlite3.connect(copy) as raw:
        assert raw.execute("select version from knn_schema").fetchone() == (1,)
        assert "batch" not in [c[1] for c in raw.execute("pragma table_info(examples)")]
    check_v1_upgraded(sqlite_url(tmp_path))


def test_a_version_1_postgresql_database_is_upgraded(postgres):
    url = postgres.create_database()
    make_v1(url)
    check_v1_upgraded(url)


def copy_v2_file(url: str, folder: Path) -> None:
    """The committed version-2 SQLite file's rows, in a new version-2 database at `url`."""
    v2 = tables(2)
    shutil.copy(V2_FILE, folder / "v2.sqlite3")  # opening it in place would leave WAL files in tests/data
    source = sa.create_engine(sa.URL.create("sqlite", database=str(folder / "v2.sqlite3")))
    target = engine_for(url)
    create_version(target, 2)
    with source.connect() as read, target.begin() as write:
        for table in v2.sorted_tables:
            if table.name != "knn_schema":
                rows = [row._asdict() for row in read.execute(sa.select(table).order_by(table.c.id))]
                write.execute(table.insert(), rows)
        if write.dialect.name == "postgresql":  # explicit ids leave the sequences behind
            for table in ("projects", "classes", "examples"):
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                write.execute(sa.text(f"SELECT setval({sequence}, (SELECT max(id) FROM {table}))"))
    source.dispose()
    target.dispose()


def check_v2_upgraded(url: str) -> None:
    store = ProjectStore(url, sweep=False)
    loaded = store.open(V2_TOKEN)
    clf = loaded.classifier
    assert clf.counts() == {"rock": 2, "paper": 1} and clf.state().vector_counts().tolist() == [1, 1, 12]
    assert loaded.batches == [0, 0, 1]
    assert rule(clf) == LEGACY_RULE  # made before the rule was stored: the rule it was made with
    assert loaded.settings == ProjectSettings(
        "mobilenet_v2_1.0_224", k=5, unknown_threshold=0.25, augment=True, mirror=True, vote="examples", centred=False
    )
    assert (clf.k, clf.unknown_threshold) == (5, 0.25)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(schema_version.c.version)).scalar_one() == SCHEMA_VERSION
    new_rule = dataclasses.replace(loaded.settings, vote="blend", centred=True)
    loaded.writer.set_settings(new_rule)  # and its rule can change like any setting
    loaded.writer.add([NewExample(9, "paper", vectors(1)[:, :4], None, 2)])
    again = store.open(V2_TOKEN)
    assert again.settings == new_rule and rule(again.classifier) == ("blend", 0.3, True)
    assert again.batches == [0, 0, 1, 2]
    store.close()


def test_the_committed_version_2_sqlite_file_is_upgraded_with_its_rows(tmp_path):
    copy = tmp_path / "projects.sqlite3"
    shutil.copy(V2_FILE, copy)
    with sqlite3.connect(copy) as raw:
        assert raw.execute("select version from knn_schema").fetchone() == (2,)
        assert "vote" not in raw.execute("select settings from projects").fetchone()[0]
    check_v2_upgraded(sqlite_url(tmp_path))


def test_a_version_2_postgresql_database_is_upgraded(postgres, tmp_path):
    url = postgres.create_database()
    copy_v2_file(url, tmp_path)
    check_v2_upgraded(url)


def test_settings_written_by_a_schema_2_process_after_the_upgrade_read_with_their_rule(store):
    """During a rolling deploy a process of schema 2 may still write settings without the rule."""
    token, _ = store.create(content())
    old = json.loads(content().settings.to_json())
    for key in ("vote", "centroid_weight", "centred"):
        del old[key]
    with store.engine.begin() as conn:
        conn.execute(projects.update().values(settings=json.dumps(old)))
    loaded = store.open(token)
    assert rule(loaded.classifier) == LEGACY_RULE and loaded.settings.k == 5


def test_a_new_project_stores_the_new_rule(store):
    settings = ProjectSettings("mobilenet_v2_1.0_224")
    assert (settings.vote, settings.centroid_weight, settings.centred) == ("blend", 0.3, True)
    clf = KNNClassifier(vote="blend", centroid_weight=0.3, centred=True)
    clf.add_class("rock")
    token, _ = store.create(Content(clf.state(), settings))
    assert rule(store.open(token).classifier) == ("blend", 0.3, True)


def test_a_newer_schema_is_refused_and_left_alone(db_url):
    engine = engine_for(db_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(schema_version.update().values(version=SCHEMA_VERSION + 1))
    store = ProjectStore(db_url, sweep=False)
    with pytest.raises(SchemaTooNew, match=f"schema version {SCHEMA_VERSION + 1}.*update the app"):
        store.ready()
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema_version.c.version)).scalar_one() == SCHEMA_VERSION + 1
    engine.dispose()


def test_a_corrupt_sqlite_file_is_a_clear_error(tmp_path):
    url = sqlite_url(tmp_path)
    (tmp_path / "projects.sqlite3").write_bytes(b"this is not a database, it is a damaged file" * 100)
    store = ProjectStore(url, sweep=False)
    with pytest.raises(StoreUnavailable, match="damaged"):
        store.create(content())


def test_the_data_folder_is_private(tmp_path):
    sqlite_url(tmp_path / "new" / "knn")
    assert (tmp_path / "new" / "knn").stat().st_mode & 0o777 == 0o700


def test_an_unreachable_postgresql_is_a_clear_error():
    from harness.processes import free_port

    store = ProjectStore(f"postgresql://postgres@127.0.0.1:{free_port()}/none", sweep=False)
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        store.ready()
