"""The page's parts; Streamlit is imported here and in app.py only.

app.py lays the page out from `ui.views`; the views' widgets call `ui.actions`, which change the
session's `LiveSession` (`ui.state`) and say what happened through `ui.messages`. Every workaround
of Streamlit's or streamlit-webrtc's behaviour is in `ui.streamlit_fixes`, with its reason.
"""
