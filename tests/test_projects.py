"""Projects on the page, as users keep them: the real app (SQLite in its own folder), headless
Chromium with the rock photos as camera, real uploads.

- What a user taught (Add, upload, a rename, a setting) comes back after a reload, and after a
  restart of the server at the same URL: classes, counts, thumbnails, settings.
- Two tabs on one link: the newest opener edits, the older one says so by itself, turns its edit
  widgets off and can take the project back; after Forget the URL loses the link, the page says
  the project is gone, and the old tab cannot bring it back.
- A share link opened in two browsers gives two independent projects; neither edit reaches the
  other or the original.
- Faults: `kill -9` of the server while a multi-file upload is taken and while Record commits:
  every example the page acknowledged is back, a batch is whole or absent; the store's quota
  reached (a clear message, the work kept in the tab); a damaged SQLite file (the page works and
  says it is not saving).

One server for the module, restarted where a test needs it (about 2 s). Slow: `browser`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.app_server import AppServer, serve_app
from harness.browser import Page, launch, skip_without_chromium
from knn.persist import ProjectStore, sqlite_url
from knn.persist.keys import key_hash

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 1050}


@pytest.fixture(scope="module")
def app(rps_dir, tmp_path_factory):
    skip_without_chromium()
    yield from serve_app(metrics=True, data_dir=tmp_path_factory.mktemp("projects"))


@pytest.fixture(scope="module")
def browser(app, rock_video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch(p, rock_video)
        try:
            yield chromium
        finally:
            chromium.close()


def user(browser, url: str) -> Page:
    """A new user (a browser context of its own) opening `url`."""
    return Page(browser.new_context(viewport=VIEWPORT).new_page(), url)


def database(app: AppServer) -> Path:
    return Path(app.data_dir) / "projects.sqlite3"


def stored_examples(app: AppServer, token: str) -> int | None:
    """Examples committed to the project behind `token` (read from the file); None: no such project."""
    with sqlite3.connect(f"file:{database(app)}?mode=ro", uri=True, timeout=10) as db:
        row = db.execute("SELECT id FROM projects WHERE key_hash = ?", (key_hash(token),)).fetchone()
        if row is None:
            return None
        return db.execute("SELECT count(*) FROM examples WHERE project_id = ?", row).fetchone()[0]


def linked(tab: Page) -> str:
    """The project's token, once the page put its link in the URL (after the first change)."""
    tab.wait_for(lambda: tab.param("project"), "the project's link in the URL", 30)
    token = tab.param("project")
    assert token
    return token


def opened(tab: Page, what: str = "Opened the project") -> None:
    """Wait until the tab says it opened the project and draws its class cards."""
    tab.wait_text(what, 90)
    tab.wait_for(lambda: tab.class_names() and len(tab.counts()) == len(tab.class_names()), "the class cards", 30)


def taught(tab: Page) -> dict:
    """What a user sees of their project: classes and counts, k, the first class's thumbnails."""
    tab.sidebar_section("Settings")
    k = tab.page.get_by_label("k: neighbors that vote").input_value()
    thumbnails = tab.page.locator('[data-testid="stTabs"] [data-testid="stImage"] img')
    tab.wait_for(lambda: thumbnails.count() == tab.counts()[0], "the first class's thumbnails", 30)
    drawn = thumbnails.evaluate_all("images => images.map(i => i.complete && i.naturalWidth > 0)")
    return {"classes": tab.class_names(), "counts": tab.counts(), "k": k, "thumbnails": drawn}


def test_what_a_user_taught_comes_back_after_a_reload_and_a_restart(app, browser, photos):
    tab = user(browser, app.url)
    tab.wait_text("Saved on this server from your first change")  # the notice before the first save
    assert tab.param("project") is None  # a bare visit stores nothing
    tab.start_camera()
    tab.rename(0, "fist")
    token = linked(tab)  # the first change stored the project
    tab.add(0, 2)
    tab.upload(1, photos["paper"][60:63])
    tab.sidebar_section("Settings")
    box = tab.page.get_by_label("k: neighbors that vote")
    box.fill("2")
    box.press("Enter")
    tab.wait_runs(2, "the new k")
    tab.wait_text("Saved on this server")
    seen = taught(tab)
    assert seen == {"classes": ["fist", "Class 2", "Class 3"], "counts": [2, 3, 0], "k": "2", "thumbnails": [True] * 2}

    tab.reload()
    opened(tab)
    assert taught(tab) == seen and tab.param("project") == token
    # The link is the page's URL: what the page requests carries no Referer (same origin, where a
    # browser would send the whole URL by default).
    with tab.page.expect_request("**/_stcore/referrer-probe") as probe:
        tab.page.evaluate("fetch('/_stcore/referrer-probe').catch(() => null)")
    assert "referer" not in probe.value.all_headers()

    app.restart()  # the same port and data folder: the same link
    tab.reload()
    opened(tab)
    assert taught(tab) == seen and tab.param("project") == token
    tab.start_camera()
    tab.wait_for(lambda: tab.prediction() == "fist", "the restored examples to answer", 60)
    tab.page.context.close()


def test_two_tabs_on_one_link_then_forget(app, browser):
    context = browser.new_context(viewport=VIEWPORT)
    first = Page(context.new_page(), app.url)
    first.start_camera()
    first.add(0, 1)
    token = linked(first)
    second = Page(context.new_page(), first.page.url)
    opened(second)

    # The older tab says so by itself, before its user tries anything, and its edit widgets are off.
    first.page.bring_to_front()
    first.wait_text("This project is open in another tab, so this one stopped saving", 30)
    assert first.button("add_0").is_disabled() and first.button("quick_add_0").is_disabled()
    first.button("edit_here").click()  # it takes the project back: the other tab stops
    opened(first)
    assert first.button("add_0").is_enabled()
    second.page.bring_to_front()
    second.wait_text("This project is open in another tab", 30)

    first.page.bring_to_front()
    first.sidebar_section("Project")
    first.button("forget_ask").click()
    first.button("forget").click()
    first.wait_text("Forgotten: this project was deleted from the server", 30)
    first.wait_for(lambda: first.param("project") is None, "the link to leave the URL", 30)
    assert stored_examples(app, token) is None
    first.wait_text("Saved on this server from your first change")  # a new, empty project here

    # The old tab is told, and nothing it does brings the project back.
    second.page.bring_to_front()
    second.wait_text("This project was forgotten, or expired: this tab stopped saving", 30)
    second.start_camera()
    before = second.counts()
    assert second.button("add_0").is_disabled()
    second.button("add_0").click(force=True)  # a disabled button: nothing happens
    second.page.keyboard.press("1")  # nor through its key
    second.wait_runs(3, "after the attempts to add")
    assert second.counts() == before and stored_examples(app, token) is None
    context.close()


def test_a_share_link_opened_twice_gives_two_independent_projects(app, browser, photos):
    owner = user(browser, app.url)
    owner.upload(0, photos["rock"][60:62])
    own = linked(owner)
    owner.sidebar_section("Project")
    owner.button("share").click()
    owner.wait_text("Share link made")
    link = owner.page.locator('[data-testid="stCode"]', has_text="share=").inner_text().strip()
    shared = link.split("share=")[1]

    visitors = [user(browser, link), user(browser, link)]
    for visitor in visitors:
        opened(visitor, "Opened a copy of a shared project")
        assert visitor.counts() == [2, 0, 0] and visitor.param("project") is None  # nothing stored yet
    visitors[0].button("add_class").click()
    visitors[0].wait_for(lambda: len(visitors[0].class_names()) == 4, "a fourth class", 30)
    visitors[1].upload(1, photos["paper"][60:62])
    tokens = [linked(v) for v in visitors]
    assert len({own, shared, *tokens}) == 4 and shared not in visitors[0].page.url

    def reopened(token: str) -> tuple[list[str], list[int]]:
        tab = user(browser, f"{app.url}/?project={token}")
        opened(tab)
        seen = tab.class_names(), tab.counts()
        tab.page.context.close()
        return seen

    assert reopened(tokens[0]) == (["Class 1", "Class 2", "Class 3", "Class 4"], [2, 0, 0, 0])
    assert reopened(tokens[1]) == (["Class 1", "Class 2", "Class 3"], [2, 2, 0])
    assert reopened(own) == (["Class 1", "Class 2", "Class 3"], [2, 0, 0])
    for tab in (owner, *visitors):
        tab.page.context.close()


def test_killed_during_a_multi_file_upload_every_acknowledged_example_is_back(app, browser, photos):
    tab = user(browser, app.url)
    tab.upload(0, photos["rock"][60:62])  # acknowledged: the card counts them
    token = linked(tab)
    sent = tab.files_sent()
    tab.uploader(1).set_input_files([str(p) for p in photos["paper"][60:68]])
    tab.wait_for(lambda: tab.files_sent() >= sent + 8, "the 8 files to reach the server", 60)
    app.kill()  # kill -9 while the page embeds and commits them (or just after)
    app.restart()
    tab.reload()
    opened(tab)
    counts = tab.counts()
    print(f"after the kill: {counts}")
    assert counts[0] == 2 and counts[1] in (0, 8), counts  # every acknowledged example; the batch whole or absent
    assert stored_examples(app, token) == sum(counts)
    tab.page.context.close()


def test_killed_during_a_record_every_committed_frame_is_back(app, browser):
    tab = user(browser, app.url)
    tab.start_camera()
    tab.add(0, 1)
    token = linked(tab)
    tab.button("record_0").click()  # 3 s of frames, committed every quarter second
    tab.wait_for(lambda: stored_examples(app, token) > 1, "a commit of the recording's frames", 30)
    committed = stored_examples(app, token)
    app.kill()
    app.restart()
    tab.reload()
    opened(tab)
    (recorded, _, _) = tab.counts()
    assert recorded >= committed and stored_examples(app, token) == recorded
    tab.page.context.close()


def test_a_full_store_keeps_the_work_in_the_tab_and_says_so(app, browser, photos):
    store = ProjectStore(sqlite_url(app.data_dir), sweep=False)
    used = store.used_bytes()
    store.close()
    app.restart(env={"KNN_STORE_QUOTA": str(used + 40_000)})  # room for about three more examples
    tab = user(browser, app.url)
    tab.upload(0, photos["rock"][60:62])
    token = linked(tab)
    tab.upload(1, photos["paper"][60:64])  # past the quota: refused before anything is written
    tab.wait_text("Not being saved: the server's storage for projects is full", 30)
    assert tab.counts() == [2, 4, 0]  # the work is kept in the tab
    assert stored_examples(app, token) == 2
    tab.page.context.close()


def test_a_damaged_database_leaves_the_page_working_and_saying_so(app, browser):
    """Last: it damages the module's database."""
    app.end()
    for name in ("projects.sqlite3-wal", "projects.sqlite3-shm"):
        (Path(app.data_dir) / name).unlink(missing_ok=True)
    database(app).write_bytes(b"this is not a database " * 1000)
    app.restart()
    tab = user(browser, app.url)
    tab.wait_text("Not being saved: the project database is damaged", 60)
    tab.start_camera()
    tab.add(0, 2)  # works, in the tab
    tab.wait_for(lambda: tab.prediction() == "Class 1", "the prediction", 30)
    assert "Not being saved: the project database is damaged" in tab.text() and tab.param("project") is None
    tab.page.context.close()
