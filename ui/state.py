"""One browser session's state, kept in st.session_state: its LiveSession, the widget slot of each
class, and the settings the page reads outside the widgets that set them."""

from __future__ import annotations

import weakref
from typing import NamedTuple

import streamlit as st

from knn.core.classifier import KNNClassifier
from knn.core.rule_trial import RuleTrial
from knn.live.jobs import Job
from knn.live.session import RECORD_SECONDS, LiveSession

from .resources import model, serving, storage

START_CLASSES = ("Class 1", "Class 2", "Class 3")
# A page run draws at most this many class cards (and ui.views.examples as many thumbnails),
# whatever the session holds: Streamlit's cost per keyed widget grows with the number of widgets
# (docs/performance.md).
CARDS_PER_PAGE = 10

ss = st.session_state


class TrialAsked(NamedTuple):
    """The coach's trial of other settings the user asked for (`ss.rule_trial`), on which examples."""

    job: Job[RuleTrial]
    classifier: weakref.ref[KNNClassifier]
    version: int

    def describes(self, classifier: KNNClassifier) -> bool:
        """Whether its answer is about the examples and settings as they are now."""
        return self.classifier() is classifier and self.version == classifier.version


def init_session() -> None:
    """A new browser session: a LiveSession with the process's model (which may still be loading:
    the page draws meanwhile, ui.views.model_progress) and three empty classes."""
    if "live" in ss:
        return
    ss.live = LiveSession(model(), classes=START_CLASSES, steady=serving().settings.steady, store=storage().store)
    ss.slots, ss.next_slot, ss.messages, ss.message_seq = {}, 0, [], 0


def live() -> LiveSession:
    """This browser session's LiveSession."""
    session: LiveSession = ss.live
    return session


def read_only() -> bool:
    """Whether this tab stopped saving its project (another tab opened it, or it was forgotten):
    its edit widgets are then off, so nothing is changed here that would not be saved."""
    return live().save_state.kind == "stopped"


def slot_of(label: str) -> int:
    """A stable widget-key number per class, so renaming a class keeps its widgets."""
    if label not in ss.slots:
        ss.slots[label] = ss.next_slot
        ss.next_slot += 1
    slot: int = ss.slots[label]
    return slot


def label_in(slot: int) -> str | None:
    """The class whose widgets have this slot; None once it is gone."""
    return next((name for name, s in ss.slots.items() if s == slot), None)


def record_seconds() -> float:
    """How long Record adds frames: the Settings slider's value."""
    return float(ss.get("record_seconds", RECORD_SECONDS))
