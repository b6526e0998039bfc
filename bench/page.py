"""Server time of one page run as classes and examples grow, through Streamlit's AppTest.

Each count gets a fresh AppTest session whose classifier is replaced by one with that many
classes (and examples with real-sized JPEG thumbnails); then the page is rerun as a click would
rerun it, and the median of the runs is reported. The time is taken inside the script run (a
wrapper runs app.py and records its own duration): AppTest's polling for the run's end grows
with the page's size and is not what a server pays. The camera component is not rendered (it
needs a browser), so this is the page's own cost: the sidebar, the live panel, the open tab.

    python bench/page.py                          # 10, 100, 150, 300 classes
    python bench/page.py --classes 150 600 --examples 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, markdown_table

APP = str(ROOT / "app.py")
WRAPPER = """
import runpy, time
import streamlit as st
t0 = time.perf_counter()
try:
    runpy.run_path({app!r}, run_name="__main__")
finally:
    st.session_state["bench_seconds"] = time.perf_counter() - t0
"""


def classifier(n_classes: int, per_class: int, dim: int):
    from knn.core.classifier import KNNClassifier
    from knn.core.images import encode_jpeg

    rng = np.random.default_rng(0)
    jpeg = encode_jpeg(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
    clf = KNNClassifier(max_examples_per_class=max(1000, per_class))
    for i in range(n_classes):
        clf.add_class(f"class {i}")
    if per_class:
        n = n_classes * per_class
        labels = [f"class {i % n_classes}" for i in range(n)]
        clf.add_many(rng.standard_normal((n, dim)).astype(np.float32), labels, [jpeg] * n)
    return clf


def page_seconds(n_classes: int, per_class: int, runs: int) -> float:
    import streamlit_webrtc
    from streamlit.testing.v1 import AppTest

    streamlit_webrtc.webrtc_streamer = lambda **kwargs: None  # the camera needs a browser
    at = AppTest.from_string(WRAPPER.format(app=APP), default_timeout=600)
    at.run()
    session = at.session_state.live
    session.restore(classifier(n_classes, per_class, session.embedder.dim), session.embedder.backbone, session.embedder)
    if "slots" in at.session_state:
        at.session_state.slots = {}
    at.run()  # the first run with the new classes builds their widgets
    times = []
    for _ in range(runs):
        at.run()
        times.append(at.session_state["bench_seconds"])
    if at.exception:
        raise SystemExit(f"the page failed: {at.exception}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100, 150, 300])
    parser.add_argument("--examples", type=int, default=3, help="examples per class")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for n in args.classes:
        print(f"{n} classes …", file=sys.stderr, flush=True)
        rows.append([n, n * args.examples, f"{page_seconds(n, args.examples, args.runs):.2f}"])
    print(f"\nServer time of one page run (median of {args.runs}), AppTest\n")
    print(markdown_table(["classes", "examples", "seconds per page run"], rows))


if __name__ == "__main__":
    main()
