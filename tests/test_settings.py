"""knn.serving.settings: one object from the environment; bad values named, defaults kept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from knn.serving.settings import MAX_VIDEO_BITRATE, VARIABLES, Settings, SettingsError
from tests.frames import wait_until

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_without_any_variable():
    s = Settings.from_env({})
    assert (s.threads, s.gc_seconds, s.max_bitrate, s.metrics_file, s.metrics_interval) == (
        None,
        30.0,
        MAX_VIDEO_BITRATE,
        None,
        1.0,
    )
    assert s.steady is True
    assert s.problems == ()
    assert s.ice_server_list() is None  # streamlit-webrtc chooses (knn.serving.ice)
    assert s.ice_transport_policy == "all"


def test_every_variable_is_read():
    turn = [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "c"}]
    s = Settings.from_env(
        {
            "KNN_ICE_SERVERS": json.dumps(turn),
            "KNN_THREADS": "1",
            "KNN_GC_SECONDS": "2.5",
            "KNN_MAX_BITRATE": "0",
            "KNN_METRICS_FILE": "/tmp/m.json",
            "KNN_METRICS_INTERVAL": "0.5",
            "KNN_ICE_TRANSPORT_POLICY": "Relay",
            "KNN_STEADY": "0",
            "KNN_UDP_DRAIN": "8",
        }
    )
    assert s.ice_server_list() == turn and s.ice_transport_policy == "relay"
    assert s.steady is False and s.udp_drain == 8
    assert (s.threads, s.gc_seconds, s.max_bitrate, s.metrics_file, s.metrics_interval) == (
        1,
        2.5,
        0,
        Path("/tmp/m.json"),
        0.5,
    )
    assert Settings.from_env({"KNN_ICE_SERVERS": "[]"}).ice_server_list() == []  # loopback


def test_a_secret_comes_before_the_environment():
    s = Settings.from_env({"KNN_ICE_SERVERS": "[]"})
    assert s.ice_server_list(secret=[{"urls": "stun:a.example:3478"}]) == [{"urls": "stun:a.example:3478"}]
    with pytest.raises(SettingsError, match="list of"):
        s.ice_server_list(secret={"urls": "stun:x"})


def test_relay_only_needs_a_turn_server():
    stun = json.dumps([{"urls": "stun:stun.example.org:3478"}])
    s = Settings.from_env({"KNN_ICE_SERVERS": stun, "KNN_ICE_TRANSPORT_POLICY": "relay"})
    (problem,) = s.problems
    assert "KNN_ICE_TRANSPORT_POLICY='relay' is ignored" in problem and "no turn:" in problem
    assert s.ice_transport_policy == "all"
    relay = Settings.from_env({"KNN_ICE_TRANSPORT_POLICY": "relay"})
    assert relay.problems == () and relay.ice_server_list() is None  # a provider's TURN may come
    with pytest.raises(SettingsError, match="no turn: or turns: URL"):
        relay.ice_server_list(secret=json.loads(stun))
    turns = [{"urls": "turns:turn.example.org:5349?transport=tcp", "username": "u", "credential": "c"}]
    assert relay.ice_server_list(secret=turns) == turns


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("KNN_ICE_SERVERS", "{not json", "not valid JSON"),
        ("KNN_ICE_SERVERS", '{"urls": "stun:x"}', "list of"),
        ("KNN_THREADS", "two", "whole number"),
        ("KNN_THREADS", "0", "at least 1"),
        ("KNN_GC_SECONDS", "-1", "at least"),
        ("KNN_MAX_BITRATE", "fast", "whole number"),
        ("KNN_ICE_TRANSPORT_POLICY", "turn", "one of all, relay"),
        ("KNN_STEADY", "yes", "0 or 1"),
        ("KNN_STORE", "on", "0 or 1"),
        ("KNN_PROJECT_TTL", "a month", "duration"),
        ("KNN_PROJECT_TTL", "10s", "at least 60 seconds"),
        ("KNN_STORE_QUOTA", "lots", "size"),
    ],
)
def test_a_bad_value_is_named_and_its_default_kept(name, value, words):
    s = Settings.from_env({name: value})
    (problem,) = s.problems
    assert problem.startswith(f"{name}={value!r} is ignored") and words in problem
    assert s == Settings()


def test_readme_lists_every_variable():
    text = README.read_text()
    listed = set(re.findall(r"`(KNN_[A-Z_]+)`", text))
    assert {name for name, _, _ in VARIABLES} <= listed


def test_the_project_store_settings():
    s = Settings.from_env(
        {
            "KNN_STORE": "0",
            "KNN_DATA_DIR": "~/knn-data",
            "KNN_DATABASE_URL": "postgresql://knn:secret@db.example.org/knn",
            "KNN_PROJECT_TTL": "12h",
            "KNN_STORE_QUOTA": "500MB",
        }
    )
    assert s.problems == ()
    assert (s.store, s.data_dir, s.project_ttl, s.store_quota) == (False, Path.home() / "knn-data", 43200, 500 * 2**20)
    assert s.database_url == "postgresql://knn:secret@db.example.org/knn" and "secret" not in repr(s)
    assert Settings.from_env({"KNN_PROJECT_TTL": "7d"}).project_ttl == 7 * 86400
    assert Settings.from_env({"KNN_STORE_QUOTA": "2048"}).store_quota == 2048


def test_a_database_url_that_cannot_be_used_is_named_without_its_password():
    (problem,) = Settings.from_env({"KNN_DATABASE_URL": "mysql://knn:secret@db/knn"}).problems
    assert problem.startswith("KNN_DATABASE_URL=(the URL) is ignored") and "secret" not in problem


def test_the_project_store_follows_the_settings(tmp_path):
    from knn.serving.projects import project_store

    assert project_store(Settings(store=False)) is None
    store = project_store(Settings(data_dir=tmp_path / "data", project_ttl=3600, store_quota=10**6))
    assert store is project_store(Settings(data_dir=tmp_path / "data"))  # one per database
    assert store.where == "saved on this server" and (store.ttl, store.quota) == (3600, 10**6)
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    secret = project_store(Settings(data_dir=tmp_path / "data"), url="postgresql://u:pw@127.0.0.1:1/x")
    assert secret.where == "saved in the database" and "pw" not in secret.url
    # Each store was started at once: the file exists, migrated; the database that is away is named.
    wait_until(lambda: secret.problem is not None, 30, "the unreachable database's start to fail")
    assert "cannot be reached" in secret.problem and "pw" not in secret.problem
    assert store.problem is None and (tmp_path / "data" / "projects.sqlite3").is_file()
