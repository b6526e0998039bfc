"""The Settings section (k, the vote rule in use, the unknown threshold, Record's length, backbone and input, augment,
mirror) and the backbone switch it asks for, done at the start of the next run."""

from __future__ import annotations

import streamlit as st

from knn.core.rule_trial import Rule
from knn.live.session import RECORD_SECONDS
from knn.model.backbones import BACKBONES, RESOLUTIONS, get_backbone
from knn.model.weights import WeightsUnavailable

from ..actions import on_augment, on_backbone_choice, on_k, on_mirror, on_threshold
from ..markdown import md
from ..messages import progress_bar, say
from ..resources import embedder_for
from ..state import live, read_only, ss
from ..streamlit_fixes import show_backbone_in_use


def settings() -> None:
    """The widgets take their defaults from the engine (ui.streamlit_fixes says why)."""
    session = live()
    current = get_backbone(session.embedder.backbone)
    frozen = read_only()  # this tab stopped saving (ui.views.saving)
    st.number_input(
        "k: neighbors that vote",
        min_value=1,
        max_value=50,
        value=session.classifier.k,
        step=1,
        key="k",
        disabled=frozen,
        on_change=on_k,
    )
    clf = session.classifier
    with st.container(key="rule_in_use"):
        st.caption(
            md(f"Vote: {Rule(clf.vote, clf.centroid_weight, clf.centred).describe()}"),
            help="How the nearest examples and the class centroids decide (README). The coach's "
            "“Try other settings” tests the others on your examples and offers a switch.",
        )
    st.slider(
        "Unknown below similarity (0 = never unknown)",
        min_value=0.0,
        max_value=1.0,
        value=float(session.classifier.unknown_threshold or 0.0),
        step=0.01,
        key="threshold",
        help="The best similarity is shown under the prediction. A centred project's similarities "
        "run lower than plain cosine (a good match about 0.5 rather than 0.9): set this by watching it.",
        disabled=frozen,
        on_change=on_threshold,
    )
    st.slider(
        "Record for (seconds)", min_value=1.0, max_value=10.0, value=RECORD_SECONDS, step=0.5, key="record_seconds"
    )
    st.selectbox(
        "Backbone",
        options=list(BACKBONES),
        format_func=lambda b: BACKBONES[b].label,
        index=list(BACKBONES).index(current.network),
        key="network",
        disabled=frozen,
        on_change=on_backbone_choice,
        help="Switching re-embeds every stored example from its stored image",
    )
    st.radio(
        "Input",
        options=list(RESOLUTIONS),
        index=list(RESOLUTIONS).index(current.size),
        key="resolution",
        disabled=frozen,
        on_change=on_backbone_choice,
        horizontal=True,
        format_func=lambda size: f"{RESOLUTIONS[size]} ({size} px)",
        help="Accurate sees 320×320 pixels instead of 224×224: twice the work per frame, better with "
        "several examples per class of detailed objects (README's few-shot table)",
    )
    st.toggle(
        "Augment new examples",
        value=session.augment,
        key="augment",
        disabled=frozen,
        on_change=on_augment,
        help="Store each new example with its mirror and five crops (12 vectors): it is also recognised "
        "a little off-centre or mirrored. Each Add then costs 12 embeddings.",
    )
    st.toggle("Mirror the preview", value=session.mirror, key="mirror", on_change=on_mirror, disabled=frozen)


def switch_backbone_if_asked() -> None:
    """The Backbone or Input setting changed: load that model and re-embed the stored examples."""
    session = live()
    if not ss.pop("backbone_asked", False):
        return
    wanted = get_backbone(ss.network).at(int(ss.resolution)).id
    if wanted == session.embedder.backbone:
        return
    try:
        embedder = embedder_for(wanted)
    except WeightsUnavailable as exc:
        say("error", f"Cannot use {wanted}: {exc}")
        show_backbone_in_use()
        return
    with progress_bar("Re-embedding the stored examples…") as progress:
        dropped = session.set_embedder(embedder, progress)
    say("success", f"Now using {embedder.backbone}; every example was re-embedded.")
    if dropped:
        say("warning", f"{dropped} examples had no stored image and were removed.")
