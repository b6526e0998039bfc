"""The live pipeline under load: the real app, headless Chromium tabs with fake 30 fps webcams.

    python bench/live.py                       # 1, 2 and 4 sessions, 60 s each
    python bench/live.py --sessions 1 --seconds 60
    python bench/live.py --sessions --soak 600 # only the 10-minute soak
    python bench/live.py --quick               # a smoke run: 1 and 2 sessions, 10 s each
    python bench/live.py --balancer            # 4 sessions through HAProxy over 1, then 2 processes
    python bench/live.py --video handheld --sessions 4 8 --without-steady   # steady scenes (issue 13)
    python bench/live.py --peers --video handheld --sessions 8 --no-ramp     # the server alone: no browsers
    python bench/live.py --video handheld --sessions 1 4 --without-store   # the project store off, then on

For each session count N a fresh `streamlit run app.py` server starts with its metrics file on
(env KNN_METRICS_FILE, see knn/serving/metrics.py); one headless Chromium, whose fake camera plays a
640×480, 30 fps .y4m made from the rock/paper/scissors photos in ../shared, opens N browser
contexts (N users, each its own Streamlit session) and presses START in each. After a warm-up the
benchmark reads the server's metrics every second for `--seconds` and reports per session:

- frames received and processed per second, frames dropped (skipped because a newer frame was
  already waiting), counted by the session's LiveSession on the server;
- capture-to-overlay latency p50/p95 over the run, and p95 over its first and last 10 s (flat =
  no growing backlog). Each processed frame's latency is the moment aiortc's encoder takes its
  captioned result (knn.live.pipeline.ResultTrack) minus its capture time. The capture time is
  the frame's RTP timestamp (`frame.time`, the browser's capture clock), mapped onto the server's
  clock by the smallest (arrival - capture) seen in that stream (knn.live.stats.CaptureClock): the
  quickest frame of the stream is taken to have waited for nothing. So the figure covers the time
  a frame waits for the model plus its processing, but not the constant part of the transport
  (browser encode, loopback network, jitter buffer, VP8 decode);
- per run: CPU of the server process (psutil, 100% = one core), its resident memory (RSS) at the
  end of the run, its thread count; Chromium's CPU (all its processes) for context.

`--soak S` streams one session for S seconds and presses Add every `--add-every` seconds (cycling
through the three classes), and reports memory, frame rate and latency minute by minute; the
floor is memory at the end within 10% of memory after the first minute.

`--balancer` puts HAProxy with deploy/haproxy/haproxy.cfg (sticky sessions) in front of 1, then
2 (`--processes`) app processes and runs the largest `--sessions` count through it, reporting
each session's rates and latency with the process that served it, and each process's CPU.

`--video handheld` plays a hand-held camera instead (harness/webcam.py `handheld`: a rock, paper
and scissors photo, each held 1-3 s under per-frame sensor noise and a few pixels of tremor, then
swept out by the next); the default video changes photo every third of a second. With `--teach`
(always with `--video handheld`, unless `--no-teach`) each tab is first taught its video's photos (uploaded into its
first three classes), so its prediction names the photo the model last saw, and the benchmark
also reports, per session, the frames answered (captioned results sent back, from the model or
reused for a still scene, knn.live.steady), the model passes, and how long the prediction took
to follow each change of class in the video: the video's schedule is known, each answered
frame's capture time and prediction come with the metrics, and the video's phase in each tab is
the one that best fits the predictions of the frames the model saw. `--without-steady` runs each
count twice, first with every frame sent to the model (KNN_STEADY=0), for the ratio of model
passes within one run.

`--without-store` runs each count twice, first with the project store off (KNN_STORE=0), then on
(SQLite in the server's own folder), for live rates and latency with and without saving in one
run; with `--teach` each tab's uploads create its project, which its saver then watches.

`--peers` puts bench/peers.py's WebRTC peers in the tabs' place: each is a Streamlit session that
starts the camera as the page's frontend does and sends the same video, encoded once (so at a
fixed `--peer-bitrate`, where Chromium adapts its own), and draws nothing. The server then has the
cores to itself, as a class's laptops would leave it; with `--balancer` they go through HAProxy.
`--peers --teach` makes one user a taught Chromium tab and the rest peers: the follow times of
a server carrying every camera but only one browser.

Each measured run starts on a quiet machine: it waits up to `--quiet-wait` minutes for the
1-minute load average to fall below `--quiet-load` (1.0), else it refuses (exit status 3; a
benchmark begun right after another one measures the other one's tail: 22 against 30 answered fps
each for the same eight peers). The load at each run's start and end is in its JSON;
`--any-load` skips the wait (a smoke run, numbers that decide nothing). The browser shares the
cores with the server. `--server-nice -10` (root) runs the server before the tabs on those cores: the tabs stand
for users' own machines, which take no CPU from a real server, and without it the scheduler gives
the server's event loop, one thread among Chromium's many, a fraction of a core
(docs/performance.md). Results are also written as JSON to bench/results/live-*.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, SHARED, markdown_table, shared_path

RESULTS = ROOT / "bench" / "results"


def make_video(path: Path) -> Path:
    """640×480, 30 fps: 4 photos each of rock, paper and scissors, each held for 10 frames (4 s loop)."""
    from PIL import Image

    from harness.webcam import write_y4m
    from knn.core.image_folders import class_folders

    if path.exists():
        return path
    photos = class_folders(shared_path("data/rps"))
    images = [Image.open(p) for label in ("rock", "paper", "scissors") for p in photos[label][:40:10]]
    return write_y4m(path, images, width=640, height=480, fps=30, frames_per_image=10)


def changing_photos() -> list[tuple[str, Path]]:
    """`make_video`'s photos in their order, (class, file)."""
    from knn.core.image_folders import class_folders

    photos = class_folders(shared_path("data/rps"))
    return [(label, p) for label in ("rock", "paper", "scissors") for p in photos[label][:40:10]]


def make_handheld_video(path: Path) -> Path:
    """640×480, 30 fps: a hand-held camera (harness/webcam.py `handheld`), its schedule beside it."""
    from PIL import Image

    from bench.steady import handheld_photos
    from harness.webcam import write_handheld

    if path.exists() and path.with_suffix(".json").exists():
        return path
    picks = handheld_photos()
    write_handheld(path, [Image.open(p) for _, p in picks], [label for label, _ in picks], seed=1)
    return path


def video_plan(kind: str) -> tuple[Path, list, dict[int, list[Path]]]:
    """The video for `kind`, its schedule (harness.webcam.Segment list), and the photos to teach per
    class slot (the video's own photos, so a prediction names the photo the model saw)."""
    from harness.webcam import Segment, read_schedule

    if kind == "handheld":
        video = make_handheld_video(RESULTS / "webcam-handheld-640x480-30fps.y4m")
        from bench.steady import handheld_photos

        picks = handheld_photos()
        segments = read_schedule(video)[1]
    else:
        video = make_video(RESULTS / "webcam-640x480-30fps.y4m")
        picks = changing_photos()
        segments = [Segment(10 * i, 10 * i + 10, "hold", i, label) for i, (label, _) in enumerate(picks)]
    order = list(dict.fromkeys(label for label, _ in picks))
    teach = {order.index(label): [] for label in order}
    for label, path in picks:
        if path not in teach[order.index(label)]:
            teach[order.index(label)].append(path)
    return video, segments, teach


@dataclass
class SessionTrace:
    """One server session's numbers over the measured window."""

    first: dict
    last: dict
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, ms)
    lost: int = 0
    answers: list[list] = field(default_factory=list)  # [capture, sent (epoch s), fresh, class] per answered frame


@dataclass
class Trace:
    """Metrics snapshots of one run, from the end of the warm-up on."""

    snapshots: list[dict] = field(default_factory=list)
    sessions: dict[int, SessionTrace] = field(default_factory=dict)
    browser_cpu: float = float("nan")

    def add(self, snap: dict, t0: float) -> None:
        self.snapshots.append(snap)
        t = snap["time"] - t0
        for s in snap["sessions"]:
            trace = self.sessions.get(s["id"])
            if trace is None:
                self.sessions[s["id"]] = SessionTrace(s, s)  # its latencies so far are warm-up
                continue
            trace.last = s
            trace.latencies += [(t, v) for v in s["latencies"]]
            trace.lost += s["latencies_lost"]
            trace.answers += s.get("answers", [])


def browser_processes() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def follow(app, seconds: float, trace: Trace, t0: float, tick=None) -> None:
    """Collect every metrics snapshot written during the next `seconds` into `trace`."""
    end = time.time() + seconds
    seen = trace.snapshots[-1]["time"] if trace.snapshots else 0.0
    while time.time() < end:
        if tick is not None:
            tick()
        snap = app.metrics()
        if snap is not None and snap["time"] > seen:
            seen = snap["time"]
            trace.add(snap, t0)
        time.sleep(0.2)


QUIET_LOAD = 1.0
"""The 1-minute load average under which a measured run may start."""
QUIET_WAIT = 10.0
"""Minutes a measured run waits for the machine to be quiet before it refuses."""
REFUSED = 3
"""Exit status of a run refused on a busy machine (bench/serving.py tells it from a failure)."""


def quiet_start(threshold: float, minutes: float) -> float:
    """The 1-minute load average once it is below `threshold`; after `minutes` of waiting, exit with
    status `REFUSED`."""
    deadline, said = time.monotonic() + 60 * minutes, 0.0
    while (load := os.getloadavg()[0]) >= threshold:
        if time.monotonic() > deadline:
            print(
                f"refused: the load average stayed at {load:.2f} (≥ {threshold:g}) for {minutes:g} min; "
                "a measured run needs a quiet machine (--any-load for a smoke run)",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(REFUSED)
        if time.monotonic() - said >= 60:
            said = time.monotonic()
            print(f"load average {load:.2f}: waiting for it to fall below {threshold:g} …", file=sys.stderr, flush=True)
        time.sleep(5)
    return load


RAMP_SETTLE = 15.0
"""Memory ramp: seconds a new tab streams before the server's RSS is sampled."""
RAMP_SAMPLES = 10
"""Memory ramp: per-second RSS samples taken after each new tab."""


def teach_class(page, slot: int, files: list[Path], attempts: int = 3) -> None:
    """Upload `files` into the class at `slot` and wait for the live panel's count of stored
    examples to grow by as many (the panel redraws every second or two; the sidebar's count
    waits for a full rerun, which a loaded server can leave for later). Uploaded again only if
    none arrived within a minute."""

    def stored() -> int:
        value: list[int] = []
        page.wait_for(
            lambda: value.append(int(page.stat("examples stored").split()[0])) or True, "the live panel", 30
        )  # it can be caught mid-redraw
        return value[-1]

    for attempt in range(attempts):
        page.page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)
        before = stored()
        page.uploader(slot).set_input_files([str(f) for f in files])
        try:
            what = f"{len(files)} uploads in class {slot + 1}"
            page.wait_for(lambda before=before: stored() >= before + len(files), what, 60)
            return
        except AssertionError:
            if attempt == attempts - 1 or stored() > before:
                shot = RESULTS / f"upload-failed-{time.strftime('%Y%m%d-%H%M%S')}.png"
                page.page.screenshot(path=str(shot), full_page=True)
                print(f"an upload failed; the page: {shot}", file=sys.stderr, flush=True)
                raise


def open_sessions(p, app, video: Path, n: int, ramp: list | None = None, teach: dict | None = None):
    """Open `n` tabs and press START in each. With a `ramp` list, after each tab wait
    `RAMP_SETTLE` s, then append the server's RSS (median and max of `RAMP_SAMPLES` per-second samples).
    `teach` maps a class slot to photos uploaded into it before START."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from harness.browser import Page, launch

    browser = launch(p, video)
    pages = []
    for k in range(1, n + 1):
        context = browser.new_context(viewport={"width": 1400, "height": 1050})
        context.add_init_script(PC_TRACKER)
        tab = context.new_page()
        page = Page(tab, app.url)
        page.connection_states = []  # streamlit-webrtc's frontend logs each connectionstatechange (console.debug)
        tab.on(
            "console",
            lambda msg, states=page.connection_states: (
                msg.text.startswith("connectionstatechange") and states.append((round(time.time(), 2), msg.text))
            ),
        )
        for slot, files in (teach or {}).items():
            teach_class(page, slot, files)
        try:
            page.start_camera()
            print(f"tab {k}: streaming", file=sys.stderr, flush=True)
        except (AssertionError, PlaywrightTimeout) as exc:  # an overloaded machine: the tab counts, with what it got
            print(f"tab {k}: the camera did not start ({str(exc).splitlines()[0]})", file=sys.stderr, flush=True)
        pages.append(page)
        if ramp is not None:
            time.sleep(RAMP_SETTLE)
            samples, end = [], time.time() + RAMP_SAMPLES
            while time.time() < end:
                snap = app.metrics()
                if snap is not None:
                    samples.append(snap["rss_mb"])
                time.sleep(1.0)
            ramp.append({"sessions": k, "rss_mb_median": float(np.median(samples)), "rss_mb_max": float(max(samples))})
    return browser, pages


def run_sessions(
    n: int,
    seconds: float,
    warmup: float,
    video: Path,
    server: dict,
    ramp: bool = False,
    teach: dict | None = None,
    schedule: list | None = None,
) -> dict:
    from playwright.sync_api import sync_playwright

    from harness.app_server import AppServer

    print(f"{n} session(s): starting the app and {n} tab(s) …", file=sys.stderr, flush=True)
    with AppServer(metrics=True, **server) as app, sync_playwright() as p:
        steps: list[dict] | None = [] if ramp else None
        browser, pages = open_sessions(p, app, video, n, steps, teach)
        try:
            trace = measure(app, warmup, seconds, browser_processes)
            lost = stalled(trace)
            if lost:  # a stream stopped: keep what the browser and the server saw of it
                stem = RESULTS / f"live-{n}-sessions-{time.strftime('%Y%m%d-%H%M%S')}"
                keep_lost_stream(stem, app, pages, trace, lost)
        finally:
            browser.close()
        result = summarise(n, trace)
        add_steady(result, trace, schedule)
    if steps:
        result["ramp"] = steps
    return result


def measure(app, warmup: float, seconds: float, clients) -> Trace:
    """After `warmup` s, the server's metrics over `seconds` (from a baseline snapshot) and the CPU
    of the processes `clients()` gives (the users' side: Chromium's, or the peers')."""
    time.sleep(warmup)
    trace = Trace()
    follow(app, 2.0, trace, time.time())  # the baseline snapshot
    t0 = trace.snapshots[-1]["time"]
    procs = clients()
    c0 = cpu_seconds(procs)
    follow(app, seconds, trace, t0)
    trace.browser_cpu = 100 * (cpu_seconds(procs) - c0) / (trace.snapshots[-1]["time"] - t0)
    return trace


def start_peers(url: str, n: int, video: Path, seconds: float, bitrate: int):
    """bench/peers.py streaming `n` sessions of `video` to `url` for `seconds` once all joined."""
    import subprocess

    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "peers.py"),
            "--url",
            url,
            "--video",
            str(video),
            "--sessions",
            str(n),
            "--join-every",
            str(PEER_JOIN_EVERY),
            "--seconds",
            str(seconds),
            "--bitrate",
            str(bitrate),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


PEER_JOIN_EVERY = 2.0
"""Seconds between peers joining, as a class's users would not all press START at once."""


def wait_streaming(apps: list, n: int) -> None:
    """Until `n` sessions over `apps` have received frames (or the time for it is gone)."""
    deadline = time.time() + 60 + n * PEER_JOIN_EVERY
    while time.time() < deadline:
        snaps = [app.metrics() for app in apps]
        if sum(s["frames_received"] > 0 for snap in snaps if snap for s in snap["sessions"]) >= n:
            return
        time.sleep(1.0)


def peer_report(peers, result: dict, bitrate: int) -> None:
    """The peers' own account (connection states, frames sent and back) into `result`."""
    out, _ = peers.communicate(timeout=120)
    result["clients"], result["peer_bitrate"] = "peers", bitrate
    result["peers"] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def print_peers(results: list[dict]) -> None:
    """For each run with peers, what the peers themselves saw (`peers_line`)."""
    for result in results:
        if result.get("clients") == "peers":
            print(peers_line(result))


def peers_line(result: dict) -> str:
    """What the peers themselves saw: frames back per second over their connected time, failures."""
    back, failed = [], []
    for peer in result.get("peers", []):
        times = {state: t for t, state in peer["connection"]}
        if "connected" in times and "closed" in times:
            back.append(peer["frames_back"] / max(times["closed"] - times["connected"], 1e-9))
        if peer["error"] or "connected" not in times:
            failed.append(f"peer {peer['peer']}: {peer['error'] or 'never connected'}")
    line = (
        f"{result['sessions']} peers at {result['peer_bitrate'] / 1000:.0f} kbit/s, frames back per second "
        f"while connected: {min(back, default=float('nan')):.1f}-{max(back, default=float('nan')):.1f}"
    )
    return line + (f"; {'; '.join(failed)}" if failed else "")


def run_peer_sessions(
    n: int,
    seconds: float,
    warmup: float,
    video: Path,
    server: dict,
    bitrate: int,
    teach: dict | None = None,
    schedule: list | None = None,
) -> dict:
    """`run_sessions` with bench/peers.py's WebRTC peers for users instead of Chromium's tabs. With
    `teach`, one user is a Chromium tab taught the video's photos, the others peers: how fast its
    prediction follows the video while the server carries `n` cameras and not their browsers."""
    from playwright.sync_api import sync_playwright

    from harness.app_server import AppServer

    tabs = 1 if teach else 0
    who = f"a taught tab and {n - 1} peer(s)" if tabs else f"{n} peer(s)"
    print(f"{n} session(s): starting the app, {who} …", file=sys.stderr, flush=True)
    with AppServer(metrics=True, **server) as app, sync_playwright() as p:
        browser = open_sessions(p, app, video, tabs, None, teach)[0] if tabs else None
        peers = start_peers(app.url, n - tabs, video, warmup + seconds + 10, bitrate) if n > tabs else None
        try:
            wait_streaming([app], n)

            def clients() -> list[psutil.Process]:
                return ([psutil.Process(peers.pid)] if peers is not None else []) + (
                    browser_processes() if tabs else []
                )

            trace = measure(app, warmup, seconds, clients)
            result = summarise(n, trace)
            add_steady(result, trace, schedule if tabs else None)
            if peers is not None:
                peer_report(peers, result, bitrate)
        finally:
            if peers is not None and peers.poll() is None:
                peers.kill()
            if browser is not None:
                browser.close()
    return result


PC_TRACKER = """
(() => {
  const Original = window.RTCPeerConnection;
  if (!Original || Original.tracked) return;
  window.peerConnections = [];
  const Tracked = function (...args) { const pc = new Original(...args); window.peerConnections.push(pc); return pc; };
  Tracked.prototype = Original.prototype;
  Tracked.tracked = true;
  Object.setPrototypeOf(Tracked, Original);
  window.RTCPeerConnection = Tracked;
})();
"""
"""Kept in every tab's frames: each RTCPeerConnection the page makes, for `rtc_stats` (diagnosis only)."""

RTC_STATS = """
async () => {
  const keep = ['type', 'kind', 'frameWidth', 'frameHeight', 'framesPerSecond', 'framesSent', 'framesEncoded',
    'framesDecoded', 'framesReceived', 'framesDropped', 'qualityLimitationReason', 'targetBitrate', 'bytesSent',
    'bytesReceived', 'availableOutgoingBitrate', 'pliCount', 'nackCount', 'keyFramesEncoded', 'keyFramesDecoded',
    'packetsLost', 'frames', 'freezeCount', 'state', 'timestamp'];
  const out = [];
  for (const pc of (window.peerConnections || [])) {
    const report = await pc.getStats();
    const rows = [];
    report.forEach(r => { if (['outbound-rtp', 'inbound-rtp', 'media-source', 'transport'].includes(r.type))
      rows.push(Object.fromEntries(Object.entries(r).filter(([k]) => keep.includes(k)))); });
    out.push({connection: pc.connectionState, ice: pc.iceConnectionState, signaling: pc.signalingState,
              senders: pc.getSenders().map(s => s.track && {kind: s.track.kind, state: s.track.readyState,
                                                             muted: s.track.muted}),
              stats: rows});
  }
  return out;
}
"""


def rtc_stats(page) -> list:
    """Chromium's view of every peer connection in the tab (getStats), frame by frame."""
    out = []
    for frame in page.page.frames:
        try:
            out += frame.evaluate(RTC_STATS)
        except Exception as exc:  # a frame without the tracker, or one going away
            out.append({"frame": frame.url, "error": str(exc)[:200]})
    return out


def stalled(trace: Trace, seconds: float = 3.0) -> list[int]:
    """Sessions whose camera delivered no frame in the last `seconds` of the run."""
    last = trace.snapshots[-1]
    before = next((x for x in reversed(trace.snapshots) if x["time"] <= last["time"] - seconds), trace.snapshots[0])
    then = {y["id"]: y["frames_received"] for y in before["sessions"]}
    return [y["id"] for y in last["sessions"] if y["id"] in then and y["frames_received"] == then[y["id"]]]


def keep_lost_stream(stem: Path, app, pages: list, trace: Trace, lost: list[int]) -> None:
    """A session received no frames in the measured window: keep the server's log, each session's
    frames received per snapshot, Chromium's getStats of every tab (twice, 2 s apart) and each
    tab's peer-connection states as streamlit-webrtc's frontend logged them (wall-clock time)."""
    stem.with_name(stem.name + "-server.log").write_text(app.log())
    received = {
        sid: [
            (round(x["time"] - trace.snapshots[0]["time"], 1), y["frames_received"])
            for x in trace.snapshots
            for y in x["sessions"]
            if y["id"] == sid
        ]
        for sid in trace.sessions
    }
    browser = [[rtc_stats(page) for page in pages]]
    time.sleep(2.0)
    browser.append([rtc_stats(page) for page in pages])
    states = [getattr(page, "connection_states", []) for page in pages]
    stem.with_name(stem.name + "-lost.json").write_text(
        json.dumps(
            {
                "lost_sessions": lost,
                "frames_received": received,
                "tabs_getstats": browser,
                "tabs_connection_states": states,
            },
            indent=1,
        )
    )
    print(
        f"session(s) {lost} received no frames; the server's log and the browser's view: {stem}-*",
        file=sys.stderr,
        flush=True,
    )


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(n: int, trace: Trace) -> dict:
    first, last = trace.snapshots[0], trace.snapshots[-1]
    span = last["time"] - first["time"]
    sessions = []
    for sid, s in sorted(trace.sessions.items()):
        dt = span
        lat = [v for _, v in s.latencies]
        early = [v for t, v in s.latencies if t <= 10]
        late = [v for t, v in s.latencies if t > span - 10]
        sessions.append(
            {
                "session": sid,
                "received_fps": (s.last["frames_received"] - s.first["frames_received"]) / dt,
                "processed_fps": (s.last["frames_processed"] - s.first["frames_processed"]) / dt,
                "dropped": s.last["frames_dropped"] - s.first["frames_dropped"],
                "latency_p50": _p(lat, 50),
                "latency_p95": _p(lat, 95),
                "latency_p95_first10": _p(early, 95),
                "latency_p95_last10": _p(late, 95),
                "latency_max": max(lat, default=float("nan")),
                "latencies_lost": s.lost,
                "embed_ms_p50": s.last["embed_ms_p50"],
                "embed_ms_p95": s.last["embed_ms_p95"],
            }
        )
    cpu0, cpu1 = first.get("thread_cpu_seconds", {}), last.get("thread_cpu_seconds", {})
    by_thread = {k: 100 * (cpu1[k] - cpu0.get(k, 0.0)) / span for k in cpu1}
    return {
        "sessions": n,
        "seconds": span,
        "server_cpu_by_thread": dict(sorted(by_thread.items(), key=lambda kv: -kv[1])),
        "server_cpu_percent": 100 * (last["cpu_seconds"] - first["cpu_seconds"]) / span,
        "browser_cpu_percent": trace.browser_cpu,
        "rss_mb": last["rss_mb"],
        "rss_mb_series": [round(x["rss_mb"], 1) for x in trace.snapshots],
        "threads": last["threads"],
        "live_sessions": last["n_sessions"],
        "thread_kinds": last["thread_kinds"],
        "serving": last.get("serving", {}),  # what the server ran with (knn.serving.startup.Started.record)
        "per_session": sessions,
    }


def class_changes(segments: list) -> list[tuple[int, str]]:
    """(frame, new class) where the video's class changes: a sweep's first frame, or a cut."""
    out = []
    for prev, seg in zip([segments[-1], *segments[:-1]], segments, strict=True):
        before = prev.label if prev.kind == "hold" else None
        moved = seg.kind == "move" and seg.label != before
        if moved or seg.kind == "hold" and prev.kind == "hold" and seg.label != prev.label:
            out.append((seg.start, seg.label))
    return out


def follow_times(answers: list[list], segments: list, fps: int = 30) -> dict | None:
    """How long each change of class in the video took to show in the predictions.

    The tab's camera plays the video in a loop from an unknown frame. Its phase (and which
    predicted class name is which photo's class) is the one under which the most frames the model
    saw (each answer names the capture time of the frame the model saw for it) predict the class
    the video showed then (a sweep's frames count as the photo that fills most of them). Several phases can fit equally
    (no fresh answer between a change and the first one after it): then the one that puts the
    changes latest, i.e. the quickest follow any change allows. For each change of class at
    capture time T (a sweep's first frame, or a cut) the follow time is the first answer captured
    from T on that predicts the new class, sent time minus T; a change whose class never showed
    before the next change is counted as missed.
    """
    length = segments[-1].end
    label_at = np.full(length, None, dtype=object)
    for seg in segments:
        if seg.kind == "hold":
            label_at[seg.start : seg.end] = seg.label
    for seg, before in zip(segments, [segments[-1], *segments[:-1]], strict=True):
        if seg.kind == "move":  # the outgoing photo fills most of the first half of a sweep
            half = (seg.end - seg.start) // 2
            label_at[seg.start : seg.start + half] = before.label
            label_at[seg.start + half : seg.end] = seg.label
    seen = {(a[4] if len(a) > 4 and a[4] is not None else a[0], a[3]) for a in answers if (a[2] or len(a) > 4)}
    fresh = sorted((c, label) for c, label in seen if label is not None)
    if len(fresh) < 10:
        return None
    c0 = fresh[0][0]
    frames = np.round((np.array([c for c, _ in fresh]) - c0) * fps).astype(int)
    names, classes = sorted({label for _, label in fresh}), sorted({seg.label for seg in segments})
    if len(names) > len(classes):
        return None
    said = np.array([names.index(label) for _, label in fresh])
    shown = np.array(
        [
            [classes.index(v) if v is not None else -1 for v in label_at[(frames + phase) % length]]
            for phase in range(length)
        ]
    )  # [phase, answer]
    best_score, best = -1, []
    for perm in itertools.permutations(range(len(classes)), len(names)):
        scores = (shown == np.array(perm)[said]).sum(axis=1)
        top = int(scores.max())
        mapping = dict(zip(names, (classes[i] for i in perm), strict=True))
        if top > best_score:
            best_score, best = (
                top,
                [(int(ph), mapping) for ph in np.flatnonzero(scores == top)],
            )
        elif top == best_score:
            best += [(int(ph), mapping) for ph in np.flatnonzero(scores == top)]
    tied = {ph for ph, _ in best}
    phase, mapping = next(((ph, m) for ph, m in best if (ph - 1) % length not in tied), best[0])
    name_of = {v: k for k, v in mapping.items()}
    times, missed = [], 0
    start, end = min(a[0] for a in answers) + 1.0, max(a[0] for a in answers) - 1.0
    changes = class_changes(segments)
    for m in range(-1, int((end - c0) * fps / length) + 2):
        for i, (frame, label) in enumerate(changes):
            t = c0 + (frame - phase + m * length) / fps
            if not start <= t <= end or label not in name_of:
                continue
            nxt = changes[(i + 1) % len(changes)][0] + (m + (i + 1 == len(changes))) * length
            t_next = c0 + (nxt - phase) / fps
            sent = [a[1] for a in answers if t <= a[0] < t_next and a[3] == name_of[label]]
            if sent:
                times.append(1000 * (min(sent) - t))
            else:
                missed += 1
    return {
        "agreement": best_score / len(fresh),
        "phase": phase,
        "tied_phases": len(tied),
        "follow_ms": times,
        "missed": missed,
    }


def add_steady(result: dict, trace: Trace, schedule: list | None) -> None:
    """Answered and reused frames, the fresh frames' latency and (with the video's schedule, when
    the tabs were taught its photos) the follow times, per session."""
    span = result["seconds"]
    for row, (_sid, s) in zip(result["per_session"], sorted(trace.sessions.items()), strict=False):
        answered = s.last.get("frames_answered", 0) - s.first.get("frames_answered", 0)
        reused = s.last.get("frames_reused", 0) - s.first.get("frames_reused", 0)
        fresh_lat = [1000 * (a[1] - a[0]) for a in s.answers if a[2]]
        follow = (schedule and follow_times(s.answers, schedule)) or {
            "follow_ms": [],
            "missed": 0,
            "agreement": float("nan"),
        }
        reused_lat = [1000 * (a[1] - a[0]) for a in s.answers if not a[2]]
        row.update(
            {
                "answered_fps": answered / span,
                "reused_fps": reused / span,
                "fresh_latency_p95": _p(fresh_lat, 95),
                "reused_latency_p95": _p(reused_lat, 95),
                "follow_ms": follow["follow_ms"],
                "follow_missed": follow["missed"],
                "fit_agreement": follow["agreement"],
                "fit_phase": follow.get("phase"),
                "answers": s.answers,
            }
        )
    result["model_passes_per_s"] = sum(r["processed_fps"] for r in result["per_session"])


def steady_table(results: list[dict]) -> str:
    """Answered frames, model passes and follow times per session; the ratio of model passes
    between a run without and with steady scenes of the same count."""
    rows = []
    for r in results:
        if "model_passes_per_s" not in r:
            continue
        for i, s in enumerate(r["per_session"], 1):
            follow = s["follow_ms"]
            video = r.get("video", "changing") + (" (peers)" if r.get("clients") == "peers" else "")
            rows.append(
                [
                    video,
                    r["sessions"],
                    "on" if r.get("steady", True) else "off",
                    i,
                    f"{s['received_fps']:.1f}",
                    f"{s['answered_fps']:.1f}",
                    f"{s['processed_fps']:.1f}",
                    f"{s['reused_fps']:.1f}",
                    f"{s['latency_p95']:.0f}",
                    f"{s['fresh_latency_p95']:.0f}",
                    f"{_p(follow, 50):.0f} / {max(follow):.0f} ({len(follow)}, {s['follow_missed']} missed)"
                    if follow
                    else "-",
                    f"{s['fit_agreement']:.2f}",
                ]
            )
    table = markdown_table(
        [
            "video",
            "sessions",
            "steady",
            "session",
            "received fps",
            "answered fps",
            "model passes/s",
            "reused fps",
            "latency p95 ms",
            "fresh latency p95 ms",
            "follow ms p50 / max (changes)",
            "fit",
        ],
        rows,
    )
    lines = []
    for r in results:
        if "model_passes_per_s" not in r:
            continue
        line = (
            f"{r.get('video', 'changing')}, {r['sessions']} sessions, steady "
            f"{'on' if r.get('steady', True) else 'off'}: {r['model_passes_per_s']:.1f} model passes/s in all"
        )
        base = next(
            (
                b
                for b in results
                if b is not r
                and b.get("steady", True) is False
                and r.get("steady", True)
                and b["sessions"] == r["sessions"]
                and b.get("video") == r.get("video")
            ),
            None,
        )
        if base is not None:
            line += f", {base['model_passes_per_s'] / r['model_passes_per_s']:.1f}× fewer than without"
        lines.append(line)
    return table + "\n\n" + "\n".join(lines)


def run_label(r: dict) -> str:
    """A run's session count, and "store off" for a run without the project store."""
    return f"{r['sessions']}" + (" store off" if r.get("store") is False else "")


def sessions_tables(results: list[dict]) -> str:
    rows = []
    for r in results:
        for i, s in enumerate(r["per_session"], 1):
            rows.append(
                [
                    run_label(r),
                    i,
                    f"{s['received_fps']:.1f}",
                    f"{s['processed_fps']:.1f}",
                    s["dropped"],
                    f"{s['latency_p50']:.0f}",
                    f"{s['latency_p95']:.0f}",
                    f"{s['latency_p95_first10']:.0f} → {s['latency_p95_last10']:.0f}",
                    f"{s['embed_ms_p50']:.1f}",
                ]
            )
    per_session = markdown_table(
        [
            "sessions",
            "session",
            "received fps",
            "processed fps",
            "dropped",
            "latency p50 ms",
            "latency p95 ms",
            "p95 first → last 10 s",
            "embed p50 ms",
        ],
        rows,
    )

    # RSS swings by ±20 MB within a run (the periodic collection, the allocator): the median of
    # the per-second samples is the level, the max the worst moment.
    def rss(r: dict) -> tuple[float, float]:
        series = r.get("rss_mb_series") or [r["rss_mb"]]
        return float(np.median(series)), float(max(series))

    base = next((rss(r)[0] for r in results if r["sessions"] == 1), None)
    rows = []
    for r in results:
        median, peak = rss(r)
        extra = "-" if base is None or r["sessions"] == 1 else f"{(median - base) / (r['sessions'] - 1):.1f}"
        rows.append(
            [
                run_label(r),
                f"{r['seconds']:.0f}",
                f"{r['server_cpu_percent']:.0f}",
                f"{r['browser_cpu_percent']:.0f}",
                f"{median:.0f} ({peak:.0f})",
                extra,
                r["threads"],
                r["live_sessions"],
            ]
        )
    per_run = markdown_table(
        [
            "sessions",
            "measured s",
            "server CPU %",
            "client CPU % (Chromium, or peers)",
            "server RSS MB median (max)",
            "MB per further session (medians)",
            "server threads",
            "LiveSessions alive",
        ],
        rows,
    )
    kinds = sorted(
        {k for r in results for k, v in r["server_cpu_by_thread"].items() if v >= 1},
        key=lambda k: -max(r["server_cpu_by_thread"].get(k, 0) for r in results),
    )
    rows = [[run_label(r), *(f"{r['server_cpu_by_thread'].get(k, 0):.0f}" for k in kinds)] for r in results]
    by_thread = markdown_table(["sessions", *kinds], rows)
    out = (
        per_session + "\n\n" + per_run + "\n\nServer CPU % by thread (threads named as Python "
        "names them, numbers stripped; native: threads Python did not start, e.g. XNNPACK's)\n\n" + by_thread
    )
    for r in results:
        if r.get("ramp"):
            out += "\n\n" + ramp_table(r["ramp"])
    return out


def ramp_table(steps: list[dict]) -> str:
    """Memory as sessions join one server: each step's RSS and what that session added."""
    rows, prev = [], None
    for step in steps:
        added = "-" if prev is None else f"{step['rss_mb_median'] - prev:+.1f}"
        rows.append([step["sessions"], f"{step['rss_mb_median']:.0f} ({step['rss_mb_max']:.0f})", added])
        prev = step["rss_mb_median"]
    return (
        f"Memory as sessions join one server (one tab more every step; RSS median (max) of "
        f"{RAMP_SAMPLES} per-second samples after {RAMP_SETTLE:.0f} s)\n\n"
        + markdown_table(["streaming sessions", "server RSS MB median (max)", "MB this session added"], rows)
    )


def run_soak(seconds: float, add_every: float, warmup: float, video: Path, server: dict) -> dict:
    from playwright.sync_api import sync_playwright

    from harness.app_server import AppServer

    print(f"soak: one session for {seconds:.0f} s, Add every {add_every:.0f} s …", file=sys.stderr, flush=True)
    with AppServer(metrics=True, **server) as app, sync_playwright() as p:
        browser, (page,) = open_sessions(p, app, video, 1)
        try:
            time.sleep(warmup)
            trace = Trace()
            follow(app, 2.0, trace, time.time())
            t0 = trace.snapshots[-1]["time"]
            state = {"next": time.time() + add_every, "slot": 0, "added": 0, "failed": 0}

            def tick() -> None:
                if time.time() >= state["next"]:
                    state["next"] += add_every
                    try:
                        page.add(state["slot"], 1, pause=0)
                        state["added"] += 1
                    except AssertionError:
                        state["failed"] += 1
                    state["slot"] = (state["slot"] + 1) % 3

            follow(app, seconds, trace, t0, tick)
        finally:
            browser.close()
    minutes = []
    snaps = trace.snapshots
    ((sid, s),) = [(k, v) for k, v in trace.sessions.items() if v.last is not v.first] or list(trace.sessions.items())[
        :1
    ]
    for m in range(1, int(np.ceil((snaps[-1]["time"] - t0) / 60)) + 1):
        in_minute = [x for x in snaps if (m - 1) * 60 < x["time"] - t0 <= m * 60]
        if not in_minute:
            continue
        end = in_minute[-1]
        start = next((x for x in reversed(snaps) if x["time"] - t0 <= (m - 1) * 60), snaps[0])
        ss = {x["id"]: x for x in end["sessions"]}.get(sid)
        s0 = {x["id"]: x for x in start["sessions"]}.get(sid)
        lat = [v for t, v in s.latencies if (m - 1) * 60 < t <= m * 60]
        minutes.append(
            {
                "minute": m,
                "rss_mb": end["rss_mb"],
                "processed_fps": (ss["frames_processed"] - s0["frames_processed"]) / (end["time"] - start["time"])
                if ss and s0
                else float("nan"),
                "latency_p95": _p(lat, 95),
                "examples": ss["examples"] if ss else None,
                "threads": end["threads"],
            }
        )
    return {
        "seconds": seconds,
        "add_every": add_every,
        "added": state["added"],
        "add_failed": state["failed"],
        "minutes": minutes,
        "rss_after_1_min": minutes[0]["rss_mb"],
        "rss_end": minutes[-1]["rss_mb"],
        "growth_percent": 100 * (minutes[-1]["rss_mb"] / minutes[0]["rss_mb"] - 1),
    }


def soak_table(soak: dict) -> str:
    rows = [
        [
            m["minute"],
            f"{m['rss_mb']:.0f}",
            f"{m['processed_fps']:.1f}",
            f"{m['latency_p95']:.0f}",
            m["examples"],
            m["threads"],
        ]
        for m in soak["minutes"]
    ]
    table = markdown_table(["minute", "server RSS MB", "processed fps", "latency p95 ms", "examples", "threads"], rows)
    return (
        table + f"\n\nRSS after the first minute {soak['rss_after_1_min']:.0f} MB, at the end "
        f"{soak['rss_end']:.0f} MB ({soak['growth_percent']:+.1f}%); {soak['added']} examples added "
        f"({soak['add_failed']} Add clicks not confirmed)."
    )


def follow_all(apps: dict, seconds: float, traces: dict, t0: float) -> None:
    """`follow` for several servers at once: each one's new snapshots into its own trace."""
    end = time.time() + seconds
    seen = {name: 0.0 for name in apps}
    while time.time() < end:
        for name, app in apps.items():
            snap = app.metrics()
            if snap is not None and snap["time"] > seen[name]:
                seen[name] = snap["time"]
                traces[name].add(snap, t0)
        time.sleep(0.2)


def run_balanced(
    n: int, processes: int, seconds: float, warmup: float, video: Path, server: dict, peer_bitrate: int | None = None
) -> dict:
    """`n` sessions through HAProxy (the shipped deploy/haproxy/haproxy.cfg) over `processes` app
    processes: Chromium's tabs, or with `peer_bitrate` bench/peers.py's peers."""
    from contextlib import ExitStack

    from playwright.sync_api import sync_playwright

    from harness.app_server import AppServer
    from harness.balancer import Balancer

    print(f"{n} session(s) over {processes} process(es) behind HAProxy …", file=sys.stderr, flush=True)
    peers = None
    with ExitStack() as stack:
        apps = [stack.enter_context(AppServer(metrics=True, **server)) for _ in range(processes)]
        lb = stack.enter_context(Balancer(apps))
        if peer_bitrate:
            peers = start_peers(lb.url, n, video, warmup + seconds + 10, peer_bitrate)
            stack.callback(lambda: peers.poll() is None and peers.kill())
            wait_streaming(apps, n)
            placement = None  # read from each process's sessions below
        else:
            p = stack.enter_context(sync_playwright())
            browser, pages = open_sessions(p, lb, video, n)  # open_sessions only needs the balancer's url
            stack.callback(browser.close)
            placement = [lb.server_of(page.page.context) for page in pages]
        time.sleep(warmup)
        traces = {name: Trace() for name in lb.names}
        t0 = time.time()
        follow_all(lb.names, 2.0, traces, t0)  # the baseline snapshots
        client = [psutil.Process(peers.pid)] if peers else browser_processes()
        c0 = cpu_seconds(client)
        follow_all(lb.names, seconds, traces, t0)
        client_cpu = 100 * (cpu_seconds(client) - c0) / (time.time() - t0 - 2.0)
        per_process = {}
        for name, trace in traces.items():
            if len(trace.snapshots) > 1:
                per_process[name] = summarise(len(trace.sessions), trace)
                add_steady(per_process[name], trace, None)
        if placement is None:
            placement = [name for name, run in per_process.items() for _ in run["per_session"]]
        result = {
            "sessions": n,
            "processes": processes,
            "placement": placement,
            "per_process": per_process,
            "client_cpu_percent": client_cpu,
        }
        if peers:
            peer_report(peers, result, peer_bitrate)
    return result


def balanced_table(results: list[dict]) -> str:
    rows, totals = [], []
    for r in results:
        layout = f"{r['sessions']} over {r['processes']}" + (" (peers)" if r.get("clients") == "peers" else "")
        fps, answered = [], []
        for name, run in r["per_process"].items():
            for s in run["per_session"]:
                fps.append(s["processed_fps"])
                answered.append(s.get("answered_fps", float("nan")))
                rows.append(
                    [
                        layout,
                        name,
                        s["session"],
                        f"{s['received_fps']:.1f}",
                        f"{answered[-1]:.1f}",
                        f"{s['processed_fps']:.1f}",
                        f"{s['latency_p50']:.0f}",
                        f"{s['latency_p95']:.0f}",
                        f"{s['embed_ms_p50']:.1f}",
                    ]
                )
        cpu = sum(run["server_cpu_percent"] for run in r["per_process"].values())
        rss = sum(run["rss_mb"] for run in r["per_process"].values())
        totals.append(
            [
                layout,
                f"{sum(fps):.1f}",
                f"{min(answered, default=float('nan')):.1f}",
                f"{cpu:.0f}",
                f"{r.get('client_cpu_percent', float('nan')):.0f}",
                f"{sum(fps) / (cpu / 100):.1f}" if cpu else "-",
                f"{rss:.0f}",
            ]
        )
    return (
        markdown_table(
            [
                "sessions over processes",
                "process",
                "session",
                "received fps",
                "answered fps",
                "model passes/s",
                "latency p50 ms",
                "latency p95 ms",
                "embed p50 ms",
            ],
            rows,
        )
        + "\n\n"
        + markdown_table(
            [
                "sessions over processes",
                "model passes/s, all sessions",
                "slowest session's answered fps",
                "servers' CPU % (100 = a core)",
                "clients' CPU %",
                "model passes per server core",
                "servers' RSS MB",
            ],
            totals,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="*", default=[1, 2, 4], help="session counts to run (none: skip)")
    parser.add_argument("--seconds", type=float, default=60, help="measured seconds per session count")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of streaming before measuring")
    parser.add_argument("--soak", type=float, default=0, help="seconds of the one-session soak (0: none)")
    parser.add_argument("--add-every", type=float, default=5, help="soak: seconds between Add clicks")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 s per count, 3 s warm-up, soak ≤ 60 s")
    parser.add_argument("--label", default="", help="a name for this run's JSON file")
    parser.add_argument("--report", type=Path, metavar="JSON", help="print the tables of a saved run and exit")
    parser.add_argument(
        "--balancer",
        action="store_true",
        help="the largest --sessions count through HAProxy over each --processes count",
    )
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="--balancer: app processes")
    parser.add_argument(
        "--video",
        choices=("changing", "handheld"),
        default="changing",
        help="the fake camera: a photo every 1/3 s, or photos held 1-3 s by a hand (steady scenes)",
    )
    parser.add_argument(
        "--without-steady",
        action="store_true",
        help="run each count first with every frame sent to the model (KNN_STEADY=0)",
    )
    parser.add_argument(
        "--without-store",
        action="store_true",
        help="run each count first with the project store off (KNN_STORE=0), then on",
    )
    parser.add_argument("--no-ramp", action="store_true", help="skip the memory ramp (tabs join one at a time)")
    parser.add_argument(
        "--teach",
        action="store_true",
        help="upload the video's photos into each tab's classes first and report how fast the "
        "prediction follows the video (always with --video handheld unless --no-teach)",
    )
    parser.add_argument(
        "--no-teach",
        action="store_true",
        help="--video handheld without teaching: answered frames and model passes, no follow times",
    )
    parser.add_argument(
        "--webrtc-log",
        type=Path,
        metavar="FILE",
        help="the app server's streamlit-webrtc (DEBUG) and aiortc (INFO) log lines into FILE, "
        "and each second's longest wait on its event loop into FILE with suffix .loop.log",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a `streamlit run` option for the server, e.g. runner.postScriptGC=true (A/B runs)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the server (A/B runs)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="users as WebRTC peers from one process (bench/peers.py: the video pre-encoded, "
        "no page drawn) instead of Chromium's tabs, so the server has the cores; "
        "no ramp or soak; with --teach one user is a taught Chromium tab (its follow times)",
    )
    parser.add_argument(
        "--peer-bitrate",
        type=int,
        default=300_000,
        metavar="BITS",
        help="--peers: bit/s each peer sends (bench/peers.py BITRATE: where Chromium starts)",
    )
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=QUIET_LOAD,
        metavar="LOAD",
        help="start each measured run only once the 1-minute load average is below LOAD",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT,
        metavar="MINUTES",
        help=f"wait up to MINUTES for a quiet machine, then refuse (exit status {REFUSED})",
    )
    parser.add_argument(
        "--any-load", action="store_true", help="start at any load: a smoke run whose numbers decide nothing"
    )
    parser.add_argument(
        "--server-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the app server at niceness N (negative: before the browser's tabs, which "
        "stand for users' own machines; needs root)",
    )
    args = parser.parse_args()
    # The app's default backbone (MobileNetV2) from ../shared/models, as the tests have it; never a download.
    base_env = {"KNN_OFFLINE": "1"}
    if (SHARED / "models").is_dir():
        base_env["KNN_WEIGHTS_DIR"] = str(SHARED / "models")
    server = {
        "options": dict(o.split("=", 1) for o in args.option),
        "env": {**base_env, **dict(e.split("=", 1) for e in args.env)},
        "nice": args.server_nice,
    }
    if args.webrtc_log:
        server["env"].update(
            PYTHONPATH=str(Path(__file__).resolve().parent / "diag"),
            KNN_BENCH_WEBRTC_LOG=str(args.webrtc_log.resolve()),
            KNN_BENCH_LOOP_LOG=str(args.webrtc_log.resolve().with_suffix(".loop.log")),
        )
    if args.report:
        saved = json.loads(args.report.read_text())
        if saved["runs"]:
            print(f"Live sessions (load average {saved['load_at_start']:.2f} at the start)\n")
            print(sessions_tables(saved["runs"]))
        if any("model_passes_per_s" in r for r in saved["runs"]):
            print("\nAnswered frames, model passes and how fast the prediction followed each change of class\n")
            print(steady_table(saved["runs"]))
        if saved.get("balanced"):
            print("\nThrough HAProxy (deploy/haproxy/haproxy.cfg)\n")
            print(balanced_table(saved["balanced"]))
        print_peers(saved["runs"] + saved.get("balanced", []))
        if saved["soak"]:
            print(
                f"\nSoak: one session, {saved['soak']['seconds']:.0f} s, Add every {saved['soak']['add_every']:.0f} s\n"
            )
            print(soak_table(saved["soak"]))
        return
    if args.quick:
        args.seconds, args.warmup, args.soak = 10, 3, min(args.soak, 60)
    RESULTS.mkdir(parents=True, exist_ok=True)
    video, schedule, teach = video_plan(args.video)
    if args.no_teach or not (args.teach or args.video == "handheld"):
        teach = schedule = None

    def quiet() -> float:
        return os.getloadavg()[0] if args.any_load else quiet_start(args.quiet_load, args.quiet_wait)

    load = quiet()
    print(f"load average {load:.2f} at the start; {psutil.cpu_count()} cores", file=sys.stderr)
    balanced = (
        [
            run_balanced(
                max(args.sessions),
                k,
                args.seconds,
                args.warmup,
                video,
                server,
                args.peer_bitrate if args.peers else None,
            )
            for k in args.processes
        ]
        if args.balancer
        else []
    )
    results = []
    runs = [
        (n, store, steady)
        for n in ([] if args.balancer else args.sessions)
        for store in ([False, True] if args.without_store else [True])
        for steady in ([False, True] if args.without_steady else [True])
    ]
    for n, store, steady in runs:
        env = server["env"] if steady else {**server["env"], "KNN_STEADY": "0"}
        if not store:
            env = {**env, "KNN_STORE": "0"}
        load_start = load if not results else quiet()
        if args.peers:
            result = run_peer_sessions(
                n,
                args.seconds,
                args.warmup,
                video,
                {**server, "env": env},
                args.peer_bitrate,
                teach if args.teach else None,
                schedule,
            )
        else:
            result = run_sessions(
                n,
                args.seconds,
                args.warmup,
                video,
                {**server, "env": env},
                ramp=not args.no_ramp and n == max(args.sessions) > 1,
                teach=teach,
                schedule=schedule,
            )
        results.append(
            {
                **result,
                "video": args.video,
                "steady": env.get("KNN_STEADY", "1") != "0",
                "store": store,
                "load_start": load_start,
                "load_end": os.getloadavg()[0],
            }
        )
    soak = run_soak(args.soak, args.add_every, args.warmup, video, server) if args.soak else None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"live-{args.label or stamp}.json"
    out.write_text(
        json.dumps(
            {"args": vars(args), "load_at_start": load, "runs": results, "soak": soak, "balanced": balanced},
            indent=1,
            default=str,
        )
    )
    extra = " ".join(
        f"--{k} {v}"
        for k, v in [
            *(("option", o) for o in args.option),
            *(("env", e) for e in args.env),
            *([("server-nice", args.server_nice)] if args.server_nice else []),
        ]
    )
    if results:
        print(
            f"\nLive sessions, {args.seconds:.0f} s each after {args.warmup:.0f} s warm-up "
            f"(load average {load:.2f} at the start){' with ' + extra if extra else ''}\n"
        )
        print(sessions_tables(results))
        print("\nAnswered frames, model passes and how fast the prediction followed each change of class\n")
        print(steady_table(results))
        print_peers(results)
    if balanced:
        print(
            f"\nThrough HAProxy (deploy/haproxy/haproxy.cfg), {args.seconds:.0f} s each after {args.warmup:.0f} s "
            f"warm-up (load average {load:.2f} at the start){' with ' + extra if extra else ''}\n"
        )
        print(balanced_table(balanced))
        print_peers(balanced)
    if soak:
        print(f"\nSoak: one session, {args.soak:.0f} s, Add every {args.add_every:.0f} s\n")
        print(soak_table(soak))
    print(f"\n(raw: {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
