"""The coach: what to teach next, from the stored examples (knn.core.coach, computed in the
background by the session's analysis), one-click fixes for examples that look mislabelled, and,
when asked, a trial of other settings on the user's own examples (knn.core.rule_trial) with a
one-click switch to a setting that did better."""

from __future__ import annotations

import streamlit as st

from knn.core.coach import Coaching, Suspect
from knn.core.rule_trial import RuleTrial
from knn.live.session import LiveSession

from ..actions import on_delete_example, on_keep_example, on_move_example, on_switch_rule, on_try_rules
from ..markdown import md
from ..state import TrialAsked, live, read_only, ss
from ..streamlit_fixes import page_is_being_drawn

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
        other_settings()


TRIAL_POLL_SECONDS = 0.5


def other_settings() -> None:
    """The trial of other settings: a button, its progress while it runs, then what it found."""
    asked: TrialAsked | None = ss.get("rule_trial")
    with st.container(key="other_settings"):
        if asked is not None and not asked.job.done:
            st.fragment(trial_progress, run_every=TRIAL_POLL_SECONDS)()
            return
        if asked is not None:
            trial_found(asked)
        st.button(
            "Try other settings",
            key="try_rules",
            on_click=on_try_rules,
            help="Classify each batch of your examples (an upload, a Record, an Add) by all the others, "
            "with the settings in use and with each other vote rule; a setting is offered only when it "
            "does better by more than chance. Nothing changes until you switch.",
        )


def trial_progress() -> None:
    """The trial's progress bar, redrawn on a timer; the whole page once it is done."""
    asked: TrialAsked | None = ss.get("rule_trial")
    if asked is None or asked.job.done:
        if not page_is_being_drawn():
            st.rerun()
        return
    st.progress(asked.job.fraction, text="Trying other settings on your examples, leaving out whole batches in turn…")


def trial_found(asked: TrialAsked) -> None:
    """The best setting with both accuracies and a button to switch, or why nothing is offered."""
    try:
        trial: RuleTrial = asked.job.result()
    except Exception as exc:  # never a traceback on the page
        st.warning(md(f"Trying other settings failed: {exc}"))
        return
    current = asked.describes(live().classifier)
    best = trial.best
    with st.container(key="rule_offer" if best else "rule_no_offer"):
        if best is None:
            st.info(md(f"Not enough evidence yet to change settings. {trial.why_not()}"))
        else:
            rule = best.rule.describe()
            st.success(
                md(
                    f"{rule[:1].upper()}{rule[1:]}: {best.accuracy:.0%} vs now {best.current_accuracy:.0%} "
                    f"({trial.current.describe()}) on your {best.n} examples, {trial.left_out()}: "
                    f"{best.gained} right only with it, {best.lost} only now (p = {best.p_value:.2g})."
                )
            )
            if current:
                st.button(
                    md(f"Switch to {best.rule.describe()}"),
                    key="switch_rule",
                    on_click=on_switch_rule,
                    args=(best.rule,),
                    type="primary",
                    disabled=read_only(),
                )
        if not current:
            st.caption("Your examples or settings changed since: try again for an answer about them as they are.")


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
