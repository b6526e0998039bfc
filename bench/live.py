"""The live pipeline under load: the real app, headless Chromium tabs with fake 30 fps webcams.

    python bench/live.py                       # 1, 2 and 4 sessions, 60 s each
    python bench/live.py --sessions 1 --seconds 60
    python bench/live.py --sessions --soak 600 # only the 10-minute soak
    python bench/live.py --quick               # a smoke run: 1 and 2 sessions, 10 s each
    python bench/live.py --balancer            # 4 sessions through HAProxy over 1, then 2 processes

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

Run it on a quiet machine (`uptime` load well under 1): the browser shares the cores with the
server. Results are also written as JSON to bench/results/live-*.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, SHARED, markdown_table, shared_path  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def make_video(path: Path) -> Path:
    """640×480, 30 fps: 4 photos each of rock, paper and scissors, each held for 10 frames (4 s loop)."""
    from PIL import Image

    from knn.core.folders import class_folders
    from tests.webcam import write_y4m

    if path.exists():
        return path
    photos = class_folders(shared_path("data/rps"))
    images = [Image.open(p) for label in ("rock", "paper", "scissors") for p in photos[label][:40:10]]
    return write_y4m(path, images, width=640, height=480, fps=30, frames_per_image=10)


@dataclass
class SessionTrace:
    """One server session's numbers over the measured window."""

    first: dict
    last: dict
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the run, ms)
    lost: int = 0


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


RAMP_SETTLE = 15.0
"""Memory ramp: seconds a new tab streams before the server's RSS is sampled."""
RAMP_SAMPLES = 10
"""Memory ramp: per-second RSS samples taken after each new tab."""


def open_sessions(p, app, video: Path, n: int, ramp: list | None = None):
    """Open `n` tabs and press START in each. With a `ramp` list, after each tab wait
    `RAMP_SETTLE` s, then append the server's RSS (median and max of `RAMP_SAMPLES` per-second samples)."""
    from tests.browser import Page, launch

    browser = launch(p, video)
    pages = []
    for k in range(1, n + 1):
        context = browser.new_context(viewport={"width": 1400, "height": 1050})
        page = Page(context.new_page(), app.url)
        page.start_camera()
        pages.append(page)
        if ramp is not None:
            time.sleep(RAMP_SETTLE)
            samples, end = [], time.time() + RAMP_SAMPLES
            while time.time() < end:
                snap = app.metrics()
                if snap is not None:
                    samples.append(snap["rss_mb"])
                time.sleep(1.0)
            ramp.append({"sessions": k, "rss_mb_median": float(np.median(samples)),
                         "rss_mb_max": float(max(samples))})
    return browser, pages


def run_sessions(n: int, seconds: float, warmup: float, video: Path, server: dict, ramp: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.browser import AppServer

    print(f"{n} session(s): starting the app and {n} tab(s) …", file=sys.stderr, flush=True)
    with AppServer(metrics=True, **server) as app, sync_playwright() as p:
        steps: list[dict] | None = [] if ramp else None
        browser, pages = open_sessions(p, app, video, n, steps)
        try:
            time.sleep(warmup)
            trace = Trace()
            follow(app, 2.0, trace, time.time())  # the baseline snapshot
            t0 = trace.snapshots[-1]["time"]
            browsers = browser_processes()
            b0 = cpu_seconds(browsers)
            follow(app, seconds, trace, t0)
            trace.browser_cpu = 100 * (cpu_seconds(browsers) - b0) / (trace.snapshots[-1]["time"] - t0)
        finally:
            browser.close()
        result = summarise(n, trace)
        if any(s["received_fps"] == 0 for s in result["per_session"]):  # a stream stopped: keep the why
            log = RESULTS / f"live-{n}-sessions-{time.strftime('%Y%m%d-%H%M%S')}-server.log"
            log.write_text(app.log())
            print(f"a session received no frames; the server's log: {log}", file=sys.stderr, flush=True)
    if steps:
        result["ramp"] = steps
    return result


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
        sessions.append({
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
        })
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
        "per_session": sessions,
    }


def sessions_tables(results: list[dict]) -> str:
    rows = []
    for r in results:
        for i, s in enumerate(r["per_session"], 1):
            rows.append([
                r["sessions"], i, f"{s['received_fps']:.1f}", f"{s['processed_fps']:.1f}", s["dropped"],
                f"{s['latency_p50']:.0f}", f"{s['latency_p95']:.0f}",
                f"{s['latency_p95_first10']:.0f} → {s['latency_p95_last10']:.0f}",
                f"{s['embed_ms_p50']:.1f}",
            ])
    per_session = markdown_table(
        ["sessions", "session", "received fps", "processed fps", "dropped", "latency p50 ms",
         "latency p95 ms", "p95 first → last 10 s", "embed p50 ms"], rows)
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
        rows.append([r["sessions"], f"{r['seconds']:.0f}", f"{r['server_cpu_percent']:.0f}",
                     f"{r['browser_cpu_percent']:.0f}", f"{median:.0f} ({peak:.0f})", extra, r["threads"],
                     r["live_sessions"]])
    per_run = markdown_table(
        ["sessions", "measured s", "server CPU %", "Chromium CPU %", "server RSS MB median (max)",
         "MB per further session (medians)", "server threads", "LiveSessions alive"], rows)
    kinds = sorted({k for r in results for k, v in r["server_cpu_by_thread"].items() if v >= 1},
                   key=lambda k: -max(r["server_cpu_by_thread"].get(k, 0) for r in results))
    rows = [[r["sessions"], *(f"{r['server_cpu_by_thread'].get(k, 0):.0f}" for k in kinds)] for r in results]
    by_thread = markdown_table(["sessions", *kinds], rows)
    out = (per_session + "\n\n" + per_run + "\n\nServer CPU % by thread (threads named as Python "
           "names them, numbers stripped; native: threads Python did not start, e.g. XNNPACK's)\n\n" + by_thread)
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
    return (f"Memory as sessions join one server (one tab more every step; RSS median (max) of "
            f"{RAMP_SAMPLES} per-second samples after {RAMP_SETTLE:.0f} s)\n\n" + markdown_table(
                ["streaming sessions", "server RSS MB median (max)", "MB this session added"], rows))


def run_soak(seconds: float, add_every: float, warmup: float, video: Path, server: dict) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.browser import AppServer

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
    (sid, s), = [(k, v) for k, v in trace.sessions.items() if v.last is not v.first] or list(trace.sessions.items())[:1]
    for m in range(1, int(np.ceil((snaps[-1]["time"] - t0) / 60)) + 1):
        in_minute = [x for x in snaps if (m - 1) * 60 < x["time"] - t0 <= m * 60]
        if not in_minute:
            continue
        end = in_minute[-1]
        start = next((x for x in reversed(snaps) if x["time"] - t0 <= (m - 1) * 60), snaps[0])
        ss = {x["id"]: x for x in end["sessions"]}.get(sid)
        s0 = {x["id"]: x for x in start["sessions"]}.get(sid)
        lat = [v for t, v in s.latencies if (m - 1) * 60 < t <= m * 60]
        minutes.append({
            "minute": m,
            "rss_mb": end["rss_mb"],
            "processed_fps": (ss["frames_processed"] - s0["frames_processed"]) / (end["time"] - start["time"]) if ss and s0 else float("nan"),
            "latency_p95": _p(lat, 95),
            "examples": ss["examples"] if ss else None,
            "threads": end["threads"],
        })
    return {"seconds": seconds, "add_every": add_every, "added": state["added"], "add_failed": state["failed"],
            "minutes": minutes,
            "rss_after_1_min": minutes[0]["rss_mb"], "rss_end": minutes[-1]["rss_mb"],
            "growth_percent": 100 * (minutes[-1]["rss_mb"] / minutes[0]["rss_mb"] - 1)}


def soak_table(soak: dict) -> str:
    rows = [[m["minute"], f"{m['rss_mb']:.0f}", f"{m['processed_fps']:.1f}", f"{m['latency_p95']:.0f}",
             m["examples"], m["threads"]] for m in soak["minutes"]]
    table = markdown_table(["minute", "server RSS MB", "processed fps", "latency p95 ms", "examples", "threads"], rows)
    return (table + f"\n\nRSS after the first minute {soak['rss_after_1_min']:.0f} MB, at the end "
            f"{soak['rss_end']:.0f} MB ({soak['growth_percent']:+.1f}%); {soak['added']} examples added "
            f"({soak['add_failed']} Add clicks not confirmed).")


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


def run_balanced(n: int, processes: int, seconds: float, warmup: float, video: Path, server: dict) -> dict:
    """`n` sessions through HAProxy (the shipped deploy/haproxy/haproxy.cfg) over `processes` app processes."""
    from contextlib import ExitStack

    from playwright.sync_api import sync_playwright

    from tests.browser import AppServer, Balancer

    print(f"{n} session(s) over {processes} process(es) behind HAProxy …", file=sys.stderr, flush=True)
    with ExitStack() as stack:
        apps = [stack.enter_context(AppServer(metrics=True, **server)) for _ in range(processes)]
        lb = stack.enter_context(Balancer(apps))
        p = stack.enter_context(sync_playwright())
        browser, pages = open_sessions(p, lb, video, n)  # open_sessions only needs the balancer's url
        try:
            placement = [lb.server_of(page.page.context) for page in pages]
            time.sleep(warmup)
            traces = {name: Trace() for name in lb.names}
            t0 = time.time()
            follow_all(lb.names, 2.0, traces, t0)  # the baseline snapshots
            follow_all(lb.names, seconds, traces, t0)
        finally:
            browser.close()
    per_process = {name: summarise(placement.count(name), trace) for name, trace in traces.items()
                   if len(trace.snapshots) > 1}
    return {"sessions": n, "processes": processes, "placement": placement, "per_process": per_process}


def balanced_table(results: list[dict]) -> str:
    rows, totals = [], []
    for r in results:
        layout = f"{r['sessions']} over {r['processes']}"
        fps = []
        for name, run in r["per_process"].items():
            for s in run["per_session"]:
                fps.append(s["processed_fps"])
                rows.append([layout, name, s["session"], f"{s['received_fps']:.1f}", f"{s['processed_fps']:.1f}",
                             f"{s['latency_p50']:.0f}", f"{s['latency_p95']:.0f}", f"{s['embed_ms_p50']:.1f}"])
        cpu = sum(run["server_cpu_percent"] for run in r["per_process"].values())
        rss = sum(run["rss_mb"] for run in r["per_process"].values())
        totals.append([layout, f"{sum(fps):.1f}", f"{min(fps, default=float('nan')):.1f}", f"{cpu:.0f}",
                       f"{sum(fps) / (cpu / 100):.1f}" if cpu else "-", f"{rss:.0f}"])
    return (markdown_table(["sessions over processes", "process", "session", "received fps", "processed fps",
                            "latency p50 ms", "latency p95 ms", "embed p50 ms"], rows) + "\n\n" +
            markdown_table(["sessions over processes", "processed fps, all sessions", "slowest session fps",
                            "servers' CPU % (100 = a core)", "processed fps per server core",
                            "servers' RSS MB"], totals))


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
    parser.add_argument("--balancer", action="store_true",
                        help="the largest --sessions count through HAProxy over each --processes count")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="--balancer: app processes")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a `streamlit run` option for the server, e.g. runner.postScriptGC=true (A/B runs)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable for the server (A/B runs)")
    args = parser.parse_args()
    # The app's default backbone (MobileNetV2) from ../shared/models, as the tests have it; never a download.
    base_env = {"KNN_OFFLINE": "1"}
    if (SHARED / "models").is_dir():
        base_env["KNN_WEIGHTS_DIR"] = str(SHARED / "models")
    server = {"options": dict(o.split("=", 1) for o in args.option),
              "env": {**base_env, **dict(e.split("=", 1) for e in args.env)}}
    if args.report:
        saved = json.loads(args.report.read_text())
        if saved["runs"]:
            print(f"Live sessions (load average {saved['load_at_start']:.2f} at the start)\n")
            print(sessions_tables(saved["runs"]))
        if saved.get("balanced"):
            print("\nThrough HAProxy (deploy/haproxy/haproxy.cfg)\n")
            print(balanced_table(saved["balanced"]))
        if saved["soak"]:
            print(f"\nSoak: one session, {saved['soak']['seconds']:.0f} s, Add every {saved['soak']['add_every']:.0f} s\n")
            print(soak_table(saved["soak"]))
        return
    if args.quick:
        args.seconds, args.warmup, args.soak = 10, 3, min(args.soak, 60)
    RESULTS.mkdir(parents=True, exist_ok=True)
    video = make_video(RESULTS / "webcam-640x480-30fps.y4m")
    load = psutil.getloadavg()[0]
    print(f"load average {load:.2f} at the start; {psutil.cpu_count()} cores", file=sys.stderr)
    balanced = [run_balanced(max(args.sessions), k, args.seconds, args.warmup, video, server)
                for k in args.processes] if args.balancer else []
    results = [] if args.balancer else [
        run_sessions(n, args.seconds, args.warmup, video, server, ramp=n == max(args.sessions) > 1)
        for n in args.sessions]
    soak = run_soak(args.soak, args.add_every, args.warmup, video, server) if args.soak else None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"live-{args.label or stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "load_at_start": load, "runs": results, "soak": soak,
                               "balanced": balanced}, indent=1, default=str))
    if results:
        extra = " ".join(f"--{k} {v}" for k, v in [*(("option", o) for o in args.option), *(("env", e) for e in args.env)])
        print(f"\nLive sessions, {args.seconds:.0f} s each after {args.warmup:.0f} s warm-up "
              f"(load average {load:.2f} at the start){' with ' + extra if extra else ''}\n")
        print(sessions_tables(results))
    if balanced:
        extra = " ".join(f"--{k} {v}" for k, v in [*(("option", o) for o in args.option), *(("env", e) for e in args.env)])
        print(f"\nThrough HAProxy (deploy/haproxy/haproxy.cfg), {args.seconds:.0f} s each after {args.warmup:.0f} s "
              f"warm-up (load average {load:.2f} at the start){' with ' + extra if extra else ''}\n")
        print(balanced_table(balanced))
    if soak:
        print(f"\nSoak: one session, {args.soak:.0f} s, Add every {args.add_every:.0f} s\n")
        print(soak_table(soak))
    print(f"\n(raw: {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
