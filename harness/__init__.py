"""The harness that tests and benchmarks share: the real app in a subprocess, headless Chromium
with a fake webcam made from real photos, a TURN relay, a load balancer in front, a PostgreSQL.

- `app_server`: `streamlit run app.py` on a free port, its live metrics file.
- `browser`: Chromium launched with a .y4m video as its camera; `Page`, one tab as a user drives it.
- `webcam`: the .y4m videos (photos held still, or a hand-held camera with its schedule).
- `turn`, `balancer`: coturn and HAProxy (deploy/haproxy/haproxy.cfg) on loopback.
- `postgres`: a temporary PostgreSQL cluster on loopback, for the project store's tests and bench.
- `scenes`: what a user does for README's screenshots, step by step; `python -m harness.screenshots`
  takes them.

The product (`app.py`, `knn/`, the page's package) never imports this. No pytest here either:
failures are plain exceptions; `browser.skip_without_chromium` and `app_server.serve_app` import
pytest when a test calls them.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
"""The real photos and reference weights (../shared); never copied into the repository."""


def use_shared_weights() -> None:
    """Never download: weights come from ../shared/models when it is there (MobileNetV2, the app's
    default backbone), else v1 is converted from the PyPI graph. App servers started afterwards
    inherit this environment."""
    os.environ["KNN_OFFLINE"] = "1"
    if (SHARED / "models").is_dir():
        os.environ.setdefault("KNN_WEIGHTS_DIR", str(SHARED / "models"))
