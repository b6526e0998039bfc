"""Tell a button's click from the copy of it that a fragment's timed rerun carries.

Streamlit 1.67's page sends a click on a zero-delay timer; when the live panel's timer fires
first, its rerun of fragments carries the click too, and the click would act twice. A button
drawn outside every fragment is only sent in a full-page rerun, so its callback running in a rerun
of fragments alone is the copy (`fragments_alone`), which the page skips. `tell_copied_clicks`
checks once per process that the installed version and `ScriptRunContext.fragment_ids_this_run`
fit; otherwise it logs one warning and every callback runs as in stock Streamlit. Numbers:
docs/performance.md, "Serving adaptations".
"""

from __future__ import annotations

import logging

from .adaptation_checks import unchecked_version

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
