"""The private link on the page (ui/links.py, ui/views/saving.py), through Streamlit's AppTest: a
bare visit stores nothing, the first change puts the link in the URL, the link opens the project
in a new browser session, a link that opens nothing is dropped and said, and a server with saving
off says so. The projects go to the test run's temporary folder (tests/conftest.py); the browser
tests (tests/test_projects.py) walk the same paths in Chromium."""

from __future__ import annotations

import pytest

from knn.live.session import LiveSession
from tests.test_app import APP, BLUE, RED, counts, model_built, photo, show_camera, text


@pytest.fixture()
def new_visit(camera_calls, monkeypatch):
    """A new browser session on the page, with `query` as its URL's parameters."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("KNN_ICE_SERVERS", "[]")

    def visit(**query: str):
        model_built()  # the page draws while it loads (tests/test_first_visit.py); these tests teach
        at = AppTest.from_file(APP, default_timeout=300)
        at.query_params.update(query)
        at.run()
        assert not at.exception, at.exception
        return at

    return visit


@pytest.fixture()
def camera_calls(monkeypatch):
    import streamlit_webrtc

    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", lambda **kwargs: None)


def saying(at) -> str:
    """What the page says under its title about where the work is kept."""
    return " ".join(text(at.info) + text(at.caption) + text(at.warning) + text(at.error))


def test_a_bare_visit_stores_nothing_and_says_what_will_be_kept(new_visit):
    at = new_visit()
    assert "project" not in at.query_params
    assert "Saved on this server from your first change" in saying(at)
    assert "anyone with it can open and change the project" in saying(at)
    live: LiveSession = at.session_state.live
    assert live.save_state.kind == "new" and live.project_token is None


def test_the_first_change_puts_the_link_in_the_url_and_it_opens_the_project(new_visit):
    at = new_visit()
    show_camera(at, photo(RED))
    at.button(key="add_0").click().run()
    token = at.session_state.live.project_token
    assert token and at.query_params["project"] == token
    assert "Saved on this server." in saying(at)

    again = new_visit(project=token)  # a reload, or the link in another browser
    assert any(m.startswith("Opened the project: 3 classes, 1 example ") for m in text(again.success))
    assert counts(again) == ["1 example", "0 examples", "0 examples"]
    assert again.session_state.live.project_token == token and again.query_params["project"] == token
    # The first tab finds out by itself that the newer one edits now, and turns its edit widgets off.
    at.session_state.live._saver._check()  # what its saver does every CHECK_SECONDS while idle
    at.run()
    assert "This project is open in another tab, so this one stopped saving" in saying(at)
    assert at.button(key="add_0").disabled and at.button(key="edit_here")


def test_a_share_link_gives_a_copy_stored_under_a_new_link(new_visit):
    owner = new_visit()
    show_camera(owner, photo(BLUE))
    owner.button(key="add_1").click().run()
    owner.button(key="share").click().run()
    shared = owner.session_state.share_link
    visitor = new_visit(share=shared)
    assert any(m.startswith("Opened a copy of a shared project") for m in text(visitor.success))
    assert "project" not in visitor.query_params  # nothing stored on a bare visit of a share link
    visitor.button(key="add_class").click().run()
    mine = visitor.query_params["project"]
    assert mine not in (shared, owner.session_state.live.project_token) and "share" not in visitor.query_params


def test_a_link_that_opens_nothing_is_dropped_and_said(new_visit):
    at = new_visit(project="A" * 32)
    assert any("There is no project at this link" in m for m in text(at.warning))
    assert "project" not in at.query_params and counts(at) == ["0 examples"] * 3


def test_with_saving_off_the_page_says_so(new_visit, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("KNN_STORE", "0")
    st.cache_resource.clear()  # the settings and the store are read once per process: again
    try:
        at = new_visit(project="A" * 32)
        assert "Saving is off on this server" in saying(at)
        assert "Projects are not saved on this server, so a project link cannot be opened." in text(at.warning)
        show_camera(at, photo(RED))
        at.button(key="add_0").click().run()
        assert at.query_params["project"] == "A" * 32 and counts(at)[0] == "1 example"  # no new link
    finally:
        monkeypatch.delenv("KNN_STORE")
        st.cache_resource.clear()


def test_forget_asks_first_then_deletes_the_project_and_drops_its_link(new_visit):
    at = new_visit()
    show_camera(at, photo(RED))
    at.button(key="add_0").click().run()
    token = at.query_params["project"]
    at.button(key="forget_ask").click().run()
    assert any("Delete this project from the server **now**?" in w.value for w in at.warning)
    at.button(key="forget_cancel").click().run()  # kept
    assert at.query_params["project"] == token and not at.button(key="forget_ask").disabled
    at.button(key="forget_ask").click().run()
    at.button(key="forget").click().run()
    assert "project" not in at.query_params and counts(at) == ["0 examples"] * 3
    assert any(m.startswith("Forgotten: this project was deleted from the server") for m in text(at.success))
    assert any("There is no project at this link" in m for m in text(new_visit(project=token).warning))
