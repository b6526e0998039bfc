"""Start-up time and resident memory of a fresh process that embeds one 640×480 frame.

Cold: an empty cache (weights converted from the PyPI graph, LiteRT model built, each in a child
process that exits). Warm: everything cached. The serving process's own peak RSS is what a server
keeps; the build children's peak is reported apart because it is paid once and then released.

    python bench/startup.py [--repeat 3]
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
from bench.common import ROOT, markdown_table

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per runtime (median shown)")
    args = parser.parse_args()
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
