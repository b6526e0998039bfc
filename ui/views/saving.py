"""Where the work is kept, under the page's title, always as the session's `save_state` says: the
notice before the first save (what is kept, where, how long, that the link is the key), "saved",
"not being saved: <reason>", "saving is off on this server", and for a tab that stopped saving
because another tab opened its project, "Edit here instead"."""

from __future__ import annotations

import streamlit as st

from knn.live.saving import SaveState

from ..actions import on_edit_here
from ..markdown import md
from ..resources import storage
from ..state import live, ss

PROJECT_SECTION = "**Project** in the sidebar"


def saving_status() -> None:
    """Fill the header's slot (ui.views.header) with where this tab's project is kept."""
    state = live().save_state
    ss.drawn_saving = said(state)
    with ss.saving_slot.container(key="saving"):
        if state.kind == "new":
            first_save_notice()
        elif state.kind == "saved":
            st.caption(
                f":material/cloud_done: **{md(state.message.capitalize())}.** The link in your address bar "
                f"opens this project: anyone with it can open and change it. Share, download or forget it under "
                f"{PROJECT_SECTION}."
            )
        elif state.kind == "off":
            problem = storage().problem
            if problem:
                st.warning(md(f"Not being saved: {problem}. Download the project to keep it."))
            else:
                st.caption(
                    f":material/cloud_off: **{md(state.message.capitalize())}.** "
                    f"To keep it, download it under {PROJECT_SECTION}."
                )
        elif state.kind == "failing":
            st.warning(
                f"**{md(state.message.capitalize())}.** Your work is kept in this tab meanwhile; "
                f"to be safe, download it under {PROJECT_SECTION}."
            )
        else:
            stopped(state)


def said(state: SaveState) -> tuple[str, str, bool]:
    """What the page says of a state (not how many changes are pending): when it differs from what
    was drawn, the live panel redraws the page."""
    return state.kind, state.message, state.gone


def stopped(state: SaveState) -> None:
    """Another tab opened this project, or it was forgotten: this tab changes nothing any more."""
    if state.gone:
        st.error(
            "**This project was forgotten, or expired: this tab stopped saving**, and nothing here can bring "
            "it back. Its editing is off. To keep what this tab shows, download it under "
            f"{PROJECT_SECTION}."
        )
        return
    st.warning(
        "**This project is open in another tab, so this one stopped saving.** Its editing is off here, "
        "so nothing you do in this tab is lost. To edit here, take it back from the other tab "
        "(which then stops saving)."
    )
    st.button("Edit here instead", key="edit_here", on_click=on_edit_here, icon=":material/edit:")


def first_save_notice() -> None:
    """Before anything is stored: what will be kept, where, for how long, and who can open it."""
    store = storage().store
    if store is None:
        return
    where = store.where  # "saved on this server" / "saved in the database"
    st.info(
        f"**{where.capitalize()} from your first change:** class names, example pictures, their embeddings, "
        f"settings; kept {kept_for(store.ttl)} after your last visit, or until you press **Forget this "
        "project**. The link is the key: anyone with it can open and change the project.",
        icon=":material/cloud_upload:",
    )
    with st.expander("More about what is kept"):
        st.markdown(
            f"""
- **What:** the name of each class; each example's picture, as the model sees it (a small square
  JPEG of the frame you added, recorded or uploaded, never the video itself); its embedding (the
  numbers the model made of it); your settings (backbone, k, threshold, augment, mirror).
- **Where:** {"in this server's PostgreSQL database" if store.dialect == "postgresql" else "in a file on this server"}.
  Nothing is sent anywhere else.
- **Who can open it:** anyone who has its link, and no one else: the server keeps only a
  fingerprint (hash) of the link, so projects cannot be listed or found without it. Give others
  **Share a copy** instead: they get a copy of their own, and your link stays yours.
- **How long:** until it goes {kept_for(store.ttl)} without being opened; then it is deleted.
  **Forget this project** deletes it at once. **Download project** keeps a copy on your computer.
- The server's backups, if its operator makes any, may keep it until they are deleted.
"""
        )


def kept_for(seconds: float) -> str:
    """A duration in words: "30 days", "12 hours", "90 minutes"."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{n:g} {unit}{'s' * (n != 1)}"
    return f"{seconds:g} seconds"
