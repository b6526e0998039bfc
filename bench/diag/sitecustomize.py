"""Loaded by the app server of `bench/live.py --webrtc-log FILE` (PYTHONPATH): streamlit-webrtc's
DEBUG and aiortc's and aioice's INFO lines into FILE, which is how the lost streams were traced
(docs/performance.md). Diagnostics only: the app never imports this."""

import logging
import os

_path = os.environ.get("KNN_BENCH_WEBRTC_LOG")
if _path:
    _handler = logging.FileHandler(_path)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
    for _name, _level in (("streamlit_webrtc", logging.DEBUG), ("aiortc", logging.INFO), ("aioice", logging.INFO)):
        _logger = logging.getLogger(_name)
        _logger.setLevel(_level)
        _logger.addHandler(_handler)


def _watch_event_loop(path: str, every: float = 0.02) -> None:
    """Each second, the longest wait of a callback put on Streamlit's event loop (where aiortc
    answers ICE checks and sends RTP): a stalled loop shows here before a connection drops."""
    import threading
    import time

    def run() -> None:
        import sys

        loop = None
        while loop is None:  # importing streamlit_webrtc here, before the app does, breaks its component
            time.sleep(0.5)
            eventloop = sys.modules.get("streamlit_webrtc.eventloop")
            try:
                loop = eventloop and eventloop.get_global_event_loop()
            except Exception:  # no runtime yet
                loop = None
        waits: list[float] = []
        second = time.time()
        with open(path, "a") as out:
            while True:
                sent = time.perf_counter()
                loop.call_soon_threadsafe(lambda sent=sent: waits.append(time.perf_counter() - sent))
                time.sleep(every)
                if time.time() - second >= 1.0:
                    second = time.time()
                    done, waits[:] = list(waits), []
                    longest = max(done, default=float("nan"))
                    out.write(f"{second:.2f} loop waits: {len(done)} answered, longest {1000 * longest:.0f} ms\n")
                    out.flush()

    threading.Thread(target=run, name="loop-watch", daemon=True).start()


if os.environ.get("KNN_BENCH_LOOP_LOG"):
    _watch_event_loop(os.environ["KNN_BENCH_LOOP_LOG"])
