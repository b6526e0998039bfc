"""The coach's trial of other settings in the real page (headless Chromium, a fake webcam streaming).

Two real-photo projects on the legacy rule (the k nearest examples, not centred: a project file of
that rule, restored with its classes and no examples), then taught by uploads, two batches per
class (tests.photo_batches):

- grocery's look-alike yoghurt cartons: "Try other settings" offers a rule with both accuracies,
  and one click switches to it (Settings shows the rule in use);
- red produce the legacy rule already separates: no offer, "Not enough evidence yet" and why.

Set KNN_UI_SHOTS=folder to keep a screenshot of the offer, the switch and the no-offer. Slow: `browser`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness.app_server import serve_app
from harness.browser import Page, launch, skip_without_chromium
from knn.core.classifier import KNNClassifier
from knn.core.project import save_project
from knn.model.backbones import DEFAULT_BACKBONE

from .photo_batches import photo_batches

pytestmark = pytest.mark.browser
TALL = {"width": 1400, "height": 2900}
"""A window tall enough for the camera and the coach at once."""

OFFER = re.compile(
    r"^(?P<rule>[^:\n]+): (?P<new>\d+)% vs now (?P<now>\d+)% \((?P<current>[^)]+)\) on your (?P<n>\d+) examples"
)


@pytest.fixture(scope="module")
def app(grocery):
    skip_without_chromium()
    yield from serve_app()


def legacy_project(path: Path, classes: list[str]) -> Path:
    """A project file of these classes, no examples yet, on the legacy rule."""
    clf = KNNClassifier(k=3, vote="examples", centred=False)
    for label in classes:
        clf.add_class(label)
    save_project(path, clf, DEFAULT_BACKBONE)
    return path


def teach(tab: Page, grocery: Path, name: str, folder: Path) -> dict[str, list[list[Path]]]:
    """Restore an empty legacy project of the set's classes, then upload each batch to its class."""
    batches = photo_batches(grocery, name)
    tab.restore_project(legacy_project(folder / f"{name}.npz", list(batches)), list(batches))
    for label, uploads in batches.items():
        slot = tab.slot(label)
        dropzones = tab.page.locator(f'.st-key-class_{slot} [data-testid="stFileUploaderDropzone"]')
        for files in uploads:
            # The run that took the last upload redraws the card with a new, empty uploader: wait for it.
            tab.wait_for(lambda zones=dropzones: tab.idle() and zones.count() <= 1, "the card's new uploader", 30)
            tab.upload(slot, files)
    return batches


def try_other_settings(tab: Page, key: str) -> str:
    """Press the coach's button; the text of what it found (the container `key`)."""
    button = tab.button("try_rules")
    tab.wait_for(button.is_visible, "the coach's button", 60)
    button.click()
    found = tab.page.locator(f".st-key-{key}")
    tab.wait_for(lambda: found.count() and found.first.is_visible() and tab.idle(), f"the coach's {key}", 90)
    return found.first.inner_text()


def shot(tab: Page, name: str) -> None:
    """With KNN_UI_SHOTS: the page, the camera at the top and the coach below it."""
    if not os.environ.get("KNN_UI_SHOTS"):
        return
    folder = Path(os.environ["KNN_UI_SHOTS"])
    folder.mkdir(parents=True, exist_ok=True)
    tab.page.locator("h1").first.scroll_into_view_if_needed()  # the camera at the top, the coach below
    tab.wait_for(tab.camera_live, "the camera streaming", 30)
    tab.page.screenshot(path=str(folder / f"{name}.png"))


def test_the_coach_offers_a_better_rule_only_where_one_is(app, grocery, rock_video, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p, rock_video)
        try:
            tab = Page(browser.new_page(viewport=TALL), app.url)
            tab.start_camera()
            teach(tab, grocery, "yoghurts", tmp_path)
            text = try_other_settings(tab, "rule_offer")
            offer = OFFER.search(text)
            assert offer, text
            assert int(offer["new"]) > int(offer["now"]) and offer["current"] == "nearest examples, not centred"
            assert int(offer["n"]) == 64 and "leaving out one batch at a time" in text
            shot(tab, "offer")
            tab.button("switch_rule").click()
            rule = offer["rule"][0].lower() + offer["rule"][1:]  # as it reads mid-sentence
            tab.wait_text(f"Now using {rule}")
            tab.sidebar_section("Settings")
            rule_in_use = tab.page.locator(".st-key-rule_in_use").first
            tab.wait_for(lambda: rule_in_use.inner_text().strip() == f"Vote: {rule}", "the rule in Settings", 30)
            assert not tab.page.locator(".st-key-switch_rule").count()  # the offer is gone with the switch
            shot(tab, "switched")
            assert tab.camera_live()

            teach(tab, grocery, "tomatoes", tmp_path)
            text = try_other_settings(tab, "rule_no_offer")
            assert text.startswith("Not enough evidence yet to change settings."), text
            assert "could be chance" in text or "does better" in text, text
            assert not tab.page.locator(".st-key-switch_rule").count()
            shot(tab, "no-offer")
            assert tab.camera_live()
        finally:
            browser.close()
