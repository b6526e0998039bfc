"""What a user sees, in the real page and headless Chromium with a fake webcam (harness.browser).

- The camera keeps streaming through every action the page offers: one walk through all of them,
  checking after each that the server keeps processing this tab's frames, that START never shows
  and that the camera component was never remounted (a remount drops the WebRTC connection).
- Messages stay until the next action.
- Keys 1-9 add to class n and Shift+1-9 record, but not while typing in a text box.
- The coach, with real photos: photos filed under the wrong class are flagged and fixed in one
  click, a class taught with another class's photos is named as a confused pair.
- At a phone's size the camera, the Add buttons and the prediction are reachable without the
  sidebar, and the camera can be switched (front/back) while it streams.

Slow (a few minutes: it builds a model file and switches the backbone's input size): `browser`.
Set KNN_UI_SHOTS=folder to keep a screenshot after every step of the walk. The coach's and the
phone's scenes are README's screenshots (harness.scenes; `python -m harness.screenshots` writes
them); here they go to the test's temporary folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.app_server import AppServer, serve_app
from harness.browser import Page, launch, skip_without_chromium
from harness.scenes import COACH_VIEWPORT, DESKTOP, PHONE, PHONE_CONTEXT, tap_to_add, teach_with_mislabelled_photos

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(rps_dir):
    skip_without_chromium()
    yield from serve_app(metrics=True, metrics_interval=0.5)


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


class User:
    """One tab as a user drives it, and its LiveSession's counters on the server."""

    def __init__(self, app: AppServer, browser, viewport: dict, **context):
        before = app.session_ids()
        self.app = app
        self.context = browser.new_context(viewport=viewport, accept_downloads=True, **context)
        self.tab = Page(self.context.new_page(), app.url)
        self.page = self.tab.page
        snap = app.wait_metrics(lambda m: {s["id"] for s in m["sessions"]} - before, "the tab's session", 60)
        (self.sid,) = {s["id"] for s in snap["sessions"]} - before

    def processed(self) -> int:
        return (self.app.session(self.sid) or {}).get("frames_processed", 0)

    def examples(self) -> int:
        return (self.app.session(self.sid) or {}).get("examples", 0)

    def start(self) -> None:
        self.tab.start_camera()
        self.tab.mark_camera()

    def streaming(self, what: str, seconds: float = 60, frames: int = 10) -> None:
        """The camera streams on: this session processes `frames` more frames, START is not shown
        and the component is the one started (never remounted)."""
        start = self.processed()
        self.tab.wait_for(lambda: self.processed() >= start + frames, f"frames after {what}", seconds)
        assert not self.tab.camera_stopped(), f"START shows again after {what}"
        assert self.tab.camera_unmoved(), f"the camera component was remounted by {what}"

    def text(self, selector: str) -> str:
        return self.page.locator(selector).first.inner_text()

    def visible(self, text: str) -> bool:
        return self.page.get_by_text(text).first.is_visible()

    def close(self) -> None:
        self.context.close()


class Walk:
    """Each action in turn, then: the camera still streams. Screenshots in $KNN_UI_SHOTS."""

    def __init__(self, user: User):
        self.user = user
        self.shots = Path(os.environ["KNN_UI_SHOTS"]) if os.environ.get("KNN_UI_SHOTS") else None
        self.done: list[str] = []

    def step(self, name: str, action, seconds: float = 60) -> None:
        action()
        self.user.streaming(name, seconds)
        self.done.append(name)
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.user.page.screenshot(path=str(self.shots / f"{len(self.done):02d}-{name.replace(' ', '-')}.png"))


def test_every_action_keeps_the_camera_streaming(app, playwright, rock_video, photos, tmp_path):
    browser = launch(playwright, rock_video)
    try:
        user = User(app, browser, DESKTOP)
        tab, page = user.tab, user.page
        user.start()
        walk = Walk(user)

        walk.step("Add", lambda: tab.add(0, 3))
        walk.step("Record", lambda: record(user, 0))
        walk.step("upload images", lambda: tab.upload(1, photos["paper"][60:120:10]))
        walk.step("a refused upload", lambda: refused_upload(user, tmp_path, photos["paper"][61]))
        walk.step("rename", lambda: tab.rename(0, "fist"))
        walk.step("add a class", lambda: add_class(user))
        walk.step("upload to the new class", lambda: tab.upload(3, photos["scissors"][60:62]))
        walk.step("clear a class", lambda: class_menu(user, 3, "clear", lambda: tab.count(3) == 0))
        walk.step(
            "delete a class", lambda: class_menu(user, 3, "delete", lambda: not page.locator(".st-key-class_3").count())
        )
        tab.sidebar_section("Settings")
        walk.step("k", lambda: number(user, "k", 5))
        walk.step("threshold", lambda: slide(user, "threshold", 3))
        walk.step("record length", lambda: slide(user, "record_seconds", 2))
        walk.step("mirror", lambda: page.locator(".st-key-mirror label").first.click())
        walk.step("backbone switch", lambda: switch_input(user, "accurate", "320"), seconds=240)
        tab.sidebar_section("Project")
        saved = tmp_path / "project.npz"
        walk.step("download project", lambda: download(user, "download_project", saved))
        walk.step("restore a project", lambda: restore(user, saved, "Restored project.npz"))
        broken = tmp_path / "broken.npz"
        broken.write_bytes(b"PK\x03\x04 not a project")
        walk.step("restore a damaged project", lambda: restore(user, broken, "Could not restore broken.npz"))
        # The error stays: reruns come and go (the live panel redraws every second), it does not.
        tab.wait_runs(4, "the error on screen")
        assert user.visible("Could not restore broken.npz"), "the error vanished before the next action"
        walk.step("build a model file", lambda: build_model(user), seconds=240)
        walk.step("download the model file", lambda: download(user, "download_export", tmp_path / "model.keras"))
        assert not user.visible("Could not restore broken.npz")  # the next action cleared it
        walk.step("Evaluation tab", lambda: open_tab(user, "Evaluation", "Leave-one-out accuracy"))
        walk.step("Examples tab", lambda: open_tab(user, "Examples", "Examples of"))
        walk.step("delete one example", lambda: delete_example(user))
        assert len(walk.done) == 22
    finally:
        browser.close()


# ---- the actions ---------------------------------------------------------------------------------


def record(user: User, slot: int) -> None:
    before = user.tab.count(slot)
    user.tab.button(f"record_{slot}").click()
    user.tab.wait_for(lambda: user.visible("Recording into"), "the recording's progress bar", 20)
    user.tab.wait_for(
        lambda: not user.visible("Recording into") and user.tab.count(slot) > before + 5,
        "the recorded frames on the card",
        30,
    )


def refused_upload(user: User, folder: Path, good: Path) -> None:
    notes = folder / "notes.jpg"
    notes.write_text("this is text, not a photo")
    before = user.tab.count(1)
    user.page.locator('.st-key-class_1 input[type="file"]').set_input_files([str(notes), str(good)])
    user.tab.wait_for(
        lambda: user.tab.count(1) == before + 1 and user.visible("Refused: notes.jpg"),
        "one image added and notes.jpg refused",
        60,
    )


def add_class(user: User) -> None:
    cards = user.page.locator('[class*="st-key-class_"]').count()
    user.tab.button("add_class").click()
    user.tab.wait_for(lambda: user.page.locator('[class*="st-key-class_"]').count() == cards + 1, "a new card", 20)


def class_menu(user: User, slot: int, item: str, done) -> None:
    """An item of a class card's … menu (it may still be open from the last one)."""
    if not user.page.locator(f".st-key-{item}_{slot} button:visible").count():
        user.page.locator(f".st-key-class_{slot} [data-testid='stPopover'] button").first.click()
    user.tab.button(f"{item}_{slot}").click()
    user.tab.wait_for(done, f"{item} of class {slot + 1}", 20)
    user.page.keyboard.press("Escape")  # the menu stays open otherwise


def number(user: User, key: str, value: int) -> None:
    box = user.page.locator(f".st-key-{key} input")
    box.fill(str(value))
    box.press("Enter")
    user.tab.wait_for(lambda: box.input_value() == str(value), f"{key} = {value}", 20)
    user.tab.wait_runs(2, f"the run that sets {key}")


def slide(user: User, key: str, steps: int) -> None:
    handle = user.page.locator(f".st-key-{key} input[type='range']").first
    before = handle.input_value()
    handle.focus()
    for _ in range(steps):
        handle.press("ArrowRight")
    user.tab.wait_for(lambda: handle.input_value() != before, f"{key} moved", 20)
    user.tab.wait_runs(2, f"the run that sets {key}")


def switch_input(user: User, mode: str, size: str) -> None:
    user.page.locator(".st-key-resolution label", has_text=mode).first.click()
    user.tab.wait_for(
        lambda: f"{mode} input ({size} px)" in user.text(".st-key-live_prediction"),
        f"the live panel saying {mode} input",
        240,
    )


def download(user: User, key: str, path: Path) -> None:
    with user.page.expect_download(timeout=120_000) as info:
        user.tab.button(key).click()
    info.value.save_as(path)
    assert path.stat().st_size > 1000


def restore(user: User, path: Path, says: str) -> None:
    user.page.locator('[data-testid="stSidebar"] input[type="file"][accept*="npz"]').set_input_files(str(path))
    user.tab.wait_for(lambda: user.visible(says), says, 120)


def build_model(user: User) -> None:
    user.tab.button("build_export").click()
    user.tab.wait_for(
        lambda: user.page.locator(".st-key-download_export button:visible").count() > 0,
        "the model file's download button",
        240,
    )


def open_tab(user: User, name: str, shows: str) -> None:
    user.page.locator('[data-testid="stTab"]', has_text=name).first.click()
    user.tab.wait_for(lambda: user.visible(shows), f"the {name} tab", 60)


def delete_example(user: User) -> None:
    before = user.examples()
    user.page.locator('[class*="st-key-delete_example_"] button:visible').first.click()
    user.tab.wait_for(lambda: user.examples() == before - 1, "one example fewer", 20)


def test_keys_add_and_record_but_not_while_typing(app, playwright, rock_video):
    browser = launch(playwright, rock_video)
    try:
        user = User(app, browser, DESKTOP)
        tab, page = user.tab, user.page
        user.start()
        # After START the focus is in the camera's frame: a click on the page gives it back to the
        # page's shortcuts, as a user's click would.
        page.locator("h1").first.click()
        page.keyboard.press("1")
        tab.wait_for(lambda: tab.count(0) == 1, "key 1 adding to Class 1", 20)
        page.keyboard.press("2")
        tab.wait_for(lambda: tab.count(1) == 1, "key 2 adding to Class 2", 20)
        page.keyboard.press("Shift+1")
        tab.wait_for(lambda: user.visible("Recording into “Class 1”"), "Shift+1 recording into Class 1", 20)
        tab.wait_for(lambda: not user.visible("Recording into") and tab.count(0) > 5, "the recorded frames", 30)
        recorded = tab.count(0)
        box = page.locator(".st-key-name_2 input")
        box.click()
        box.press_sequentially("12!3")  # digits and Shift+1 while typing: text, not shortcuts
        assert box.input_value() == "Class 312!3"
        tab.wait_runs(3, "the runs after typing")
        assert [tab.count(s) for s in range(3)] == [recorded, 1, 0] and not user.visible("Recording into")
        user.streaming("the keys")
    finally:
        browser.close()


def test_the_coach_flags_photos_of_another_class_and_fixes_them_in_one_click(
    app, playwright, rock_video, photos, tmp_path
):
    """A fist taught with photos and from the camera, paper photos uploaded with two fist photos
    among them, and a class "open hand" taught with paper photos too."""
    browser = launch(playwright, rock_video)
    try:
        user = User(app, browser, COACH_VIEWPORT)
        tab, page = user.tab, user.page
        user.start()
        coach = page.locator(".st-key-coach")
        try:
            cards = teach_with_mislabelled_photos(tab, photos)
        finally:
            if os.environ.get("KNN_UI_SHOTS"):
                page.screenshot(path=os.path.join(os.environ["KNN_UI_SHOTS"], "coach.png"))
                tab.sidebar_section("Project")
                download(user, "download_project", Path(os.environ["KNN_UI_SHOTS"]) / "coach.npz")
        tips = coach.inner_text()
        assert "look mislabelled" in tips, tips
        pair = next(line for line in tips.splitlines() if "are nearer to" in line)
        assert "“paper”" in pair and "“open hand”" in pair and "add more varied examples of both" in pair
        paper_card = page.locator(".st-key-class_1 [data-testid='stCaptionContainer']").first.inner_text()
        assert paper_card.startswith("12 examples · ") and "recognised" in paper_card
        page.mouse.move(1380, 10)
        time.sleep(2.5)  # the rates settle (they are measured over 2 s)
        page.screenshot(path=str(tmp_path / "screenshot.png"))
        print(f"screenshot: {tmp_path / 'screenshot.png'}")
        for moved in (1, 2):
            cards.first.locator("button:visible", has_text="Move to “fist”").click()
            tab.wait_for(lambda moved=moved: tab.count(0) == 13 + moved, f"photo {moved} moved to fist", 20)
        tab.wait_for(lambda: tab.count(1) == 10 and cards.count() == 0, "no more fist photos in paper", 60)
        user.streaming("the coach's moves")
    finally:
        browser.close()


def test_a_phone_reaches_camera_buttons_and_prediction_and_switches_camera(app, playwright, tmp_path):
    """390 x 844, touch, several cameras (a phone's front and back): no sidebar needed, and
    switching the camera while it streams keeps the stream."""
    browser = launch(playwright, None, cameras=3)
    try:
        user = User(app, browser, **PHONE_CONTEXT)
        tab, page = user.tab, user.page
        sidebar = page.locator('[data-testid="stSidebar"]').bounding_box()
        assert sidebar is None or sidebar["x"] + sidebar["width"] <= 1, sidebar  # folded away, off the screen
        user.start()
        for slot in range(3):
            button = tab.button(f"quick_add_{slot}")
            box = button.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
            assert not button.locator("kbd").first.is_visible()  # no keyboard hints on a touch screen
        tap_to_add(tab)
        tab.wait_for(lambda: user.examples() == 1, "a tap adding a frame", 20)
        time.sleep(1)  # the caption on the video shows it
        page.screenshot(path=str(tmp_path / "phone.png"))  # the camera and its buttons, at the top
        print(f"screenshot: {tmp_path / 'phone.png'}")
        page.locator(".st-key-live_prediction").scroll_into_view_if_needed()
        assert page.locator(".st-key-live_prediction").is_visible()
        # While it streams, the camera component has a camera menu beside its on/off button that
        # lists the phone's cameras (front and back) and swaps the track in the running connection.
        # Chromium's second fake camera is a 16-bit depth camera that cannot be encoded; its third
        # is an ordinary one.
        page.locator(".st-key-quick").scroll_into_view_if_needed()
        chooser = tab._component().locator('select[aria-label="Select camera"]')
        chooser.locator("option").nth(2).wait_for(state="attached", timeout=20_000)
        chooser.select_option(label="fake_device_2")
        user.streaming("switching the camera")
    finally:
        browser.close()
