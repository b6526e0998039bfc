"""How long `python -m knn evaluate FOLDER --shots 1 5 10 --max-queries 20` takes on a big folder.

The folder mimics the held-out set of issue 12 in shape: 71 classes of 648 small photos each
(46,008 files), made of symbolic links to the real photos in ../shared/data (COIL-20 and
rock-paper-scissors, each class a different rotation of the pool so no two classes are equal).
With 10 examples and 20 queries per class the split uses 30 files per class (2,130 in all); an
evaluator that embeds only those finishes in well under a minute, one that embeds every file
takes the 46,008 files' time.

    python bench/evaluator.py              # the default backbone (MobileNetV2 1.0/224)
    python bench/evaluator.py --backbone mobilenet_v1_1.0_224
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, SHARED, markdown_table, shared_path

CLASSES = 71
PER_CLASS = 648


def make_folder(root: Path) -> int:
    """71 class folders of 648 links each into ../shared's photos; returns the number of files."""
    pool = sorted(
        p
        for sub in ("data/coil20", "data/rps")
        for p in shared_path(sub).rglob("*")
        if p.suffix.lower() in (".png", ".jpg", ".jpeg")
    )
    for c in range(CLASSES):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True)
        for i in range(PER_CLASS):
            source = pool[(c * 25 + i) % len(pool)]
            (folder / f"{i:04d}{source.suffix}").symlink_to(source)
    return CLASSES * PER_CLASS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose `knn` runs (to time an older one)")
    args = parser.parse_args()
    env = dict(os.environ, KNN_OFFLINE="1", PYTHONPATH=str(args.root))
    if (SHARED / "models").is_dir():
        env.setdefault("KNN_WEIGHTS_DIR", str(SHARED / "models"))
    with tempfile.TemporaryDirectory(prefix="knn-eval-bench-") as tmp:
        files = make_folder(Path(tmp))
        command = [sys.executable, "-m", "knn", "-q", "evaluate", tmp, "--shots", "1", "5", "10", "--max-queries", "20"]
        if args.backbone:
            command += ["--backbone", args.backbone]
        subprocess.run(
            [sys.executable, "-m", "knn", "-q", "predict", "--help"], cwd=ROOT, env=env, capture_output=True, check=True
        )  # warm the interpreter's imports
        start = time.perf_counter()
        run = subprocess.run(command, cwd=args.root, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if run.returncode:
        raise SystemExit(run.stderr)
    # The classes are rotations of one pool of photos, so the accuracy it prints means nothing: only the time.
    shown = "python -m knn evaluate FOLDER --shots 1 5 10 --max-queries 20" + (
        f" --backbone {args.backbone}" if args.backbone else ""
    )
    print(
        markdown_table(
            ["folder", "files", "files the split uses", "command", "seconds"],
            [[f"{CLASSES} classes", f"{files:,}", f"{CLASSES * 30:,}", f"`{shown}`", round(seconds, 1)]],
        )
    )


if __name__ == "__main__":
    main()
