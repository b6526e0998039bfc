"""The widgets' callbacks: each turns a click or an edit into a call on the session's LiveSession
(knn.live.session) and says the outcome (ui.messages).

Callbacks run before the page, in the script thread. The engine's refusals (ValueError:
LiveError, ClassifierError, ...) say what to do, so they become messages, never tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable
from typing import Protocol

import streamlit as st

from knn.core.rule_trial import Rule
from knn.live.jobs import Job

from .links import forget_project, share_project
from .markdown import md
from .messages import Where, begin_action, say, saying_if_saving_stops, user_action
from .state import CARDS_PER_PAGE, TrialAsked, label_in, live, record_seconds, ss
from .streamlit_fixes import one_click


class ClassCallback(Protocol):
    def __call__(self, slot: int, *, where: Where | None = None) -> None: ...


def class_action(action: Callable[[int, str], None]) -> ClassCallback:
    """Make a class's callback: `action(slot, label)`; engine refusals become messages on the card,
    or at `where` (the buttons under the camera say them there, the sidebar may be folded away).

    It does nothing when the card's class is already gone (a second click on Delete can arrive
    before the page has redrawn).
    """

    @functools.wraps(action)
    def callback(slot: int, *, where: Where | None = None) -> None:
        begin_action()
        label = label_in(slot)
        if label is None:
            return
        try:
            with saying_if_saving_stops(slot if where is None else where):
                action(slot, label)
        except ValueError as exc:  # LiveError, ClassifierError, ...: the message says what to do
            say("warning", str(exc), slot if where is None else where)

    return callback


# ---- a class -------------------------------------------------------------------------------------


@class_action
def on_rename(slot: int, old: str) -> None:
    key = f"name_{slot}"
    typed = ss[key]
    ss[key] = old  # shown again unless the rename succeeds
    try:
        new = live().rename_class(old, typed)
    except ValueError as exc:
        say("error", f"Cannot rename “{old}”: {exc}", slot)
        return
    ss.slots[new] = ss.slots.pop(old)
    ss[key] = new  # as stored: spaces trimmed, Unicode normalised


@one_click
@class_action
def on_add(slot: int, label: str) -> None:
    live().add_latest(label)
    st.toast(md(f"Added the current frame to “{label}”"))


@one_click
@class_action
def on_record(slot: int, label: str) -> None:
    live().start_recording(label, record_seconds())


@one_click
@class_action
def on_clear(slot: int, label: str) -> None:
    live().clear_class(label)


@one_click
@class_action
def on_delete(slot: int, label: str) -> None:
    live().remove_class(label)
    del ss.slots[label]


@one_click
@user_action
def on_add_class() -> None:
    taken = set(live().classifier.classes)
    n = len(taken) + 1
    while f"Class {n}" in taken:
        n += 1
    try:
        live().add_class(f"Class {n}")
    except ValueError as exc:  # the class limit
        say("warning", str(exc), "classes")
        return
    ss.class_page = -(-(len(taken) + 1) // CARDS_PER_PAGE)  # the page with the new card


# ---- an example ----------------------------------------------------------------------------------


@one_click
@user_action
def on_delete_example(example_id: int) -> None:
    with contextlib.suppress(ValueError):  # already gone (a second click before the page redrew)
        live().remove_example(example_id)


@one_click
@user_action
def on_keep_example(example_id: int) -> None:
    ss.setdefault("kept_examples", set()).add(example_id)


@one_click
@user_action
def on_move_example(example_id: int, label: str) -> None:
    try:
        live().move_example(example_id, label)
    except ValueError as exc:  # the example or the class went away meanwhile
        say("warning", f"Could not move the example: {exc}")
        return
    st.toast(md(f"Moved the example to “{label}”"))


# ---- settings ------------------------------------------------------------------------------------


@user_action
def on_backbone_choice() -> None:
    """The user chose another backbone or input: switched at the start of this run."""
    ss.backbone_asked = True


@user_action
def on_k() -> None:
    live().set_k(int(ss.k))


@user_action
def on_threshold() -> None:
    live().set_unknown_threshold(float(ss.threshold) or None)


@user_action
def on_mirror() -> None:
    live().set_mirror(bool(ss.mirror))


@user_action
def on_augment() -> None:
    live().augment = bool(ss.augment)


# ---- the coach's trial of other settings --------------------------------------------------------


@one_click
@user_action
def on_try_rules() -> None:
    """Try the other vote rules on the examples, off the page's thread (ui.views.coach shows it)."""
    session = live()
    clf = session.classifier
    version = clf.version  # before the job starts: an edit meanwhile makes its answer stale
    ss.rule_trial = TrialAsked(Job(session.try_rules), weakref.ref(clf), version)


@one_click
@user_action
def on_switch_rule(rule: Rule) -> None:
    try:
        live().set_rule(rule.vote, rule.centroid_weight, rule.centred)
    except ValueError as exc:  # ClassifierError: never from the coach's own candidates
        say("warning", f"Could not switch: {exc}")
        return
    ss.pop("rule_trial", None)
    say("success", f"Now using {rule.describe()}: it did better on your examples. Settings shows the rule in use.")


# ---- the project ---------------------------------------------------------------------------------


@one_click
@user_action
def on_share() -> None:
    try:
        share_project()
    except ValueError as exc:  # LiveError: the store refused it, saying why
        say("error", str(exc), "project")


@one_click
@user_action
def on_forget_ask() -> None:
    ss.forget_asked = True


@one_click
@user_action
def on_forget_cancel() -> None:
    ss.forget_asked = False


@one_click
@user_action
def on_forget() -> None:
    ss.forget_asked = False
    try:
        forget_project()
    except ValueError as exc:  # LiveError: the store could not delete it now; nothing changed
        say("error", str(exc), "project")


@one_click
@user_action
def on_edit_here() -> None:
    """This tab takes the project back from the other tab: opened again at the start of the run."""
    ss.reopen_asked = True
