"""Regenerate README's screenshots from the real app, streaming a fake webcam made of real photos.

    python -m harness.screenshots            # writes docs/screenshot.png and docs/phone.png
    python -m harness.screenshots --out DIR  # somewhere else

It starts `streamlit run app.py`, plays the rock photos in ../shared as the camera, and performs
`harness.scenes`: on a desktop the coach's scene (three classes, two mislabelled photos), on a
phone one tap of the first class's Add. About half a minute on two cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from . import ROOT, SHARED, use_shared_weights
from .app_server import AppServer
from .browser import Page, launch
from .scenes import COACH_VIEWPORT, PHONE_CONTEXT, rock_video, tap_to_add, teach_with_mislabelled_photos

RATES_SECONDS = 2.5
"""The live panel's rates are measured over its last 2 s: a picture taken sooner shows them rising."""


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def desktop(browser, app: AppServer, photos: dict[str, list[Path]], out: Path) -> None:
    context = browser.new_context(viewport=COACH_VIEWPORT)
    try:
        page = Page(context.new_page(), app.url)
        page.start_camera()
        step("desktop: teaching three classes, two photos filed under the wrong one")
        teach_with_mislabelled_photos(page, photos)
        page.page.mouse.move(1380, 10)  # no tooltip over the page
        time.sleep(RATES_SECONDS)
        page.page.screenshot(path=str(out))
        step(f"wrote {out}")
    finally:
        context.close()


def phone(browser, app: AppServer, out: Path) -> None:
    context = browser.new_context(**PHONE_CONTEXT)
    try:
        page = Page(context.new_page(), app.url)
        page.start_camera()
        step("phone: one tap on the first class's Add")
        tap_to_add(page)
        time.sleep(1)  # the caption on the video catches up with the prediction
        page.page.screenshot(path=str(out))  # the camera and its buttons, at the top
        step(f"wrote {out}")
    finally:
        context.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for screenshot.png and phone.png")
    args = parser.parse_args(argv)
    rps = SHARED / "data" / "rps"
    if not rps.is_dir():
        raise SystemExit(f"{rps} is absent: the screenshots need the real photos in ../shared")
    from playwright.sync_api import sync_playwright

    from knn.core.image_folders import class_folders

    use_shared_weights()
    photos = class_folders(rps)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="knn-shots-") as tmp, sync_playwright() as p:
        video = rock_video(Path(tmp) / "rock.y4m", photos)
        step("starting the app")
        with AppServer() as app:
            browser = launch(p, video)
            try:
                desktop(browser, app, photos, args.out / "screenshot.png")
                phone(browser, app, args.out / "phone.png")
            finally:
                browser.close()


if __name__ == "__main__":
    main()
