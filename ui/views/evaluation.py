"""The Evaluation tab: leave-one-out accuracy of the stored examples, per class, and the confusion
matrix as a chart (computed in the background by the session's analysis)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from knn.core.evaluation import Evaluation
from knn.core.rule_trial import Rule

from ..state import live

if TYPE_CHECKING:
    import altair as alt  # for the annotation; imported where the chart is drawn


def evaluation_view() -> None:
    """The Evaluation tab; while its leave-one-out is being computed it checks back every second."""
    session = live()
    current = session.analysis.latest(session.classifier)[1]
    st.fragment(evaluation_body, run_every=None if current else 1.0)(waiting=not current)


def evaluation_body(waiting: bool) -> None:
    session = live()
    clf = session.classifier
    counts = clf.counts()
    if sum(1 for n in counts.values() if n >= 1) < 2 or len(clf) < 3:
        st.info("Teach at least two classes (three examples in all) to see how well they separate.")
        return
    result, current = session.analysis.latest(clf)
    if waiting and current:
        st.rerun()  # drawn once more by the whole page, which then stops checking
    if result is None:
        st.info(f"Classifying each of the {len(clf):,} examples by all the others…")
        return
    if not current:
        st.caption(f"Updating for the {len(clf):,} examples now stored…")
    ev = result.evaluation
    st.metric(
        "Leave-one-out accuracy",
        f"{ev.accuracy:.1%}",
        help="Each stored example classified by all the others, by the vote of its k nearest "
        "examples. Frames recorded a moment apart are near-duplicates, so this is optimistic: judge "
        "with new frames too.",
    )
    if not clf.plain_rule:
        # Leave-one-out under the blend or centroid vote costs a pass per example (5 s at 2,000), too much
        # to redo at every change on the thread all sessions share; the coach's trial measures the rule.
        st.caption(
            "Measured with the k nearest examples' vote; your project decides by "
            f"{Rule(clf.vote, clf.centroid_weight, clf.centred).describe()}. The coach's "
            "**Try other settings** measures both on your examples, a batch left out at a time."
        )
    left, right = st.columns([1, 2])
    left.dataframe(
        pd.DataFrame(
            {
                "class": ev.classes,
                "examples": [counts.get(c, 0) for c in ev.classes],
                "accuracy": [ev.per_class.get(c) for c in ev.classes],
            }
        ),
        column_config={"accuracy": st.column_config.NumberColumn(format="percent")},
        hide_index=True,
    )
    right.altair_chart(confusion_chart(ev), width="stretch", height=48 * len(ev.classes) + 90)


def confusion_chart(ev: Evaluation) -> alt.LayerChart:
    """The confusion matrix as a heat map with each cell's count written on it."""
    import altair as alt  # here: it adds ~25 MB to the serving process, paid once someone looks

    cells = pd.DataFrame(
        [
            {"true class": t, "predicted class": p, "examples": int(ev.confusion[i, j])}
            for i, t in enumerate(ev.classes)
            for j, p in enumerate(ev.classes)
        ]
    )
    base = alt.Chart(cells).encode(
        x=alt.X("predicted class:N", sort=ev.classes, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("true class:N", sort=ev.classes),
    )
    heat = base.mark_rect().encode(
        color=alt.Color("examples:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["true class", "predicted class", "examples"],
    )
    most = int(ev.confusion.max()) if ev.confusion.size else 0
    text = base.mark_text(fontSize=14).encode(
        text="examples:Q",
        color=alt.condition(alt.datum.examples > most / 2, alt.value("white"), alt.value("black")),
    )
    chart: alt.LayerChart = (heat + text).properties(title="Confusion matrix (rows: true class)")
    return chart
