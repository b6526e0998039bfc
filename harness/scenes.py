"""What a user does for README's screenshots, step by step, in a `Page`. The browser tests walk
the same scenes and check them; `harness.screenshots` photographs them."""

from __future__ import annotations

from pathlib import Path

DESKTOP = {"width": 1400, "height": 1050}
COACH_VIEWPORT = {"width": 1400, "height": 1500}
PHONE = {"width": 390, "height": 844}
PHONE_CONTEXT = {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def rock_video(path: Path, photos: dict[str, list[Path]]) -> Path:
    """A fake webcam showing a fist: every sixth of the first 60 rock photos, 5 frames each
    (uploads in the scenes use the second half)."""
    from PIL import Image

    from .webcam import write_y4m

    return write_y4m(path, [Image.open(p) for p in photos["rock"][:60:6]], frames_per_image=5)


def teach_with_mislabelled_photos(page, photos: dict[str, list[Path]]):
    """A fist taught with photos and from the camera (which plays `rock_video`), paper photos
    uploaded with two fist photos among them, and a class "open hand" taught with paper photos too.
    Returns the coach's cards of the photos it finds mislabelled, once it has caught up."""
    for slot, name in enumerate(("fist", "paper", "open hand")):
        page.rename(slot, name)
    page.upload(0, photos["rock"][0:60:6])  # the photos the camera plays
    page.add(0, 3)
    wrong = photos["rock"][100:102]  # two similar fist photos, filed under paper by mistake
    page.upload(1, photos["paper"][60:120:6] + wrong)
    page.upload(2, photos["paper"][63:120:6])  # the same kind of photos as paper's
    coach = page.page.locator(".st-key-coach")
    cards = page.page.locator('[class*="st-key-suspect_card_"]', has_text="in “paper”, nearer to “fist”")
    page.wait_for(lambda: cards.count() == 2, "the two fist photos shown as mislabelled", 60)
    # the analysis of the last upload may still be running: its result redraws the page
    page.wait_for(lambda: "Updating for the examples" not in coach.inner_text(), "the coach to catch up", 60)
    return cards


def tap_to_add(page) -> None:
    """On a phone: tap the first class's quick Add while the camera streams."""
    page.button("quick_add_0").tap()
    page.wait_for(lambda: page.prediction() == "Class 1", "the prediction", 30)
