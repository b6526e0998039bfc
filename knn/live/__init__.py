"""One browser session: the teaching facade, its frame pipeline and the shared model worker.
Knows av.VideoFrame and aiortc's tracks, never Streamlit."""
