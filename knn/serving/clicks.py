"""Tell a button's click from the copy of it that a fragment's timed rerun carries.

Streamlit 1.67's page sends a click on a zero-delay timer; when the live panel's timer fires
first, its rerun of fragments carries the click too, and the click would act twice. A button
drawn outside every fragment is only sent in a full-page rerun, so its callback running in a rerun
of fragments alone is the copy (`fragments_alone`), which the page skips where `CLICKS` says it
may read `ScriptRunContext.fragment_ids_this_run` (knn.serving.startup).
"""

from __future__ import annotations

from .adapt import Adaptation

ATTRIBUTE = "fragment_ids_this_run"


def _find() -> type:
    from streamlit.runtime.scriptrunner import ScriptRunContext

    return ScriptRunContext


def _check(context_class: type) -> list[str]:
    if ATTRIBUTE not in getattr(context_class, "__dataclass_fields__", {}):
        return [f"streamlit's {context_class.__name__} no longer has {ATTRIBUTE}"]
    return []


CLICKS = Adaptation(
    name="clicks",
    package="streamlit",
    checked="1.67.0",
    reason="a click waiting on Streamlit's zero-delay timer rides along in the live panel's timed rerun too",
    kept_by="tests/test_clicks.py (stock: one Add stores two frames)",
    lost="A click may act twice while a fragment redraws on a timer",
    find=_find,
    check=_check,
)


def fragments_alone(context: object | None) -> bool:
    """Whether this script run reruns fragments alone, not the whole page. In the callback of a
    button drawn outside every fragment, that makes its click the copy a fragment's timer sent
    (the click's own rerun follows)."""
    return bool(getattr(context, ATTRIBUTE, None))
