"""The live panel beside the camera: the prediction, each class's confidence, the frame rates and
timings, and the nearest stored examples, redrawn by a fragment on a timer without rerunning the
page; and the hint the page draws when the camera wavers between two classes."""

from __future__ import annotations

import pandas as pd
import psutil
import streamlit as st

from knn.live.pipeline import ANSWER_SIZE, model_loading, streaming_cameras
from knn.live.session import LiveSession, Snapshot
from knn.model.backbones import get_backbone

from ..actions import on_add
from ..markdown import md
from ..state import live, read_only, ss
from ..streamlit_fixes import page_is_being_drawn
from .coach import THUMBNAIL_PX, coach_is_new
from .connection import shown_problem
from .saving import said

# The live panel's redraw period; each redraw costs the server and the browser (docs/performance.md),
# so it slows down while more than BUSY_SESSIONS cameras stream to this process.
REFRESH_SECONDS = 1.0
BUSY_REFRESH_SECONDS = 2.0
BUSY_SESSIONS = 2


def panel_period() -> float:
    return BUSY_REFRESH_SECONDS if streaming_cameras() > BUSY_SESSIONS else REFRESH_SECONDS


def live_panel() -> None:
    """The live panel as a fragment redrawn every `panel_period()` seconds."""
    ss.panel_period = panel_period()
    st.fragment(live_panel_body, run_every=ss.panel_period)()


def live_panel_body() -> None:
    session = live()
    snap = session.snapshot()
    notice = session.take_notice()
    if notice:
        st.toast(md(notice))
    guidance(snap)
    pred = snap.prediction
    prediction(snap)
    # In class order: the two swap places as the camera wavers, and the page redraws on a change.
    # A pair with a class since renamed, deleted or gone with the project is no hint (the session's
    # answer stands a few seconds: knn.core.coach.HESITATION_HOLD_SECONDS).
    pair = tuple(c for c in snap.classes if c in snap.hesitation[:2]) if snap.hesitation else ()
    ss.hesitation = pair if len(pair) == 2 else None
    if snap.recording:
        label, seconds_left, seconds = snap.recording
        st.progress(
            max(0.0, min(1.0, 1 - seconds_left / seconds)),
            text=md(f"Recording into “{label}”: {seconds_left:.1f} s left"),
        )
    st.dataframe(
        pd.DataFrame(
            {
                "class": list(snap.classes),
                "confidence": [pred.confidences.get(c, 0.0) if pred else 0.0 for c in snap.classes],
                "examples": [snap.counts[c] for c in snap.classes],
            }
        ),
        column_config={
            "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="percent")
        },
        hide_index=True,
        key="confidences",
    )
    stats_table(snap)
    why(snap)
    if page_is_stale(session, snap):
        st.rerun()


def guidance(snap: Snapshot) -> None:
    """Say what to do next instead of showing empty numbers."""
    with_examples = [c for c in snap.classes if snap.counts[c]]
    if not snap.classes:
        st.info("There are no classes: press **+ Add class** in the sidebar.")
    elif model_loading(live().embedder):
        st.info(
            "The model is loading (the bar under the camera shows its step). Meanwhile press **START**, "
            "name your classes and upload images: the camera answers, and the uploads are added, once it is ready."
        )
    elif not snap.camera_live:
        st.info(
            "Press **START** under the camera (and allow camera access). You can also upload "
            "images to a class in the sidebar, or restore a project."
        )
    elif not with_examples:
        st.info(
            "Show the camera something and press a class's **+** button under the camera (one frame; "
            "keys 1–9) or its **⏺** button (a few seconds; Shift+1–9), or Add / Record on its card in the "
            "sidebar. Then do the same for another class."
        )
    elif len(with_examples) == 1:
        st.info("Now teach a second class: one class alone always wins.")


def prediction(snap: Snapshot) -> None:
    """The prediction, how sure it is, and the backbone that made it."""
    pred = snap.prediction
    with st.container(key="live_prediction"):
        if pred is None and model_loading(live().embedder):
            st.metric("Prediction", "model loading…")  # the bar under the camera says how far
        elif pred is None:
            st.metric("Prediction", "—")  # no frame yet
        elif pred.label is None:
            st.metric("Prediction", "unknown" if snap.n_examples else "no examples")
            if snap.n_examples:
                st.caption(f"best similarity {pred.similarity:.2f} is below the threshold")
        else:
            st.metric("Prediction", md(pred.label))
            st.caption(f"confidence {pred.confidences[pred.label]:.0%} · best similarity {pred.similarity:.2f}")
        spec = get_backbone(snap.backbone)
        st.caption(
            f"{md(spec.label.split(' · ')[0])} · {md(spec.mode)} input ({spec.size} px)",
            help="Change the backbone and the input mode in the sidebar's Settings",
        )


def page_is_stale(session: LiveSession, snap: Snapshot) -> bool:
    """Whether the panel's timed run should redraw the whole page (never while the page itself is
    being drawn: ui.streamlit_fixes)."""
    if page_is_being_drawn():
        return False
    # Recording adds examples in the callback: the sidebar's counts catch up once it ends (a full
    # rerun per refresh while recording would be wasteful). The coach's new analysis goes to the
    # cards and the coach's panel; the hesitation hint is the page's, since its buttons act.
    # Where the work is kept changed (a Record's first commit stored the project, the database went
    # away, another tab took the project over): the header says so, and the URL gets the link.
    return (
        (snap.recording is None and (snap.counts != ss.get("drawn_counts") or coach_is_new(session)))
        or ss.hesitation != ss.get("drawn_hesitation")
        or panel_period() != ss.get("panel_period")  # cameras started or stopped elsewhere
        or shown_problem() != ss.get("drawn_problem")  # the camera's connection failed, or works again
        or said(snap.saving) != ss.get("drawn_saving")
        or session.project_token != ss.get("drawn_token")
    )


def hesitation_hint() -> None:
    """The live panel saw the camera waver between two classes: ask for the frame where it belongs.
    Drawn by the page, not by the panel's fragment, like every button that acts (`one_click`)."""
    pair = ss.drawn_hesitation = ss.get("hesitation")
    if pair is None:
        return
    best, second = pair
    with st.container(key="hesitation"):
        st.info(
            md(f"Undecided between “{best}” and “{second}”. If the camera shows one of them, add this frame to it:")
        )
        with st.container(horizontal=True, gap="small"):
            for label in (best, second):
                if label in ss.slots:
                    st.button(
                        md(f"Add to “{label}”"),
                        key=f"hesitation_add_{ss.slots[label]}",
                        on_click=on_add,
                        args=(ss.slots[label],),
                        kwargs={"where": "main"},
                        disabled=read_only(),
                    )


def stats_table(snap: Snapshot) -> None:
    """Frame rates, timings and memory. "From the model": frames the model embedded; "reused": a
    still scene kept the last answer (knn.live.steady)."""
    s = snap.stats
    rss = psutil.Process().memory_info().rss
    store = snap.n_examples * snap.dim * 4
    rows = {
        "frames/s received · answered": f"{s.received_fps:.1f} · {s.answered_fps:.1f}",
        "answered frames/s from the model · reused": f"{s.processed_fps:.1f} · {s.reused_fps:.1f}",
        "frames received · from the model · reused · dropped": (
            f"{s.frames_received} · {s.frames_processed} · {s.frames_reused} · {s.frames_dropped}"
        ),
        "embedding time p50 · p95": f"{_ms(s.embed_ms_p50)} · {_ms(s.embed_ms_p95)}",
        "KNN time p50 · p95": f"{_ms(s.knn_ms_p50)} · {_ms(s.knn_ms_p95)}",
        # knn.live.answer_size: many cameras on this process send the captioned video back smaller
        "video sent back": f"half size ({ANSWER_SIZE.cameras} cameras on this server process)"
        if ANSWER_SIZE.halved()
        else "the camera's size",
        "examples stored": f"{snap.n_examples} ({store / 1024**2:.1f} MB of embeddings)",
        "process memory": f"{rss / 1024**2:.0f} MB",
    }
    with st.container(key="live_stats"):
        st.table(pd.DataFrame({"": list(rows.values())}, index=list(rows)), border="horizontal", hide_header=True)


def _ms(value: float) -> str:
    if value != value:  # nan before the first frame
        return "—"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def why(snap: Snapshot) -> None:
    """The nearest stored examples, with their pictures: why the classifier answered as it did."""
    if not snap.neighbors:
        return
    st.markdown("**Why this answer:** the nearest stored examples")
    # A row that wraps, not columns: columns stack on a phone, one full-width picture each.
    with st.container(horizontal=True, gap="small"):
        for n in snap.neighbors:
            with st.container(width=THUMBNAIL_PX):
                if n.image:
                    st.image(n.image, width="stretch")
                st.caption(md(f"{n.label} · similarity {n.similarity:.2f}"))
