"""The real app in a subprocess: `streamlit run app.py` on a free loopback port, with no ICE
servers (loopback) unless given some, its project store in a folder of its own (never the user's
`~/.local/share/knn`), and its live metrics file (knn.serving.metrics) to read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from . import ROOT
from .processes import ChildProcess, free_port

WITHOUT_UVLOOP = "import sys; sys.modules['uvloop'] = None; from streamlit.web.cli import main; main()"
"""`streamlit` as a command, with uvloop hidden: Streamlit then runs its server on asyncio's own loop
(it has no setting for it; KNN_UVLOOP=0 asks for this, knn.serving.settings)."""


class AppServer(ChildProcess):
    """`streamlit run app.py` on a free port; `with AppServer() as app: app.url`.

    Args:
        env: extra environment variables for the server (KNN_ICE_SERVERS is "[]": loopback);
            KNN_UVLOOP=0 starts it on asyncio's own event loop.
        options: extra `streamlit run` options, e.g. {"server.disconnectedSessionTTL": 2}.
        metrics: when true the app writes its live metrics (knn.serving.metrics) to `self.metrics_file`
            every `metrics_interval` seconds; `metrics()` reads them.
        log: where the server's output goes (a temporary file by default).
        nice: the server's scheduling niceness (`nice -n`; negative needs root), e.g. to give it
            priority over browsers that stand for users' own machines (bench/live.py --server-nice).
        data_dir: the project store's folder (KNN_DATA_DIR); by default one inside the server's
            temporary folder, gone with it. Give the same folder to a server started again to
            find its projects there (and `port`, for the very same links).
        port: the port to serve on (a free one by default).
        root: the checkout whose app.py runs (this one by default), e.g. an older commit's worktree
            that a benchmark compares against.
        script: the page to run instead of app.py, relative to `root` (a test's own page).
    """

    STOP_SECONDS = 15.0

    def __init__(
        self,
        env: dict[str, str] | None = None,
        options: dict[str, object] | None = None,
        metrics: bool = False,
        metrics_interval: float = 1.0,
        log: Path | None = None,
        start_timeout: float = 60.0,
        nice: int = 0,
        data_dir: Path | None = None,
        port: int | None = None,
        root: Path | None = None,
        script: str = "app.py",
    ) -> None:
        self._nice = nice
        self.root = root or ROOT
        self.script = script
        self._tmp = tempfile.TemporaryDirectory(prefix="knn-app-")
        tmp = Path(self._tmp.name)
        self.log_path = log or tmp / "streamlit.log"
        self.metrics_file = tmp / "metrics.json" if metrics else None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir or tmp / "data"
        self._env = {**os.environ, "KNN_ICE_SERVERS": "[]", "KNN_DATA_DIR": str(self.data_dir), **(env or {})}
        if self.metrics_file is not None:
            self._env["KNN_METRICS_FILE"] = str(self.metrics_file)
            self._env["KNN_METRICS_INTERVAL"] = str(metrics_interval)
        self._options = {
            "server.headless": "true",
            "server.port": self.port,
            "server.address": "127.0.0.1",
            "browser.gatherUsageStats": "false",
            **(options or {}),
        }
        self._start_timeout = start_timeout

    def start(self) -> None:
        stock_loop = self._env.get("KNN_UVLOOP", "").strip() == "0"
        args = [sys.executable, *(["-c", WITHOUT_UVLOOP] if stock_loop else ["-m", "streamlit"]), "run", self.script]
        if self._nice:
            args = ["nice", "-n", str(self._nice), *args]
        for key, value in self._options.items():
            args += [f"--{key}", str(value)]
        self._log = self.log_path.open("a+")  # a restart's log follows the first run's
        self.process = subprocess.Popen(args, cwd=self.root, env=self._env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self._start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f"streamlit did not start:\n{log}")
            time.sleep(0.5)

    def restart(self, env: dict[str, str] | None = None) -> None:
        """End the server (if `kill()` has not) and start it again on the same port with the same
        project folder: the same links reach the same projects. `env` changes its environment."""
        self.end()
        self._env.update(env or {})
        if self.metrics_file is not None:
            self.metrics_file.unlink(missing_ok=True)  # the old process's sessions are gone
        self.start()

    def metrics(self) -> dict | None:
        """The app's latest metrics snapshot (see knn.serving.metrics), or None before the first."""
        if self.metrics_file is None:
            raise RuntimeError("this server was started without metrics=True")
        try:
            return json.loads(self.metrics_file.read_text())
        except (OSError, ValueError):  # not written yet (it is replaced atomically)
            return None

    def session_ids(self) -> set[int]:
        """The LiveSessions alive in the server now (none before the first page ran)."""
        snap = self.metrics()
        return set() if snap is None else {s["id"] for s in snap["sessions"]}

    def session(self, sid: int) -> dict | None:
        """One LiveSession's latest figures (frames_processed, examples, ...), None once it is gone."""
        snap = self.metrics()
        return None if snap is None else next((s for s in snap["sessions"] if s["id"] == sid), None)

    def next_metrics(self, seconds: float = 30) -> dict:
        """The first metrics snapshot the app writes after this call: what it holds now, not an
        interval ago."""
        now = time.time()  # the snapshots' `time` is the epoch
        return self.wait_metrics(lambda m: m["time"] > now, "a metrics snapshot written from now on", seconds)

    def wait_metrics(self, condition, what: str, seconds: float) -> dict:
        """Poll the metrics until `condition(snapshot)` holds; AssertionError with the last one if not."""
        deadline = time.monotonic() + seconds
        snap = None
        while time.monotonic() < deadline:
            snap = self.metrics()
            if snap is not None and condition(snap):
                return snap
            time.sleep(0.25)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}; last metrics: {snap}")


def serve_app(**kwargs):
    """For a module fixture, `yield from serve_app(...)`: an AppServer started for the module's
    tests (a start that fails fails them), stopped after them."""
    import pytest

    try:
        server = AppServer(**kwargs)
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()
