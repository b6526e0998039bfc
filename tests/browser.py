"""Driving the real app in headless Chromium: the server, the browser and one tab as a user sees it.

Shared by the browser tests (tests/test_browser.py, tests/test_faults.py) and the live benchmark
(bench/live.py). No pytest here: failures are plain exceptions, the tests turn them into skips or
failures. Chromium plays a .y4m video (tests/webcam.py writes one from photos) as its camera; the
app runs in a `streamlit run app.py` subprocess with no ICE servers (loopback).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CAMERA_IFRAME = 'iframe[title*="webrtc"]'


class AppServer:
    """`streamlit run app.py` on a free port; `with AppServer() as app: app.url`.

    Args:
        env: extra environment variables for the server (KNN_ICE_SERVERS is "[]": loopback).
        options: extra `streamlit run` options, e.g. {"server.disconnectedSessionTTL": 2}.
        metrics: when true the app writes its live metrics (knn.serving.metrics) to `self.metrics_file`
            every `metrics_interval` seconds; `metrics()` reads them.
        log: where the server's output goes (a temporary file by default).
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        options: dict[str, object] | None = None,
        metrics: bool = False,
        metrics_interval: float = 1.0,
        log: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="knn-app-")
        tmp = Path(self._tmp.name)
        self.log_path = log or tmp / "streamlit.log"
        self.metrics_file = tmp / "metrics.json" if metrics else None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, "KNN_ICE_SERVERS": "[]", **(env or {})}
        if self.metrics_file is not None:
            self._env["KNN_METRICS_FILE"] = str(self.metrics_file)
            self._env["KNN_METRICS_INTERVAL"] = str(metrics_interval)
        self._options = {"server.headless": "true", "server.port": self.port,
                         "server.address": "127.0.0.1", "browser.gatherUsageStats": "false",
                         **(options or {})}
        self._start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "AppServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        args = [sys.executable, "-m", "streamlit", "run", "app.py"]
        for key, value in self._options.items():
            args += [f"--{key}", str(value)]
        self._log = self.log_path.open("w+")
        self.process = subprocess.Popen(args, cwd=ROOT, env=self._env, stdout=self._log, stderr=subprocess.STDOUT)
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

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            self._log.close()
        self._tmp.cleanup()

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

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


def launch(playwright, video: Path | None, cameras: int = 1):
    """Headless Chromium whose camera plays `video` (read at launch: another video, another browser).

    Without a video it has `cameras` fake cameras playing Chromium's own moving test pattern
    (a file is one camera only), e.g. a phone's front and back camera.
    """
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is absent: install Debian's chromium")
    fake = ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"] if video \
        else [f"--use-fake-device-for-media-stream=device-count={cameras}"]
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--use-fake-ui-for-media-stream",
            # Several tabs stream at once: keep those in the background running at full speed.
            "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            *fake,
        ],
    )


class Page:
    """The app in one browser tab: what a user clicks and reads."""

    def __init__(self, page, url: str):
        self.page = page
        page.goto(url)
        # The first visit in a process loads the embedder: allow for it.
        page.wait_for_selector(".st-key-live_prediction", timeout=120_000)

    def _component(self):
        return self.page.frame_locator(CAMERA_IFRAME).first

    def start_camera(self) -> None:
        """Press START; once more if no frame arrives (a click during a rerun can get lost)."""
        self.page.bring_to_front()
        component = self._component()
        for attempt in range(2):
            component.get_by_role("button", name="START").click()
            try:
                self.wait_for(self.camera_live, "the first processed frame", 45)
                return
            except AssertionError:
                if attempt:
                    raise
                stop = component.get_by_role("button", name="STOP")
                if stop.count():
                    stop.click()

    def camera_stopped(self) -> bool:
        """START is showing: the camera is not streaming (it stopped, or the component remounted)."""
        return self._component().get_by_role("button", name="START").count() > 0

    def mark_camera(self) -> None:
        """Tag the camera component's iframe; a remount (which drops the stream) replaces it."""
        self.page.locator(CAMERA_IFRAME).first.evaluate("frame => { frame.knnMark = true; }")

    def camera_unmoved(self) -> bool:
        """The tagged iframe is still the camera component's (it was never remounted)."""
        return bool(self.page.locator(CAMERA_IFRAME).first.evaluate("frame => frame.knnMark === true"))

    def stop_camera(self) -> None:
        self._component().get_by_role("button", name="STOP").click()
        self._component().get_by_role("button", name="START").wait_for(timeout=20_000)

    def camera_live(self) -> bool:
        """Frames are being processed now: the rate on the live panel is above zero."""
        return self.prediction() != "—" and self.processed_fps() > 0

    def prediction(self) -> str:
        return self.page.locator('.st-key-live_prediction [data-testid="stMetricValue"]').first.inner_text().strip()

    def stats(self) -> str:
        return self.page.locator(".st-key-live_stats").first.inner_text()

    def stat(self, name: str) -> str:
        """A value of the live panel's table, e.g. stat("frames/s received") -> "29.5 · 29.4"."""
        lines = [line.strip() for line in self.stats().splitlines() if line.strip()]
        for i, line in enumerate(lines):  # a row reads "label<TAB>value", or label and value lines
            label, _, value = line.partition("\t")
            if label.strip().startswith(name):
                if value.strip():
                    return value.strip()
                if i + 1 < len(lines):
                    return lines[i + 1]
        raise AssertionError(f"no {name!r} on the live panel: {lines}")

    def processed_fps(self) -> float:
        """The live panel's processed frames per second (measured over its last 2 s)."""
        return float(self.stat("frames/s received").split("·")[-1])

    def count(self, slot: int) -> int:
        text = self.page.locator(f'.st-key-class_{slot} [data-testid="stCaptionContainer"]').first.inner_text()
        return int(text.split()[0])

    def button(self, key: str):
        """The button a widget `key` names (Streamlit also renders a hidden copy to measure it)."""
        return self.page.locator(f".st-key-{key} button:visible").first

    def sidebar_section(self, title: str) -> None:
        """Open a sidebar expander (Settings, Project) unless it is open."""
        summary = self.page.locator('[data-testid="stSidebar"] summary', has_text=title).first
        if summary.locator("xpath=..").get_attribute("open") is None:
            summary.click()

    def add(self, slot: int, times: int = 1, pause: float = 0.4) -> None:
        for i in range(times):
            before = self.count(slot)
            self.page.locator(f".st-key-add_{slot} button:visible").click()
            self.wait_for(lambda: self.count(slot) == before + 1, f"example {i + 1} in class {slot + 1}", 20)
            time.sleep(pause)  # the video moves on to another photo

    def upload(self, slot: int, files: list[Path]) -> None:
        before = self.count(slot)
        self.page.locator(f'.st-key-class_{slot} input[type="file"]').set_input_files([str(f) for f in files])
        self.wait_for(lambda: self.count(slot) == before + len(files), f"{len(files)} uploads in class {slot + 1}", 60)

    def wait_for(self, condition, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except Exception:  # the page is rerunning: elements come and go
                pass
            time.sleep(0.25)
        try:
            state = f"prediction {self.prediction()!r}; {self.stats()}"
        except Exception as exc:  # the page itself is gone
            state = f"page unreadable: {exc}"
        raise AssertionError(f"timed out after {seconds} s waiting for {what}; {state}")
