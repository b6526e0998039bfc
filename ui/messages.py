"""What the page tells the user, and until when.

A message goes to a place: "main" (the slot under the camera), a class's slot (its card),
"classes" (under the cards) or "project" (the Project section); none of them sits above the camera,
so a message never moves it. Messages stay until the user's next action or a click on Dismiss.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Literal, ParamSpec

import streamlit as st

from knn.model.child import Progress

from .markdown import md
from .state import live, ss
from .streamlit_fixes import one_click

P = ParamSpec("P")
Kind = Literal["success", "info", "warning", "error"]
Where = str | int


def say(kind: Kind, text: str, where: Where = "main") -> None:
    """Show a message of this kind at `where` until the user's next action or a click on Dismiss."""
    ss.message_seq = ss.get("message_seq", 0) + 1
    ss.setdefault("messages", []).append((ss.message_seq, where, kind, text))


def begin_action() -> None:
    """A new user action: the previous action's messages have been read."""
    ss.messages = []


def user_action(callback: Callable[P, None]) -> Callable[P, None]:
    """A widget callback that is a user action: it starts by clearing the last action's messages,
    and says so if the change it made was not saved because this tab just stopped saving."""

    @functools.wraps(callback)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> None:
        begin_action()
        with saying_if_saving_stops():
            return callback(*args, **kwargs)

    return wrapped


@contextlib.contextmanager
def saying_if_saving_stops(where: Where = "main") -> Iterator[None]:
    """Around a change: when this very change found the project open in another tab, or
    forgotten, say at `where` that it was made in this tab only (its edit widgets are off from
    the next run on; before, the tab could not know)."""
    session = live()
    before = session.save_state.kind
    yield
    state = session.save_state
    if before != "stopped" and state.kind == "stopped":
        why = state.message.removeprefix("not being saved: ")
        say("warning", f"Changed in this tab only, not saved: {why}.", where)


def begin_run() -> None:
    """A page run starts: no message has been drawn in it yet."""
    ss.drawn_messages = set()


def show_messages(where: Where | None) -> None:
    """Draw the messages for `where` (None: every one not drawn elsewhere this run, e.g. of a deleted
    class or a card on another page) and a Dismiss button; they stay until the next action."""
    drawn = ss.setdefault("drawn_messages", set())
    mine = [m for m in ss.get("messages", []) if (m[1] == where if where is not None else m[0] not in drawn)]
    for seq, _, kind, text in mine:
        getattr(st, kind)(md(text))
        drawn.add(seq)
    if mine:
        st.button(
            "Dismiss",
            key=f"dismiss_{where if where is not None else 'main'}",
            type="tertiary",
            on_click=dismiss,
            args=(tuple(m[0] for m in mine),),
        )


@contextlib.contextmanager
def progress_bar(text: str) -> Iterator[Progress]:
    """A progress bar where the page is drawing, while the block runs; yields its `progress(fraction, text)`."""
    bar = st.progress(0.0, text=text)

    def progress(fraction: float, text: str) -> None:
        bar.progress(fraction, text=text)

    try:
        yield progress
    finally:
        bar.empty()


@one_click
def dismiss(seqs: tuple[int, ...]) -> None:
    ss.messages = [m for m in ss.get("messages", []) if m[0] not in seqs]
