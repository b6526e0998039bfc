"""`adapted`: apply an adaptation as the serving process does, so a bug's reproduction can be run
against the stock library: `KNN_STOCK=clicks python -m pytest tests/test_clicks.py` must fail."""

from __future__ import annotations

from knn.serving.adapt import Adaptation, adapt
from knn.serving.settings import Settings


def adapted(adaptation: Adaptation, value: object = None) -> bool:
    """`adapt(adaptation, value)` unless KNN_STOCK in this process's environment names it
    (knn.serving.startup reads the same setting)."""
    return adaptation.name not in Settings.from_env().stock and adapt(adaptation, value)
