"""Processes are replaceable: projects in a real PostgreSQL, shared by app processes.

- Two app processes behind the shipped HAProxy config (deploy/haproxy/haproxy.cfg), one
  PostgreSQL; two users teach, one on each process. `kill -9` of one process: once each user's
  page has reconnected (to the other process, which starts them a new session from the link in
  their URL), their project is back with every acknowledged example. HAProxy's log never holds
  a project's link.
- PostgreSQL stopped mid-session: the page keeps working and says its work is not being saved,
  the camera keeps answering; once the database is back the tab catches up by itself, and its
  link opens everything it was taught meanwhile.

Skips with a message where Chromium, HAProxy or PostgreSQL is absent. Slow: `browser`.
"""

from __future__ import annotations

import pytest

from harness.app_server import AppServer
from harness.balancer import Balancer
from harness.browser import Page, launch, skip_without_chromium
from harness.processes import find_binary

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 1050}


@pytest.fixture(scope="module")
def cluster():
    from harness.postgres import Cluster, missing

    skip_without_chromium()
    if missing():
        pytest.skip(f"no PostgreSQL: {missing()}")
    cluster = Cluster().start()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def browser(cluster, rock_video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch(p, rock_video)
        try:
            yield chromium
        finally:
            chromium.close()


def opened(tab: Page) -> None:
    tab.wait_text("Opened the project", 120)
    tab.wait_for(lambda: tab.class_names() and len(tab.counts()) == len(tab.class_names()), "the class cards", 30)


def test_a_killed_process_behind_the_balancer_loses_no_acknowledged_example(cluster, browser, photos, tmp_path):
    if find_binary(Balancer.BINARY) is None:
        pytest.skip("haproxy is absent (apt-get install haproxy; .ci/run does)")
    database = {"KNN_DATABASE_URL": cluster.create_database()}
    with (
        AppServer(metrics=True, env=database, log=tmp_path / "app1.log") as one,
        AppServer(metrics=True, env=database, log=tmp_path / "app2.log") as two,
        Balancer([one, two]) as lb,
    ):
        contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
        users = [Page(context.new_page(), lb.url) for context in contexts]
        placement = [lb.server_of(context) for context in contexts]
        assert sorted(placement) == ["app1", "app2"], placement  # leastconn: one user on each
        camera, uploader = users
        camera.start_camera()
        camera.rename(0, "fist")
        camera.add(0, 3)
        uploader.upload(1, photos["paper"][60:64])
        uploader.rename(1, "paper")
        uploader.reload()  # the link opened by URL: its token goes through the balancer
        opened(uploader)
        taught = [(u.class_names(), u.counts()) for u in users]
        tokens = [u.param("project") for u in users]
        assert all(tokens) and taught == [
            (["fist", "Class 2", "Class 3"], [3, 0, 0]),
            (["Class 1", "paper", "Class 3"], [0, 4, 0]),
        ]

        victim = lb.names[placement[0]]
        victim.kill()  # kill -9 the camera user's process
        camera.page.bring_to_front()
        opened(camera)  # its page reconnected to the other process, which opened its link
        assert lb.server_of(contexts[0]) == placement[1]
        for user, seen, token in zip(users, taught, tokens, strict=True):
            user.page.bring_to_front()
            assert (user.class_names(), user.counts()) == seen and user.param("project") == token
        camera.start_camera()  # and the camera answers from the other process
        camera.wait_for(lambda: camera.prediction() == "fist", "the prediction on the other process", 60)
        log = lb.log()
    (tmp_path / "haproxy.log").write_text(log)
    assert "/?project=" not in log and not any(token in log for token in tokens), log[-2000:]
    assert " / " in log or " /" in log  # the page's requests are logged, by path only


def test_a_stopped_database_leaves_the_page_working_and_saying_so(cluster, browser, photos, tmp_path):
    with AppServer(metrics=True, env={"KNN_DATABASE_URL": cluster.create_database()}, log=tmp_path / "app.log") as app:
        tab = Page(browser.new_context(viewport=VIEWPORT).new_page(), app.url)
        tab.upload(0, photos["rock"][60:62])
        tab.wait_text("Saved in the database")
        token = tab.param("project")
        tab.start_camera()
        cluster.stop()
        try:
            tab.add(1, 2)  # the page keeps working
            tab.wait_text("Not being saved: the project database cannot be reached", 60)
            frames = app.next_metrics()["sessions"][0]["frames_processed"]
            app.wait_metrics(
                lambda m: m["sessions"][0]["frames_processed"] > frames + 10, "the camera to keep answering", 60
            )
        finally:
            cluster.start()
        tab.wait_text("Saved in the database", 60)  # caught up by itself: nothing to redo
        assert tab.param("project") == token
        other = Page(browser.new_context(viewport=VIEWPORT).new_page(), f"{app.url}/?project={token}")
        opened(other)
        assert other.counts() == [2, 2, 0]
