"""Few-shot accuracy on every development set, every configuration, 1 / 5 / 10 examples per class.

Each set is one `python -m knn evaluate ... --compare` run (the command is printed above its
table): every backbone with weights on this machine at 224 and 320 px, examples stored plain and
augmented, beside the TF.js knn-classifier's rule as the anchor row.

- rps: rock-paper-scissors, examples from the first half of each class's files, queries from the second;
- coil20: COIL-20 the same way;
- coil20 arc: examples from a 60° arc of each turntable, queries from the opposite half;
- mixed: the 23 classes of COIL-20 and rock-paper-scissors together.

    python bench/fewshot.py                 # all four (~12 min on 2 cores)
    python bench/fewshot.py --sets rps
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, SHARED, shared_path

SETS = {
    "rps": (["data/rps"], "halves"),
    "coil20": (["data/coil20"], "halves"),
    "coil20 arc": (["data/coil20"], "arc"),
    "mixed": (["data/coil20", "data/rps"], "halves"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--shots", nargs="+", default=["1", "5", "10"])
    args = parser.parse_args()
    env = dict(os.environ, KNN_OFFLINE="1", PYTHONPATH=str(ROOT))
    if (SHARED / "models").is_dir():
        env.setdefault("KNN_WEIGHTS_DIR", str(SHARED / "models"))
    for name in args.sets:
        folders, split = SETS[name]
        paths = [str(shared_path(f)) for f in folders]
        options = ["--split", split, "--shots", *args.shots, "--compare"]
        shown = ["python", "-m", "knn", "evaluate", *[f"../shared/{f}" for f in folders], *options]
        print(f"\n{name}: `{' '.join(shown)}`\n", flush=True)
        run = subprocess.run(
            [sys.executable, "-m", "knn", "-q", "evaluate", *paths, *options],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode:
            raise SystemExit(run.stderr)
        print(
            "\n".join(line for line in run.stdout.splitlines() if not line.startswith("few-shot accuracy")), flush=True
        )


if __name__ == "__main__":
    main()
