"""Two app processes behind HAProxy with sticky sessions, as deploy/ ships it, driven live.

`Balancer` runs haproxy with deploy/haproxy/haproxy.cfg itself (its addresses from the
environment) in front of two `streamlit run app.py` processes on loopback. Four browser contexts
(four users) open the balancer's address. Each must stay on one process (the cookie HAProxy
inserts): its page, WebSocket, the WebRTC offer, its uploads and a project restore all have to
reach the process that holds its Streamlit session, or the upload or the camera would fail. The
processes' metrics files (knn.serving.metrics) say which LiveSessions each one holds and what
they did. Slow (about two minutes): marked `browser`. Skips with a message if haproxy is absent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import knn
from harness.app_server import AppServer
from harness.balancer import Balancer
from harness.browser import CHROMIUM, Page, launch, skip_without_chromium
from harness.processes import find_binary
from knn.core.images import encode_jpeg
from knn.model.choice import choose_backbone

pytestmark = pytest.mark.browser

RESTORED = ["rock (restored)", "scissors (restored)"]


@pytest.fixture(scope="module")
def chromium() -> Path:
    skip_without_chromium()
    if find_binary(Balancer.BINARY) is None:
        pytest.skip("haproxy is absent: the balancer test needs it (apt-get install haproxy; .ci/run does)")
    return CHROMIUM


@pytest.fixture(scope="module")
def project(photos, tmp_path_factory) -> Path:
    """A project file of two classes, made with the backbone the app starts with (images stored too)."""
    embedder = knn.Embedder(choose_backbone().backbone)
    clf = knn.KNNClassifier(k=3)
    for label, name in zip(("rock", "scissors"), RESTORED, strict=True):
        for path in photos[label][70:73]:
            image = knn.read_image(path)
            clf.add(embedder.embed_one(image), name, image=encode_jpeg(image))
    path = tmp_path_factory.mktemp("project") / "class-project.npz"
    knn.save_project(path, clf, embedder)
    return path


@dataclass
class User:
    """One browser context through the balancer: the process it is pinned to and its LiveSession there."""

    context: object
    page: Page
    server: str
    session: int


def sessions(app: AppServer) -> dict[int, dict]:
    snap = app.metrics()  # None before the process ran its first page
    return {} if snap is None else {s["id"]: s for s in snap["sessions"]}


def open_user(browser, lb: Balancer) -> User:
    before = {name: set(sessions(app)) for name, app in lb.names.items()}
    context = browser.new_context(viewport={"width": 1400, "height": 1050})
    page = Page(context.new_page(), lb.url)
    server = lb.server_of(context)
    snap = lb.names[server].wait_metrics(
        lambda m: {s["id"] for s in m["sessions"]} - before[server], f"the new session on {server}", 60
    )
    (session,) = {s["id"] for s in snap["sessions"]} - before[server]
    return User(context, page, server, session)


def state(lb: Balancer, user: User) -> dict | None:
    return sessions(lb.names[user.server]).get(user.session)


def test_four_users_over_two_processes_each_stay_on_theirs(chromium, rock_video, photos, project, tmp_path):
    from playwright.sync_api import sync_playwright

    with (
        AppServer(metrics=True, log=tmp_path / "app1.log") as one,
        AppServer(metrics=True, log=tmp_path / "app2.log") as two,
        Balancer([one, two]) as lb,
        sync_playwright() as p,
    ):
        browser = launch(p, rock_video)
        try:
            users = [open_user(browser, lb) for _ in range(4)]
            placement = [u.server for u in users]
            print(f"users on {placement}")
            assert set(placement) == {"app1", "app2"}, placement  # each process serves some
            for u in users:
                u.page.start_camera()
            for u in users:  # each camera's frames reach the process that holds its session
                base = state(lb, u)["frames_processed"]
                lb.names[u.server].wait_metrics(
                    lambda m, u=u, base=base: any(
                        s["id"] == u.session and s["frames_processed"] > base + 10 for s in m["sessions"]
                    ),
                    f"frames of the user on {u.server}",
                    60,
                )

            camera, uploader, restorer, idle = users
            camera.page.page.bring_to_front()
            camera.page.add(slot=0, times=3)
            uploader.page.page.bring_to_front()
            uploader.page.upload(slot=1, files=photos["paper"][60::15])
            restorer.page.page.bring_to_front()
            restorer.page.restore_project(project, RESTORED)
            uploads = len(photos["paper"][60::15])

            # Each session holds exactly what its own user did, on its own process.
            expected = [3, uploads, 2 * 3, 0]
            for u, n in zip(users, expected, strict=True):  # (the metrics are written once a second)
                lb.names[u.server].wait_metrics(
                    lambda m, u=u, n=n: any(s["id"] == u.session and s["examples"] == n for s in m["sessions"]),
                    f"{n} examples in the session of the user on {u.server}",
                    20,
                )
            idle.page.page.bring_to_front()
            assert [idle.page.count(s) for s in range(3)] == [0, 0, 0]
            assert idle.page.prediction() == "no examples"
            assert restorer.page.class_names() == RESTORED
            assert camera.page.class_names() == ["Class 1", "Class 2", "Class 3"]
            uploader.page.page.bring_to_front()
            assert [uploader.page.count(s) for s in range(3)] == [0, uploads, 0]
            camera.page.page.bring_to_front()
            camera.page.wait_for(lambda: camera.page.prediction() == "Class 1", "the camera user's prediction", 30)
            camera.page.page.mouse.move(1380, 20)  # no tooltip over the page
            time.sleep(3.0)  # the live panel's rates settle
            camera.page.page.screenshot(path=str(tmp_path / "balancer.png"), full_page=True)
            print(f"screenshot: {tmp_path / 'balancer.png'}")
            # No request strayed: each process holds the sessions of its own users and no other
            # (a page or WebSocket that reached the other process would have made a session there).
            for name, app in lb.names.items():
                assert sorted(sessions(app)) == sorted(u.session for u in users if u.server == name), name
        finally:
            browser.close()
            (tmp_path / "haproxy.log").write_text(lb.log())  # kept beside the apps' logs
        assert " is DOWN" not in lb.log(), lb.log()[-3000:]  # no process missed its health checks
        routed = {name: lb.log().count(f"streamlit/{name} ") for name in lb.names}
        assert all(routed.values()), (routed, lb.log()[-2000:])
