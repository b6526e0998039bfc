"""The sidebar: a card per class (name, count, Add, Record, clear or delete, upload images), paged;
then the Settings and Project sections."""

from __future__ import annotations

import streamlit as st

from knn.core.coach import Coaching
from knn.core.limits import MAX_CLASSES, MAX_IMAGE_BYTES

from ..actions import on_add, on_add_class, on_clear, on_delete, on_record, on_rename
from ..messages import show_messages
from ..state import CARDS_PER_PAGE, live, read_only, slot_of, ss
from ..streamlit_fixes import upload_key
from .project import project
from .settings import settings

IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]


def sidebar(coached: Coaching | None) -> None:
    session = live()
    ss.frozen = read_only()  # this tab stopped saving: its edit widgets are off (ui.views.saving says why)
    counts = session.classifier.counts()
    ss.drawn_counts = dict(counts)
    labels = list(counts)
    with st.sidebar:
        st.header("Classes")
        pages = max(1, -(-len(labels) // CARDS_PER_PAGE))
        ss.class_page = min(max(1, ss.get("class_page", 1)), pages)
        if pages > 1:
            st.number_input(f"Page of {pages} ({len(labels)} classes)", 1, pages, key="class_page")
        first = (ss.class_page - 1) * CARDS_PER_PAGE
        for label in labels[first : first + CARDS_PER_PAGE]:
            class_card(label, counts[label], coached)
        st.button(
            "+ Add class",
            key="add_class",
            on_click=on_add_class,
            disabled=len(labels) >= MAX_CLASSES or ss.frozen,
            help=f"At most {MAX_CLASSES} classes" if len(labels) >= MAX_CLASSES else None,
        )
        show_messages("classes")
        with st.expander("Settings"):
            settings()
        with st.expander("Project", expanded=False):
            project()


def class_card(label: str, count: int, coached: Coaching | None) -> None:
    slot = slot_of(label)
    with st.container(border=True, key=f"class_{slot}"):
        # The name is the widget's default, not a value put in st.session_state before it: that
        # reaches the browser only with the card's first run, which a busy server can drop unsent,
        # and a card mounted from a later run shows its default (was: empty names after a restore).
        st.text_input(
            "Class name",
            value=label,
            key=f"name_{slot}",
            on_change=on_rename,
            args=(slot,),
            label_visibility="collapsed",
            disabled=ss.frozen,
        )
        accuracy = coached.accuracy(label) if coached is not None else float("nan")
        recognised = "" if accuracy != accuracy else f" · {accuracy:.0%} recognised"  # nan: under 2 examples
        st.caption(
            f"{count} example{'s' * (count != 1)}{recognised}",
            help="Recognised: how many of its examples the other examples classify as this class "
            "(leave-one-out), updated whenever the examples change"
            if recognised
            else None,
        )
        with st.container(horizontal=True, gap="small"):
            st.button(
                "Add",
                key=f"add_{slot}",
                on_click=on_add,
                args=(slot,),
                help="Add the current camera frame",
                disabled=ss.frozen,
            )
            st.button(
                "Record",
                key=f"record_{slot}",
                on_click=on_record,
                args=(slot,),
                help="Add camera frames continuously for a few seconds (see Settings)",
                disabled=ss.frozen,
            )
            with st.popover("…", help="Clear or delete this class", disabled=ss.frozen):
                st.button(
                    "Clear its examples", key=f"clear_{slot}", on_click=on_clear, args=(slot,), disabled=not count
                )
                st.button("Delete the class", key=f"delete_{slot}", on_click=on_delete, args=(slot,), type="primary")
        # Keyed, so the browser keeps whether it is open under its key: a redraw that remounts the
        # card's parts cannot close it on a user who opened it.
        with st.expander("Upload images", key=f"upload_box_{slot}"):
            st.file_uploader(
                "Images of this class",
                type=IMAGE_TYPES,
                accept_multiple_files=True,
                key=upload_key(slot),  # taken by ui.uploads.take_images
                max_upload_size=max(1, MAX_IMAGE_BYTES // 1024**2),
                label_visibility="collapsed",
                disabled=ss.frozen,
            )
        show_messages(slot)
