"""The page: teach classes from the webcam and watch live predictions.  `streamlit run app.py`

The layout only: which view goes where, in what order. Each browser session gets its own
`LiveSession` (ui.state) whose camera frames go to `session.pipeline` (knn.live.pipeline), which
never calls st.*. The views (ui.views) draw the session; their widgets call ui.actions; a fragment
redraws the live panel on a timer without rerunning the page. The model is built once per process
in the background and shared by every session (ui.resources): the page draws before it is ready.

No bare strings at module level: Streamlit's magic would render them on the page.
"""

from __future__ import annotations

import streamlit as st

from ui.links import keep_link_in_url, open_link_if_asked
from ui.messages import begin_run, show_messages
from ui.resources import serving
from ui.state import init_session
from ui.streamlit_fixes import no_referrer
from ui.uploads import restore_if_asked, take_images
from ui.views.camera import camera, ice_problem, quick_add
from ui.views.coach import coach_view, coaching
from ui.views.connection import connection_notices
from ui.views.evaluation import evaluation_view
from ui.views.examples import examples_view
from ui.views.header import backbone_caption, header
from ui.views.live_panel import hesitation_hint, live_panel
from ui.views.model_progress import model_progress
from ui.views.saving import saving_status
from ui.views.settings import switch_backbone_if_asked
from ui.views.sidebar import sidebar

st.set_page_config(page_title="Webcam KNN classifier", page_icon="📷", layout="wide")

# The camera component must keep its place in the element tree on every run: moving it (an element
# more or less anywhere before it) remounts it, which drops the WebRTC connection. So everything
# above it is a fixed number of elements, and whatever comes and goes (messages, progress bars,
# the quick buttons) sits in containers after it, filled once the work they show is done.

serving()
init_session()
begin_run()
header()
no_referrer()
cam_col, panel_col = st.columns([3, 2], gap="large")
with cam_col:
    camera()
    quick = st.container(key="quick")
    notices = st.container(key="notices")
with notices:  # the model's, the URL's project's, the uploads' and the backbone switch's progress show here
    model_progress()
    open_link_if_asked()
    restore_if_asked()
    take_images()
    switch_backbone_if_asked()
keep_link_in_url()  # once the project is stored, its link is the page's URL
backbone_caption()  # in the header's slots, now that this run's changes are made
saving_status()
coached = coaching()
sidebar(coached)
with notices:
    ice_problem()
    connection_notices()
    show_messages(None)  # after the sidebar took its own
with quick:
    quick_add()
with panel_col:
    hesitation_hint()
    live_panel()
coach_view(coached)
examples_tab, evaluation_tab = st.tabs(["Examples", "Evaluation"], key="view", on_change="rerun")
if examples_tab.open:  # a closed tab costs nothing
    with examples_tab:
        examples_view()
if evaluation_tab.open:
    with evaluation_tab:
        evaluation_view()
