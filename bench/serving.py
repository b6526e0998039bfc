"""Which serving adaptations and levers pay for themselves (issue 30), each configuration being one
environment for the app server, the runs interleaved (A B C A B C ...), each from a quiet start.

    python bench/serving.py                       # the verdict: every configuration, 8 and 16 peers, 5 runs each
    python bench/serving.py --screen              # one run each, to spot what is clearly useless
    python bench/serving.py --tabs                # harm: 1 and 4 Chromium tabs, 3 runs each
    python bench/serving.py --report              # the newest series' tables again (--series NAME for another)
    python bench/serving.py --configs shipped stock-uvloop --peers 16 --runs 3

A peer run is `bench/live.py --peers --video handheld --no-teach --no-ramp --seconds 30 --sessions N`
with the configuration's `--env`s (a tab run the same with Chromium's tabs); its JSON goes to
bench/results/live-serving-SERIES-CONFIG-N-rK.json and one line about it to
bench/results/serving-SERIES.jsonl. bench/live.py waits for a quiet machine and refuses a busy one:
the driver then stops, and `--series SERIES` later resumes it (saved runs are skipped).

The verdict, fixed before measuring (the leave-one-out runs and the 1 fps were added after the
first screen showed the stock server collapsing). Per configuration and peer count: the median over
the runs of the slowest streaming peer's answered fps, in how many runs every peer connected, the
median of the worst peer's p95 latency, the load at the runs' starts. A speed adaptation
("stock-uvloop+NAME", the stock configuration with that one thing added) pays when at 8 or at 16
peers its median is at least 20% (and 1 fps) above the best stock configuration's (`stock-asyncio`,
`stock-uvloop`), or every peer connected in more of its runs. Where the stock server collapses (16
peers: most peers at 0 fps), one thing added alone cannot show what the others need it for, so each
is also left out of the shipped server ("shipped-without-NAME"): it is needed when the shipped
median is at least 20% (and 1 fps) above that run's, or every peer connected in more of the shipped
runs. What neither shows paying goes (issue 30, part 2). The floors: 8 peers ≥ 28 answered fps each
with p95 ≤ 60 ms; 16 peers all connected, none below 6 fps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, markdown_table
from bench.live import REFUSED, RESULTS

SPEED = ("bitrate_ceiling", "encoder_word", "socket_drain", "consent")
"""The adaptations judged by speed (knn.serving.adapt names); the others are judged by their tests."""
LEVERS = {
    "gc_thread": {"STREAMLIT_RUNNER_POST_SCRIPT_GC": "true", "KNN_GC_SECONDS": "0"},  # Streamlit's own collection
    "switch_interval": {"KNN_SWITCH_INTERVAL_MS": "0"},  # Python's 5 ms
    "mallopt": {"KNN_MMAP_THRESHOLD": "0"},  # glibc's sliding threshold
}
"""Each process lever and the variables that leave it stock."""
STOCK = {"KNN_STOCK": ",".join(SPEED)} | {key: value for env in LEVERS.values() for key, value in env.items()}
"""The server with no speed adaptation and no process lever (the correctness adaptations stay)."""


JUDGED = (*SPEED, *LEVERS)
"""What the verdict judges, each added alone to the stock configuration ("stock-uvloop+NAME")."""


def without(what: str) -> dict[str, str]:
    """The shipped server with one adaptation or lever left stock (the leave-one-out run)."""
    return {"KNN_STOCK": what} if what in SPEED else dict(LEVERS[what])


def plus(what: str) -> dict[str, str]:
    """`STOCK` with one adaptation or lever put back as shipped."""
    if what in SPEED:
        return STOCK | {"KNN_STOCK": ",".join(name for name in SPEED if name != what)}
    return {key: value for key, value in STOCK.items() if key not in LEVERS[what]}


CONFIGS: dict[str, tuple[dict[str, str], str]] = {
    "shipped": ({}, "everything as shipped (uvloop, every adaptation, GC thread, 1 ms, mallopt)"),
    "shipped-asyncio": ({"KNN_UVLOOP": "0"}, "as shipped on asyncio's loop: main before uvloop"),
    **{f"shipped-without-{what}": (without(what), f"as shipped but {what} left stock") for what in JUDGED},
    "shipped-capture-320x240": ({"KNN_CAPTURE": "320x240"}, "as shipped, the page asking for 320×240"),
    "stock-asyncio": ({**STOCK, "KNN_UVLOOP": "0"}, "no speed adaptation, no lever, asyncio's loop"),
    "stock-uvloop": (STOCK, "no speed adaptation, no lever, uvloop: stock plus a library"),
    **{f"stock-uvloop+{what}": (plus(what), f"stock-uvloop with {what} as shipped") for what in JUDGED},
    "stock-uvloop+capture-320x240": (
        {**STOCK, "KNN_CAPTURE": "320x240"},
        "stock-uvloop, the page asking for 320×240 (the peers send what it asks)",
    ),
    "stock-uvloop+full-size-answers": (
        {**STOCK, "KNN_CAMERAS_PER_CORE": "0"},
        "stock-uvloop, answers always at the camera's size (half from 5 cameras on 2 cores as shipped)",
    ),
}
BASELINES = ("stock-asyncio", "stock-uvloop")
"""The stock configurations a speed adaptation must beat (the better of the two, per peer count)."""
GAIN = 0.20
"""What a speed adaptation must buy over the best stock configuration to stay."""
GAIN_FPS = 1.0
"""And at least this many answered fps: 20% of a collapsed server's 0.1 fps is noise."""
SECONDS, WARMUP = 30.0, 10.0
MINUTES_PER_RUN = {1: 1.5, 4: 2.0, 8: 2.5, 16: 3.2}
"""Rough minutes a run takes here with its quiet wait (start, joins, warm-up, 30 s, load decay), for the estimate."""


def run_once(series: str, config: str, clients: str, n: int, k: int, any_load: bool) -> dict | None:
    """One bench/live.py run; its summary line, or None when refused on a busy machine."""
    env, _ = CONFIGS[config]
    label = f"serving-{series}-{config}-{n}{clients[0]}-r{k}"
    command = [sys.executable, str(ROOT / "bench" / "live.py"), "--video", "handheld", "--no-teach", "--no-ramp"]
    command += ["--peers"] if clients == "peers" else []
    command += ["--sessions", str(n), "--seconds", str(SECONDS), "--warmup", str(WARMUP), "--label", label]
    command += [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    command += ["--any-load"] if any_load else []
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    if done.returncode == REFUSED:
        return None
    out = RESULTS / f"live-{label}.json"
    if done.returncode != 0 or not out.exists():
        return {"config": config, "clients": clients, "n": n, "round": k, "failed": done.returncode, "file": out.name}
    figures = summary(json.loads(out.read_text()))
    return {"config": config, "clients": clients, "n": n, "round": k, **figures, "file": out.name}


def summary(saved: dict) -> dict:
    """The verdict's figures of one saved bench/live.py run (one session count)."""
    (run,) = saved["runs"]
    streaming = [s for s in run["per_session"] if s["received_fps"] > 0]
    p95 = [s["latency_p95"] for s in streaming if s["latency_p95"] == s["latency_p95"]]  # not NaN
    peers = run.get("peers")
    connected = (
        sum(any(state == "connected" for _, state in p["connection"]) for p in peers) if peers else len(streaming)
    )
    return {
        "slowest_fps": min((s["answered_fps"] for s in streaming), default=0.0),
        "mean_fps": statistics.fmean(s["answered_fps"] for s in streaming) if streaming else 0.0,
        "connected": connected,
        "worst_p95_ms": max(p95, default=float("nan")),
        "load_start": run.get("load_start", saved.get("load_at_start")),
        "load_end": run.get("load_end"),
        "served_with": run.get("serving", {}),
    }


def took(config: str, served: dict) -> list[str]:
    """What of the configuration's environment the server did not run with (its metrics' record)."""
    if config not in CONFIGS:  # a configuration of a deleted adaptation: nothing left to compare with
        return []
    env, problems = CONFIGS[config][0], []
    if not served:
        return ["the server recorded nothing (an older app?)"]
    loop = str(served.get("event_loop", ""))
    if ("uvloop" in loop) != (env.get("KNN_UVLOOP") != "0"):
        problems.append(f"event loop {loop}")
    left_stock = {name for name in env.get("KNN_STOCK", "").split(",") if name}
    if left_stock & set(served.get("adaptations", ())):
        problems.append(f"applied {sorted(left_stock & set(served['adaptations']))}")
    if served.get("post_script_gc") != (env.get("STREAMLIT_RUNNER_POST_SCRIPT_GC") == "true"):
        problems.append(f"postScriptGC {served.get('post_script_gc')}")
    return problems


def meets_floor(n: int, fps: list[float], p95: list[float], all_connected: bool) -> bool | None:
    """Issue 30's floors on the medians: 8 peers ≥ 28 fps and p95 ≤ 60 ms; 16 all connected and ≥ 6 fps."""
    if n == 8:
        return statistics.median(fps) >= 28 and (not p95 or statistics.median(p95) <= 60)
    if n == 16:
        return all_connected and statistics.median(fps) >= 6
    return None


def read_series(series: str) -> list[dict]:
    path = RESULTS / f"serving-{series}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def newest_series() -> str | None:
    found = sorted(RESULTS.glob("serving-*.jsonl"), key=lambda p: p.stat().st_mtime)
    return found[-1].stem.removeprefix("serving-") if found else None


def clearly_above(a: float, b: float) -> bool:
    """Whether median `a` beats median `b` by the verdict's margin: `GAIN` and `GAIN_FPS` both."""
    return a >= max((1 + GAIN) * b, b + GAIN_FPS)


def _order(config: str) -> int:
    """A configuration's place in the tables: `CONFIGS` order, a deleted adaptation's after them."""
    return list(CONFIGS).index(config) if config in CONFIGS else len(CONFIGS)


def table(lines: list[dict], clients: str) -> str:
    """Per configuration and client count: the medians, and the verdict for speed adaptations."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for line in lines:
        if line.get("clients", "peers") == clients and "failed" not in line:
            groups.setdefault((line["config"], line["n"]), []).append(line)
    medians = {key: statistics.median(r["slowest_fps"] for r in runs) for key, runs in groups.items()}
    all_in = {key: sum(r["connected"] >= r["n"] for r in runs) for key, runs in groups.items()}
    share = {key: all_in[key] / len(runs) for key, runs in groups.items()}  # of the runs, every peer connected
    rows = []
    for (config, n), runs in sorted(groups.items(), key=lambda kv: (kv[0][1], _order(kv[0][0]))):
        fps = [r["slowest_fps"] for r in runs]
        p95 = [r["worst_p95_ms"] for r in runs if r["worst_p95_ms"] == r["worst_p95_ms"]]
        loads = [r["load_start"] for r in runs if r.get("load_start") is not None]
        base = max((b for b in BASELINES if (b, n) in medians), key=lambda b: medians[(b, n)], default=None)
        gain, verdict = "", ""
        if config.startswith("shipped-without-") and medians.get(("shipped", n), 0) > 0:
            shipped = medians[("shipped", n)]
            gain = f"shipped {100 * (shipped / max(medians[(config, n)], 1e-9) - 1):+.0f}% over it"
            needed = clearly_above(shipped, medians[(config, n)]) or share[("shipped", n)] > share[(config, n)]
            verdict = "needed" if needed else "not needed"
        elif base is not None and config not in BASELINES and medians[(base, n)] > 0:
            gain = f"{100 * (medians[(config, n)] / medians[(base, n)] - 1):+.0f}% vs {base}"
            if config.removeprefix("stock-uvloop+") in JUDGED:
                pays = clearly_above(medians[(config, n)], medians[(base, n)]) or share[(config, n)] > share[(base, n)]
                verdict = "pays" if pays else "does not pay"
        floor = meets_floor(n, fps, p95, all_in[(config, n)] == len(runs))
        mismatched = sorted({p for r in runs for p in took(config, r.get("served_with", {}))})
        rows.append(
            [
                config + (f" (ran with: {'; '.join(mismatched)})" if mismatched else ""),
                n,
                len(runs),
                f"{statistics.median(fps):.1f} ({min(fps):.1f}-{max(fps):.1f})",
                f"{all_in[(config, n)]} of {len(runs)}",
                f"{statistics.median(p95):.0f}" if p95 else "-",
                f"{min(loads):.2f}-{max(loads):.2f}" if loads else "-",
                gain,
                verdict,
                {None: "", True: "met", False: "not met"}[floor],
            ]
        )
    who = "peers" if clients == "peers" else "tabs"
    return markdown_table(
        [
            "configuration",
            who,
            "runs",
            f"slowest {who[:-1]}'s answered fps: median (range)",
            f"every {who[:-1]} connected",
            "worst p95 ms: median",
            "load at start",
            "median vs best stock",
            "verdict (≥ 20%)",
            "floor",
        ],
        rows,
    )


def report(series: str) -> None:
    lines = read_series(series)
    failed = [line for line in lines if "failed" in line]
    print(f"Series {series}: {len(lines)} runs saved (bench/results/serving-{series}.jsonl)\n")
    for clients in ("peers", "tabs"):
        if any(line.get("clients", "peers") == clients and "failed" not in line for line in lines):
            print(table(lines, clients) + "\n")
    for line in failed:
        where = f"{line['config']}, {line['n']} {line['clients']}, round {line['round']}"
        print(f"failed (exit status {line['failed']}): {where}; bench/results/{line['file']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), metavar="NAME")
    parser.add_argument("--peers", type=int, nargs="+", default=[8, 16], help="peer counts (bench/peers.py)")
    parser.add_argument("--tabs", type=int, nargs="*", help="Chromium tab counts instead of peers (harm: 1 4)")
    parser.add_argument("--runs", type=int, help="runs per configuration and count (5; --screen 1; --tabs 3)")
    parser.add_argument("--screen", action="store_true", help="one run each")
    parser.add_argument("--series", help="a series' name: its runs are resumed (default: a new one, dated)")
    parser.add_argument("--report", action="store_true", help="print the series' tables (the newest by default)")
    parser.add_argument("--list", action="store_true", help="list the configurations and their environments")
    parser.add_argument("--any-load", action="store_true", help="start at any load (a smoke run; decides nothing)")
    args = parser.parse_args()
    if args.list:
        for name, (env, what) in CONFIGS.items():
            print(f"{name}: {what}\n    {' '.join(f'{k}={v}' for k, v in env.items()) or '(no variable)'}")
        return
    if args.report:
        series = args.series or newest_series()
        if series is None:
            raise SystemExit("no saved series in bench/results")
        report(series)
        return
    clients = "tabs" if args.tabs is not None else "peers"
    counts = (args.tabs or [1, 4]) if clients == "tabs" else args.peers
    runs = args.runs or (1 if args.screen else 3 if clients == "tabs" else 5)
    series = args.series or time.strftime("%Y%m%d-%H%M") + ("-screen" if args.screen else "")
    done = {(line["config"], line.get("clients", "peers"), line["n"], line["round"]) for line in read_series(series)}
    plan = [
        (config, n, k)
        for k in range(1, runs + 1)
        for n in counts
        for config in args.configs
        if (config, clients, n, k) not in done
    ]
    minutes = sum(MINUTES_PER_RUN.get(n, 3.0) for _, n, _ in plan)
    print(
        f"series {series}: {len(plan)} runs of {SECONDS:.0f} s ({len(done)} saved before), about "
        f"{minutes / 60:.1f} h on a quiet machine",
        file=sys.stderr,
        flush=True,
    )
    from tqdm import tqdm

    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / f"serving-{series}.jsonl").open("a") as index:
        for config, n, k in tqdm(plan, unit="run", file=sys.stderr):
            line = run_once(series, config, clients, n, k, args.any_load)
            if line is None:
                again = sys.argv[1:] if args.series else ["--series", series, *sys.argv[1:]]
                print(
                    f"\nrefused on a busy machine at {config}, {n} {clients}, round {k}; resume with "
                    f"python bench/serving.py {' '.join(again)}",
                    file=sys.stderr,
                )
                break
            index.write(json.dumps(line) + "\n")
            index.flush()
    report(series)


if __name__ == "__main__":
    main()
