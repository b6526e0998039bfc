"""The coach: what to teach next, from the stored examples (knn.core.coach, computed in the
background by the session's analysis), and one-click fixes for examples that look mislabelled."""

from __future__ import annotations

import streamlit as st

from knn.core.coach import Coaching, Suspect
from knn.live.session import LiveSession

from ..actions import on_delete_example, on_keep_example, on_move_example
from ..markdown import md
from ..state import live, read_only, ss

SUSPECTS_SHOWN = 6
THUMBNAIL_PX = 96


def coach_key(session: LiveSession, version: int) -> tuple[int, int]:
    return id(session.classifier), version


def coach_is_new(session: LiveSession) -> bool:
    """The analysis has a current result the page has not drawn yet."""
    result, current = session.analysis.latest(session.classifier)
    return current and result is not None and coach_key(session, result.version) != ss.get("drawn_coach")


def coaching() -> Coaching | None:
    """The latest coaching, current or not (None before the first); queues one when it is stale."""
    session = live()
    result, current = session.analysis.latest(session.classifier)
    if current and result is not None:
        ss.drawn_coach = coach_key(session, result.version)
    ss.coach_current = current
    return None if result is None else result.coaching


def coach_view(coached: Coaching | None) -> None:
    """What to teach next: confused classes, mislabelled-looking examples, classes that need variety."""
    counts = live().classifier.counts()
    with st.container(key="coach", border=True):
        st.markdown("**Coach** · what would make the classifier better")
        if sum(1 for n in counts.values() if n) < 2:
            st.caption(
                "Once two classes have examples, the coach says what to teach next: which classes are "
                "confused, which examples look mislabelled, which need more variety."
            )
            return
        if coached is None:
            st.caption(f"Looking at the {sum(counts.values()):,} examples…")
            return
        tips = coached.tips()
        for tip in tips:
            st.markdown("- " + md(tip))
        if not tips:
            st.success(
                f"Every class is recognised by its other examples "
                f"(leave-one-out {coached.evaluation.accuracy:.0%}). Now try it on new views of each."
            )
        if not ss.coach_current:
            st.caption("Updating for the examples now stored…")
        suspects(coached)


def suspects(coached: Coaching) -> None:
    """Examples that look mislabelled, each with one-click fixes."""
    kept = ss.setdefault("kept_examples", set())
    clf = live().classifier
    # The coaching may predate the last move or delete: show only examples still where it found them.
    shown = [
        s
        for s in coached.suspects
        if s.label in ss.slots and s.example_id not in kept and clf.label_of(s.example_id) == s.label
    ][:SUSPECTS_SHOWN]
    if not shown:
        return
    with st.container(horizontal=True, gap="small"):
        for s in shown:
            suspect_card(s)


def suspect_card(s: Suspect) -> None:
    """A mislabelled-looking example: its picture, where it is, and one click to fix it."""
    frozen = read_only()
    with st.container(key=f"suspect_card_{s.example_id}", width=2 * THUMBNAIL_PX, border=True):
        if s.image:
            st.image(s.image, width="stretch")
        st.caption(md(f"in “{s.label}”, nearer to “{s.nearer_to[0]}”"))
        for label in s.nearer_to[:2]:
            st.button(
                md(f"Move to “{label}”"),
                key=f"move_{s.example_id}_{ss.slots.get(label, label)}",
                on_click=on_move_example,
                args=(s.example_id, label),
                width="stretch",
                disabled=frozen,
            )
        with st.container(horizontal=True, gap="small"):
            st.button(
                "Delete",
                key=f"suspect_delete_{s.example_id}",
                on_click=on_delete_example,
                args=(s.example_id,),
                type="tertiary",
                disabled=frozen,
            )
            st.button(
                "It is right",
                key=f"keep_{s.example_id}",
                on_click=on_keep_example,
                args=(s.example_id,),
                type="tertiary",
                help="Leave it in its class and stop showing it here",
            )
