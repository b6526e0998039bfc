"""Few-shot accuracy on real photos at 1, 5 and 10 examples per class.

Examples from the first half of each class's files (natural order), queries from the second half,
for our classifier, the TF.js knn-classifier's rule and plain nearest neighbour.

    python bench/fewshot.py [--backbone mobilenet_v1_1.0_224] [--shots 1 5 10]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import markdown_table, shared_path  # noqa: E402
from knn import Embedder  # noqa: E402
from knn.core.evaluation import METHOD_LABELS, METHODS, few_shot_accuracy  # noqa: E402
from knn.model.folders import embed_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="mobilenet_v1_1.0_224")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    args = parser.parse_args()
    from tqdm import tqdm

    embedder = Embedder(args.backbone)
    rows = []
    for name in ("coil20", "rps"):
        folder = shared_path(f"data/{name}")
        embedded = embed_folder(embedder, folder, progress=lambda it: tqdm(list(it), desc=name, file=sys.stderr))
        for method in METHODS:
            row = [name, METHOD_LABELS[method]]
            for shots in args.shots:
                acc, n = few_shot_accuracy(embedded, shots, method)
                row.append(f"{100 * acc:.1f}%")
            rows.append(row)
    print(f"\nFew-shot accuracy, {args.backbone}, queries = second half of every class\n")
    print(markdown_table(["data", "classifier", *[f"{s} per class" for s in args.shots]], rows))


if __name__ == "__main__":
    main()
