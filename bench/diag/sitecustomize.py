"""Loaded by the app server of `bench/live.py --webrtc-log FILE` (PYTHONPATH): streamlit-webrtc's
DEBUG and aiortc's INFO lines into FILE, which is how the lost streams were traced
(docs/performance.md). Diagnostics only: the app never imports this."""
import logging
import os

_path = os.environ.get("KNN_BENCH_WEBRTC_LOG")
if _path:
    _handler = logging.FileHandler(_path)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
    for _name, _level in (("streamlit_webrtc", logging.DEBUG), ("aiortc", logging.INFO)):
        _logger = logging.getLogger(_name)
        _logger.setLevel(_level)
        _logger.addHandler(_handler)
