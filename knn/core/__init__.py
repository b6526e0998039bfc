"""The engine's core: classifier, storage, voting, evaluation, project files, images. NumPy and
Pillow only: no threads, no video, no Streamlit, no TensorFlow."""
