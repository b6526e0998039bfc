"""knn.serving.clicks: which Streamlit it fits, and what it reads. The page's behaviour, a click
acting once while the live panel redraws, is tests/test_clicks.py, in a real browser."""

from __future__ import annotations

import dataclasses
import logging
import types
from pathlib import Path

from streamlit.runtime.scriptrunner import ScriptRunContext

from knn.serving.adapt import adapt
from knn.serving.clicks import CLICKS, fragments_alone

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_streamlit_fits():
    assert CLICKS.check(ScriptRunContext) == []
    assert adapt(CLICKS)


def test_another_version_or_context_leaves_every_callback_running(caplog):
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(CLICKS, version="1.68.0")
    assert "not the version this was checked against" in caplog.text

    @dataclasses.dataclass
    class ScriptRunContext2:  # the attribute renamed or gone
        fragments_this_run: list | None = None

    (problem,) = CLICKS.check(ScriptRunContext2)
    assert "no longer has fragment_ids_this_run" in problem
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert not adapt(CLICKS, version=CLICKS.checked, found=ScriptRunContext2)
    assert "no longer has fragment_ids_this_run" in caplog.text


def test_only_a_run_of_fragments_alone_marks_a_copy():
    assert fragments_alone(types.SimpleNamespace(fragment_ids_this_run=["live panel"]))
    for full_run in (
        types.SimpleNamespace(fragment_ids_this_run=None),
        types.SimpleNamespace(fragment_ids_this_run=[]),
    ):
        assert not fragments_alone(full_run)
    assert not fragments_alone(None)  # no script run (a bare call): nothing to tell
