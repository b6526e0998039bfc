"""Driving the real app in headless Chromium: the server, the browser and one tab as a user sees it.

Shared by the browser tests (tests/test_browser.py, test_faults.py, test_turn.py,
test_balancer.py) and the live benchmark (bench/live.py). No pytest here: failures are plain
exceptions, the tests turn them into skips or failures. Chromium plays a .y4m video
(tests/webcam.py writes one from photos) as its camera; the app runs in a `streamlit run app.py`
subprocess with no ICE servers (loopback) unless given some, e.g. a `TurnServer`'s; a `Balancer`
(HAProxy with deploy/haproxy/haproxy.cfg) can stand in front of several.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"


def free_port(kinds=(socket.SOCK_STREAM,)) -> int:
    """A loopback port free now for each socket kind (TCP, and UDP too for a TURN server)."""
    while True:
        with socket.socket(type=kinds[0]) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for kind in kinds[1:]:
                with socket.socket(type=kind) as s:
                    s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def find_binary(name: str) -> str | None:
    """A Debian package's program, also where a non-root PATH does not look (haproxy is in /usr/sbin)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def wait_until(condition, what: str, seconds: float, log=lambda: "") -> None:
    """Poll `condition()` until true; RuntimeError naming `what` (and `log()`) if it never is."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds} s waiting for {what}\n{log()}")
        time.sleep(0.2)


CAMERA_IFRAME = 'iframe[title*="webrtc"]'


class ChildProcess:
    """A program a test starts, used with `with`: stopped on exit (terminate, then kill), its
    temporary folder removed, its log readable meanwhile. Subclasses set `_tmp` and `log_path` and
    start `process` in `start()`, with `_log` the open file its output goes to (None when the program
    writes `log_path` itself)."""

    STOP_SECONDS = 10.0
    process: subprocess.Popen | None = None
    _log = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            if self._log is not None:
                self._log.close()
                self._log = None
        self._tmp.cleanup()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def skip_without_chromium() -> None:
    """Skip the calling test module where Chromium or Playwright is absent."""
    import pytest

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: the browser tests need Chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")


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


class AppServer(ChildProcess):
    """`streamlit run app.py` on a free port; `with AppServer() as app: app.url`.

    Args:
        env: extra environment variables for the server (KNN_ICE_SERVERS is "[]": loopback).
        options: extra `streamlit run` options, e.g. {"server.disconnectedSessionTTL": 2}.
        metrics: when true the app writes its live metrics (knn.serving.metrics) to `self.metrics_file`
            every `metrics_interval` seconds; `metrics()` reads them.
        log: where the server's output goes (a temporary file by default).
        nice: the server's scheduling niceness (`nice -n`; negative needs root), e.g. to give it
            priority over browsers that stand for users' own machines (bench/live.py --server-nice).
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
    ) -> None:
        self._nice = nice
        self._tmp = tempfile.TemporaryDirectory(prefix="knn-app-")
        tmp = Path(self._tmp.name)
        self.log_path = log or tmp / "streamlit.log"
        self.metrics_file = tmp / "metrics.json" if metrics else None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, "KNN_ICE_SERVERS": "[]", **(env or {})}
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
        args = [sys.executable, "-m", "streamlit", "run", "app.py"]
        if self._nice:
            args = ["nice", "-n", str(self._nice), *args]
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


class TurnServer(ChildProcess):
    """coturn's `turnserver` on loopback with one static user: `with TurnServer() as turn: turn.ice_servers()`.

    Peers on loopback are allowed (the browser, the app and the relay share this machine; coturn
    refuses them by default), relay addresses are 127.0.0.1, no TLS/DTLS listeners and no admin CLI.
    Its log (verbose: one line per TURN request, and each allocation's byte counts when it ends)
    shows what the relay did: `allocations()`, `relayed()`.
    """

    BINARY = "turnserver"

    def __init__(self) -> None:
        self.binary = find_binary(self.BINARY)
        if self.binary is None:
            raise FileNotFoundError("coturn's turnserver is absent: apt-get install coturn")
        self._tmp = tempfile.TemporaryDirectory(prefix="knn-turn-")
        tmp = Path(self._tmp.name)
        self.log_path = tmp / "turn.log"
        self.port = free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
        self.username, self.password, self.realm = "knn", secrets.token_hex(8), "knn.test"
        self._args = [
            self.binary,
            "-n",  # no config file: only these options
            "--listening-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--relay-ip=127.0.0.1",
            "--allow-loopback-peers",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--lt-cred-mech",
            "--fingerprint",
            f"--user={self.username}:{self.password}",
            f"--realm={self.realm}",
            f"--userdb={tmp / 'turndb'}",
            f"--pidfile={tmp / 'turn.pid'}",
            f"--log-file={self.log_path}",
            "--simple-log",
            "--no-stdout-log",
            "--verbose",
        ]

    def start(self) -> None:
        self.process = subprocess.Popen(self._args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(
                lambda: "UDP listener opened" in self.log() or self.process.poll() is not None,
                "turnserver to listen",
                20,
                self.log,
            )
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited with {self.process.returncode}:\n{self.log()}")
        except RuntimeError:
            self.stop()
            raise

    def ice_servers(self, transport: str = "udp") -> list[dict]:
        """RTCIceServer dicts for this relay, reached over `transport` ("udp" or "tcp")."""
        return [
            {
                "urls": [f"turn:127.0.0.1:{self.port}?transport={transport}"],
                "username": self.username,
                "credential": self.password,
            }
        ]

    def allocations(self) -> set[str]:
        """Ids of the TURN sessions whose ALLOCATE request succeeded."""
        return set(
            re.findall(
                r"session (\d+): realm <[^>]*> user <[^>]*>: incoming packet ALLOCATE processed, success", self.log()
            )
        )

    def relayed(self) -> dict[str, tuple[int, int]]:
        """Per released allocation (coturn logs its counts then): bytes its relay address received
        from peers and sent to them."""
        return {
            sid: (int(rb), int(sb))
            for sid, rb, sb in re.findall(r"session (\d+): peer usage: .*?rb=(\d+), sp=\d+, sb=(\d+)", self.log())
        }

    def over_tcp(self) -> set[str]:
        """TURN sessions whose client came over TCP (coturn names TCP when such a session ends:
        "TCP socket closed remotely", "TCP socket error", "reason: TCP connection closed")."""
        return set(re.findall(r"session (\d+): .*\bTCP\b", self.log()))


class Balancer(ChildProcess):
    """HAProxy with the shipped deploy/haproxy/haproxy.cfg in front of `apps`, on a free loopback port.

    The config reads its addresses from the environment (KNN_LB_BIND, KNN_APP1...), so this runs the
    very file an operator deploys. `url` is what browsers open; `log()` has one line per request,
    naming the process (app1, app2, ...) it went to.
    """

    BINARY = "haproxy"

    def __init__(self, apps: list[AppServer], config: Path = HAPROXY_CONFIG) -> None:
        self.binary = find_binary(self.BINARY)
        if self.binary is None:
            raise FileNotFoundError("haproxy is absent: apt-get install haproxy")
        self._tmp = tempfile.TemporaryDirectory(prefix="knn-lb-")
        self.log_path = Path(self._tmp.name) / "haproxy.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.names = {f"app{i}": app for i, app in enumerate(apps, 1)}
        self._env = {
            **os.environ,
            "KNN_LB_BIND": f"127.0.0.1:{self.port}",
            **{f"KNN_APP{i}": f"127.0.0.1:{app.port}" for i, app in enumerate(apps, 1)},
        }
        self._config = config

    def start(self) -> None:
        self._log = self.log_path.open("w+")
        self.process = subprocess.Popen(
            [self.binary, "-db", "-f", str(self._config)], env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n{self.log()}")
            try:  # through the balancer to a process: every one is up once each answered a check
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            wait_until(ready, "haproxy to answer", 30, self.log)
        except RuntimeError:
            self.stop()
            raise

    def server_of(self, context) -> str:
        """The process (app1, app2, ...) a browser context is pinned to, from its cookie."""
        (name,) = [c["value"] for c in context.cookies(self.url) if c["name"] == "KNN_SERVER"]
        return name


def launch(playwright, video: Path | None, cameras: int = 1):
    """Headless Chromium whose camera plays `video` (read at launch: another video, another browser).

    Without a video it has `cameras` fake cameras playing Chromium's own moving test pattern
    (a file is one camera only), e.g. a phone's front and back camera.
    """
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is absent: install Debian's chromium")
    fake = (
        ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
        if video
        else [f"--use-fake-device-for-media-stream=device-count={cameras}"]
    )
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--use-fake-ui-for-media-stream",
            # Several tabs stream at once: keep those in the background running at full speed.
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            *fake,
        ],
    )


RECORD_PEERS = """
(() => {
  // Observation only: every RTCPeerConnection the page makes is also kept in window.__knnPeers,
  // so a test can read its getStats() (which candidates carry the call).
  const Native = window.RTCPeerConnection;
  if (!Native || Native.__knnRecorded) return;
  const peers = (window.__knnPeers = []);
  class Recorded extends Native {
    constructor(...args) { super(...args); peers.push(this); }
  }
  Recorded.__knnRecorded = true;
  window.RTCPeerConnection = Recorded;
})();
"""
"""An init script for a browser context (`context.add_init_script(RECORD_PEERS)`): see `Page.ice_pairs`."""

SELECTED_PAIRS = """
async () => Promise.all((window.__knnPeers || []).map(async (pc) => {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  const local = pair && stats.get(pair.localCandidateId), remote = pair && stats.get(pair.remoteCandidateId);
  const offered = pc.remoteDescription ? [...pc.remoteDescription.sdp.matchAll(/ typ (\\w+)/g)].map((m) => m[1]) : [];
  return {state: pc.connectionState, policy: pc.getConfiguration().iceTransportPolicy,
          remote_offered: [...new Set(offered)].sort(),
          local: local && local.candidateType, remote: remote && remote.candidateType,
          local_address: local && `${local.address}:${local.port}`,
          remote_address: remote && `${remote.address}:${remote.port}`,
          bytes_sent: pair ? pair.bytesSent : 0, bytes_received: pair ? pair.bytesReceived : 0};
}))
"""


class Page:
    """The app in one browser tab: what a user clicks and reads."""

    def __init__(self, page, url: str):
        self.page = page
        # The first visit in a process loads the embedder, and a server busy with many cameras
        # serves the page slowly: allow for both.
        page.goto(url, timeout=120_000)
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
        """Frames are being answered now: the rate on the live panel is above zero."""
        return self.prediction() != "—" and self.answered_fps() > 0

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

    def answered_fps(self) -> float:
        """The live panel's answered frames per second (captioned results sent back, from the
        model or reused for a still scene; measured over its last 2 s)."""
        return float(self.stat("frames/s received").split("·")[-1])

    def fresh_and_reused_fps(self) -> tuple[float, float]:
        """The live panel's answered frames per second that the model saw, and that reused its answer."""
        fresh, reused = self.stat("answered frames/s").split("·")
        return float(fresh), float(reused)

    def count(self, slot: int) -> int:
        text = self.page.locator(f'.st-key-class_{slot} [data-testid="stCaptionContainer"]').first.inner_text()
        return int(text.split()[0])

    def button(self, key: str):
        """The button a widget `key` names (Streamlit also renders a hidden copy to measure it)."""
        return self.page.locator(f".st-key-{key} button:visible").first

    def sidebar_section(self, title: str) -> None:
        """Open a sidebar expander (Settings, Project) unless it is open."""
        _expand(self.page.locator('[data-testid="stSidebar"] summary', has_text=title).first)

    def uploader(self, slot: int):
        """The file input of a class card's uploader, opened and shown as a user would find it: a
        file set on the closed one of a page still settling sometimes never left the browser
        (docs/performance.md, stop 26)."""
        card = self.page.locator(f".st-key-class_{slot}")
        _expand(card.locator("summary", has_text="Upload images").first)
        card.locator('[data-testid="stFileUploaderDropzone"]').wait_for(state="visible", timeout=30_000)
        return card.locator('input[type="file"]')

    def add(self, slot: int, times: int = 1, pause: float = 0.4) -> None:
        for i in range(times):
            before = self.count(slot)
            self.page.locator(f".st-key-add_{slot} button:visible").click()
            what = f"example {i + 1} in class {slot + 1}"
            self.wait_for(lambda before=before: self.count(slot) == before + 1, what, 20)
            time.sleep(pause)  # the video moves on to another photo

    def upload(self, slot: int, files: list[Path]) -> None:
        before = self.count(slot)
        self.uploader(slot).set_input_files([str(f) for f in files])
        self.wait_for(lambda: self.count(slot) == before + len(files), f"{len(files)} uploads in class {slot + 1}", 60)

    def restore_project(self, path: Path, classes: list[str]) -> None:
        """Upload a project file to the Project section's uploader; wait for its `classes` on the cards."""
        self.page.locator('[class*="st-key-project_upload_"] input[type="file"]').set_input_files(str(path))
        try:
            self.wait_for(lambda: self.class_names() == classes, f"the classes of {path.name}", 90)
        except AssertionError as exc:  # say what the cards showed instead
            raise AssertionError(f"{exc}; the cards read {self.class_names()!r}") from None

    def class_names(self) -> list[str]:
        """The class names on the sidebar's cards, in order."""
        return [box.input_value() for box in self.page.locator('[class*="st-key-name_"] input').all()]

    def ice_pairs(self) -> list[dict]:
        """For each RTCPeerConnection of the camera component (needs `RECORD_PEERS`): its state,
        ICE transport policy, the candidate types the server offered in its answer, and the
        selected candidate pair's types ("host", "srflx", "relay"), addresses and bytes."""
        frame = self.page.locator('iframe[title*="webrtc"]').first.element_handle().content_frame()
        return frame.evaluate(SELECTED_PAIRS)

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


def _expand(summary) -> None:
    """Open the expander whose `summary` this is, unless it is open."""
    if summary.locator("xpath=..").get_attribute("open") is None:
        summary.click()
