"""The Examples tab: one class's stored examples as thumbnails, paged, each with Delete."""

from __future__ import annotations

import streamlit as st

from ..actions import on_delete_example
from ..state import live, read_only, slot_of, ss

# At most this many thumbnails per page run, whatever the class holds (as ui.state.CARDS_PER_PAGE).
EXAMPLES_PER_PAGE = 24


def examples_view() -> None:
    clf = live().classifier
    counts = clf.counts()
    if not len(clf):
        st.info("No examples yet: Add, Record or upload some from the sidebar.")
        return
    classes = [c for c, n in counts.items() if n]
    if ss.get("examples_class") not in classes:
        ss.examples_class = classes[0]
    label = st.selectbox(
        "Examples of",
        classes,
        key="examples_class",
        format_func=lambda c: f"{c} ({counts[c]} example{'s' * (counts[c] != 1)})",
    )
    examples = clf.examples(label)
    pages = -(-len(examples) // EXAMPLES_PER_PAGE)
    page = 1
    if pages > 1:
        page = st.number_input(f"Page of {pages}", 1, pages, 1, key=f"examples_page_{slot_of(label)}", width=160)
    shown = examples[(page - 1) * EXAMPLES_PER_PAGE : page * EXAMPLES_PER_PAGE]
    frozen = read_only()
    cols = st.columns(8)
    for i, example in enumerate(shown):
        with cols[i % 8]:
            if example.image:
                st.image(example.image, width="stretch")
            else:
                st.caption("(no image)")
            st.button(
                "Delete",
                key=f"delete_example_{example.example_id}",
                on_click=on_delete_example,
                args=(example.example_id,),
                type="tertiary",
                disabled=frozen,
            )
