"""Tell a button's click from the copy of it that a fragment's timed rerun carries.

Streamlit 1.67's page sends a click on a zero-delay timer, in a rerun of its own; until that
timer fires the click waits among the page's widget states. A fragment with `run_every` (the live
panel, every second) sends all of those states when its own timer fires. When that timer fires
first, as in a busy tab, the server gets the click twice: inside the fragment's rerun, then in
the click's own, seconds apart under load. One Add stored two frames and "+ Add class" made two
classes (tests/test_clicks.py makes the order happen on purpose).

A button drawn outside every fragment is only ever sent in a full-page rerun, so its callback
running in a rerun of fragments alone is that copy: the page skips it (app.py `one_click`). The
page keeps every button that acts outside its timed fragment for this reason. The same test keeps
the panel from asking for a page redraw while the page itself is being drawn (app.py
`live_panel_body`): such a request stops the run, and a page whose runs all stop keeps showing
elements of its earlier runs, e.g. the class cards from before a project restore.

`fragments_alone` reads `ScriptRunContext.fragment_ids_this_run`, which Streamlit sets before it
calls the callbacks. `tell_copied_clicks` checks the installed version and that attribute once per
process; otherwise it logs one warning and every callback runs as in stock Streamlit.
"""

from __future__ import annotations

import logging

from .checks import unchecked_version

_LOG = logging.getLogger(__name__)

CHECKED_STREAMLIT = ("1.67.0",)
"""Streamlit versions whose page and script runner this was read against."""
ATTRIBUTE = "fragment_ids_this_run"


def check_context(version: str, context_class: type) -> list[str]:
    """What keeps `fragments_alone` from applying; empty when it fits."""
    problems = unchecked_version("streamlit", version, CHECKED_STREAMLIT)
    if ATTRIBUTE not in getattr(context_class, "__dataclass_fields__", {}):
        problems.append(f"streamlit's {context_class.__name__} no longer has {ATTRIBUTE}")
    return problems


def tell_copied_clicks(*, version: str | None = None, context_class: type | None = None) -> bool:
    """Whether `fragments_alone` may be used in this process (the installed Streamlit by default;
    tests pass others). False after one warning when it does not fit."""
    if version is None or context_class is None:
        import importlib.metadata

        from streamlit.runtime.scriptrunner import ScriptRunContext

        version = importlib.metadata.version("streamlit")
        context_class = ScriptRunContext
    problems = check_context(version, context_class)
    if problems:
        _LOG.warning("A click may act twice while a fragment redraws on a timer (%s).", "; ".join(problems))
        return False
    return True


def fragments_alone(context: object | None) -> bool:
    """Whether this script run reruns fragments alone, not the whole page. In the callback of a
    button drawn outside every fragment, that makes its click the copy a fragment's timer sent
    (the click's own rerun follows)."""
    return bool(getattr(context, ATTRIBUTE, None))
