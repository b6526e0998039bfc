"""The page's header: the title, the backbone in use, where the project is kept (ui.views.saving)
and the operator's setting problems."""

from __future__ import annotations

from typing import cast

import streamlit as st

from knn.model.backbones import get_backbone
from knn.model.embedder import Embedder
from knn.serving.model_job import ModelJob

from ..markdown import md
from ..resources import model, serving
from ..state import live, ss


def header() -> None:
    """The title, a slot for the backbone caption (filled by `backbone_caption` once a switch or a
    restore is done), one for where the project is kept (filled once this run's changes are
    made) and one for the operator's typos: a fixed number of elements, always."""
    st.title("Webcam KNN classifier")
    ss.caption_slot = st.empty()
    ss.saving_slot = st.empty()
    with st.container(key="operator_problems"):
        for problem in serving().settings.problems:  # the operator's typo, on every run
            st.warning(md(problem))


def backbone_caption() -> None:
    """The backbone in use, in the header's slot, with why it was chosen and where its weights are."""
    embedder = cast(ModelJob | Embedder, live().embedder)  # the page's sessions use ui.resources' embedders
    spec = get_backbone(embedder.backbone)
    job = model()
    if embedder is job and job.loading:
        why = "being loaded"
    elif embedder.backbone == job.backbone and job.choice_reason:
        why = job.choice_reason
    else:
        why = "chosen in Settings or by the project"
    ss.caption_slot.caption(
        f"Backbone: **{md(spec.label.split(' · ')[0])}** (`{embedder.backbone}`), "
        f"{md(spec.mode)} mode ({spec.size} px)",
        help=f"{embedder.dim}-d embeddings, {md(embedder.runtime)} runtime · why: {md(why)} · "
        f"weights: {md(embedder.weights_source)}",
    )
