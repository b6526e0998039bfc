"""The private link: the project's token in the page's URL (`?project=`), and what opens from it.

A browser session's first run opens the project, or the share link (`?share=`), that the URL
names, before the camera can answer a frame; "Edit here instead" opens it again in a tab that
stopped saving. The token goes into the URL once the project's first change is stored
(knn.live.saving), never on a bare visit, and replaces a share link there: from then on the
visitor's copy is their own project. A link that opens nothing for good is dropped from the URL
with a plain message; one that cannot be opened now (the database away) stays, for a reload.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import streamlit as st

from knn.live.session import Opened

from .messages import progress_bar, say
from .resources import embedder_for
from .state import START_CLASSES, live, ss
from .streamlit_fixes import show_backbone_in_use, show_classifier_settings

PROJECT, SHARE = "project", "share"
"""The URL's parameters: a project's own link, and a share link (a copy for each visitor)."""


def link_url(token: str, kind: str = PROJECT) -> str:
    """The page's address with `?kind=token`, as the user's browser reaches the page."""
    base = st.context.url or ""
    if base and not urlsplit(base).path:
        base += "/"
    return f"{base}?{kind}={token}"


def open_link_if_asked() -> None:
    """Open what the URL names on a session's first run, or the project again after "Edit here
    instead"; the class cards and settings then show what was opened."""
    reopen = ss.pop("reopen_asked", False)
    if ss.get("link_checked") and not reopen:
        return
    ss.link_checked = True
    params = st.query_params
    if reopen:
        kind, token = PROJECT, ss.get("link") or params.get(PROJECT)
    else:
        kind = PROJECT if PROJECT in params else SHARE if SHARE in params else ""
        token = params.get(kind) if kind else None
    if not token:
        return
    with progress_bar("Opening the project…") as progress:
        opened = live().open_project(token, embedder_for, progress)
    if opened.ok:
        show_opened(opened, token)
    elif live().save_state.kind == "off":  # saving is off on this server: no link opens here
        say("warning", opened.message)
    elif opened.missing:
        forget_link()
        say("warning", f"{opened.message} This is a new, empty project.")
    else:  # the database is away or the rows are unreadable: the link stays, to try again
        say(
            "error",
            f"{opened.message} This tab has a new, empty project meanwhile. Reload the page to try again; "
            f"keep this link, which opens your project: {link_url(token, kind)}",
        )


def show_opened(opened: Opened, token: str) -> None:
    classes = set(live().classifier.classes)  # a class of the same name keeps its widgets
    ss.slots = {name: slot for name, slot in ss.slots.items() if name in classes}
    show_classifier_settings()
    show_backbone_in_use()
    if opened.shared:
        ss.link = None
        say("success", f"{opened.message} It is your own copy: your changes go to a new project with its own link.")
    else:
        ss.link = token
        say("success", opened.message)
    if opened.dropped:
        say("warning", f"{opened.dropped} examples had no stored image to re-embed and were left out.")


def keep_link_in_url() -> None:
    """Once the project is stored, its link is the page's URL (a share link there gives way)."""
    token = ss.drawn_token = live().project_token
    if token is None or st.query_params.get(PROJECT) == token:
        return
    st.query_params[PROJECT] = token
    st.query_params.pop(SHARE, None)
    ss.link = token


def forget_link() -> None:
    """The URL names no project any more."""
    st.query_params.pop(PROJECT, None)
    st.query_params.pop(SHARE, None)
    ss.link = ss.share_link = None
    ss.drawn_token = None


def forget_project() -> None:
    """Delete the stored project now (LiveError if the store cannot); a new, empty project here."""
    live().forget(START_CLASSES)
    forget_link()
    ss.slots = {}
    ss.export = None
    show_classifier_settings()
    say(
        "success",
        "Forgotten: this project was deleted from the server, and its link opens nothing now. "
        "This tab has a new, empty project.",
    )


def share_project() -> None:
    """Store a read-only copy of the project as it is now, and show its share link."""
    ss.share_link = live().share()
    say(
        "success",
        "Share link made: whoever opens it gets a copy of the project as it is now, as a project "
        "of their own. Your project's link is not in it.",
        "project",
    )
