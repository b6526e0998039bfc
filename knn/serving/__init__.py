"""The serving process: settings read once from the environment, the adaptations of aiortc, aioice,
streamlit-webrtc and Streamlit, memory, metrics. Imports knn.live; nothing in knn.live imports it."""
