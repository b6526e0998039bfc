"""Start-up time and resident memory: of a fresh process that embeds one 640×480 frame, and of
the page a first visitor opens in headless Chromium (`--page`).

Cold: an empty cache (weights converted from the PyPI graph, LiteRT model built, each in a child
process that exits). Warm: everything cached. The serving process's own peak RSS is what a server
keeps; the build children's peak is reported apart because it is paid once and then released.

`--page`: `streamlit run app.py` with an empty model cache (cold), then again with the cache it
filled (warm); one Chromium tab opens the page as soon as the server answers and presses START as
soon as it shows. Seconds from opening the page to the title, to START and to the first prediction
(the camera's first answered frame), and the server's RSS then (one session). The weights come
from ../shared/models, never the internet. `--repo PATH` (repeatable) runs another checkout's
app.py too, interleaved with this one in each round, e.g. a worktree at an older commit.

    python bench/startup.py [--repeat 3]
    python bench/startup.py --page [--rounds 3] [--repo ../before --repo .]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

from bench.common import ROOT, markdown_table, shared_path

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np, knn
e = knn.Embedder(runtime=sys.argv[1])
e.embed(np.zeros((480, 640, 3), np.uint8))
print(json.dumps({
    "seconds_in_process": time.perf_counter() - t0,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "tensorflow_imported": "tensorflow" in sys.modules,
}))
"""


def run(runtime: str, cache: Path) -> dict:
    env = dict(os.environ, KNN_CACHE=str(cache), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KNN_WEIGHTS_DIR", None)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, runtime], env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def first_visit(root: Path, cache: Path, video: Path) -> dict[str, float]:
    """One server of `root`'s app with model cache `cache`, one tab: seconds from opening the page
    to its title, its START and the first prediction, and the server's RSS then (MB)."""
    import psutil
    from playwright.sync_api import sync_playwright

    from harness.app_server import AppServer
    from harness.browser import CAMERA_IFRAME, Page, launch

    with AppServer(env={"KNN_CACHE": str(cache)}, root=root) as app, sync_playwright() as p:
        browser = launch(p, video)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1050})
            t0 = time.perf_counter()
            tab.goto(app.url, timeout=300_000)
            tab.get_by_role("heading", name="Webcam KNN classifier").wait_for(timeout=300_000)
            title = time.perf_counter() - t0
            start = tab.frame_locator(CAMERA_IFRAME).first.get_by_role("button", name="START")
            start.wait_for(timeout=300_000)
            start_seconds = time.perf_counter() - t0
            start.click()
            page = Page.opened(tab)
            page.wait_for(page.camera_live, "the first prediction", 300)
            prediction = time.perf_counter() - t0
            rss = psutil.Process(app.process.pid).memory_info().rss / 2**20
        finally:
            browser.close()
    return {"title": title, "start": start_seconds, "prediction": prediction, "rss_mb": rss}


def page_main(rounds: int, repos: list[Path]) -> None:
    from harness import use_shared_weights
    from harness.scenes import rock_video
    from knn.core.image_folders import class_folders

    use_shared_weights()  # KNN_WEIGHTS_DIR=../shared/models, KNN_OFFLINE=1: the cold start converts, never downloads
    load = [os.getloadavg()[0]]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="knn-startup-") as tmp:
        video = rock_video(Path(tmp) / "rock.y4m", class_folders(shared_path("data/rps")))
        for r in range(rounds):
            for repo in repos:  # interleaved: each round runs every checkout, cold then warm
                cache = Path(tmp) / f"cache-{r}-{repo.name}"
                for start in ("cold", "warm"):
                    print(f"round {r + 1}: {repo} {start} ...", file=sys.stderr, flush=True)
                    results.setdefault((str(repo), start), []).append(first_visit(repo, cache, video))
                    load.append(os.getloadavg()[0])
    rows = []
    for (repo, start), runs in results.items():
        median = {k: float(np.median([run[k] for run in runs])) for k in runs[0]}
        spread = {k: f"{min(run[k] for run in runs):.1f}–{max(run[k] for run in runs):.1f}" for k in runs[0]}
        rows.append(
            [repo, start, len(runs)]
            + [f"{median[k]:.1f} ({spread[k]})" for k in ("title", "start", "prediction")]
            + [f"{median['rss_mb']:.0f}"]
        )
    print(f"\nThe first visit in headless Chromium: seconds from opening the page (median (min–max) of {rounds})")
    print(f"load average (1 min) during the runs: {min(load):.1f}–{max(load):.1f}\n")
    header = ["app", "model cache", "runs", "title s", "START s", "first prediction s", "server RSS MB"]
    print(markdown_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per runtime (median shown)")
    parser.add_argument("--page", action="store_true", help="time the first visit to the page in Chromium")
    parser.add_argument("--rounds", type=int, default=3, help="--page: rounds, each cold then warm per checkout")
    parser.add_argument(
        "--repo", type=Path, action="append", help="--page: a checkout whose app.py runs (repeatable; default: this)"
    )
    args = parser.parse_args()
    if args.page:
        page_main(args.rounds, [p.resolve() for p in args.repo or [ROOT]])
        return
    rows = []
    for runtime in ("litert", "tf"):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{runtime}: cold ...", file=sys.stderr, flush=True)
            cold = run(runtime, Path(tmp))
            rows.append(
                [
                    runtime,
                    "cold (empty cache)",
                    f"{cold['wall']:.1f}",
                    f"{cold['rss_mb']:.0f}",
                    f"{cold['children_rss_mb']:.0f}",
                    cold["tensorflow_imported"],
                ]
            )
            print(f"{runtime}: warm ...", file=sys.stderr, flush=True)
            warm = [run(runtime, Path(tmp)) for _ in range(args.repeat)]
            mid = sorted(warm, key=lambda r: r["wall"])[len(warm) // 2]
            rows.append(
                [
                    runtime,
                    f"warm (cached), median of {args.repeat}",
                    f"{mid['wall']:.2f}",
                    f"{mid['rss_mb']:.0f}",
                    "-",
                    mid["tensorflow_imported"],
                ]
            )
    print("\nA fresh process: import, load, embed one 640×480 frame\n")
    print(
        markdown_table(
            [
                "runtime",
                "start",
                "seconds",
                "peak RSS MB (process)",
                "peak RSS MB (build child)",
                "TensorFlow imported",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
