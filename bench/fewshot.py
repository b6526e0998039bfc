"""Few-shot accuracy of every candidate default on the development sets: input size, stored extras
and vote rule, at 1 / 5 / 10 examples per class, over several random draws of the examples.

Sets (bench/fewshot_sets.py): rock-paper-scissors and COIL-20 (examples from the first half of
each class's frames, queries the whole second half), grocery (the authors' ``train_*`` files as
examples, every ``test_*`` file a query). Each draw spreads a class's examples evenly over its
example files from a random offset, so they are far apart; every candidate sees the same draws,
so their differences are paired.

Candidates, each scored by the engine itself (`KNNClassifier` with the rule's settings, k=3):

- backbone and input size: MobileNetV2 and MobileNet v1 at 224 and 320 px;
- stored extras: none, the mirror beside each example, the mirror with the vectors centred on the
  examples' mean (`centred`), today's augmentation (mirror and 5 crops with theirs, 12 vectors);
- vote: the k nearest examples (today's), the nearest class centroid, the centroid-blended vote,
  whose weight is chosen first on grocery's train files alone (examples from their first half,
  queries from their second), so no reported query took part in choosing it.

With `--capture WxH ...` every photo, example and query alike, is first made what a camera of that
size delivers (scaled to cover it and centre-cropped), and the model's input is cut from that frame
as the live path cuts it; each capture's rows are then compared with the first capture's.

Embeddings are cached under ~/.cache/knn-bench (bench/embedcache.py): the first run embeds every
file the sets use in every variant (about an hour on 2 shared cores, under `nice`), a rerun only
votes (minutes).

    nice -n 19 python bench/fewshot.py
    nice -n 19 python bench/fewshot.py --sets rps --draws 3 --backbones mobilenet_v2_1.0_224
    nice -n 19 python bench/fewshot.py --sets grocery rps --backbones mobilenet_v2_1.0_224 --extras centred \
        --weight 0.3 --capture 640x480 320x240
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KNN_OFFLINE", "1")  # a benchmark never downloads

from bench.common import SHARED
from bench.embedcache import EmbeddingCache, cache_root
from bench.fewshot_sets import DevSet, load_set

if (SHARED / "models").is_dir():
    os.environ.setdefault("KNN_WEIGHTS_DIR", str(SHARED / "models"))

BACKBONES = ("mobilenet_v2_1.0_224", "mobilenet_v2_1.0_320", "mobilenet_v1_1.0_224", "mobilenet_v1_1.0_320")
EXTRAS = {"none": ("own",), "mirror": ("own", "mirror"), "crops": ("own", "mirror", "crops")}
"""Stored extras -> the cached variants an example's vectors are made of, own embedding first."""
CANDIDATE_EXTRAS = {
    "none": ("none", False),
    "mirror": ("mirror", False),
    "mirror-centred": ("mirror", True),
    "crops": ("crops", False),
    "centred": ("none", True),
    "crops-centred": ("crops", True),
}
"""The stored extras the tables can show, as (extras, centred); the first four by default."""
VOTES = ("examples", "centroids", "blend")
WEIGHTS = tuple(round(w, 2) for w in np.arange(0.0, 1.001, 0.1))
SELECTION = ("grocery-train", "mobilenet_v2_1.0_224", "none", False)
"""Where the blend's weight is chosen: set, backbone, extras, centred (today's defaults)."""
K = 3


Capture = tuple[int, int]


def capture_size(text: str) -> Capture:
    """(width, height) from ``320x240``."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) >= 2 and int(height) >= 2):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 320x240, got {text!r}")
    return int(width), int(height)


def labelled(backbone: str, capture: Capture | None) -> str:
    """The backbone's name in the results, with the capture its photos went through if any."""
    return backbone if capture is None else f"{backbone}@{capture[0]}x{capture[1]}"


def pick(n_files: int, shots: int, rng: np.random.Generator) -> list[int]:
    """`shots` indices spread evenly over `n_files` from a random offset."""
    step = n_files / shots
    offset = rng.random()
    return [int((offset + i) * step) for i in range(shots)]


class Vectors:
    """A set's cached vectors for one backbone: each pool file's per variant, each query's own."""

    def __init__(self, dev: DevSet, cache: EmbeddingCache, variants: Sequence[str]) -> None:
        self.classes = list(dev.pool)
        self.pool = {v: {c: cache.get(dev.pool[c], v) for c in self.classes} for v in variants}
        own = {c: np.concatenate(cache.get(dev.queries[c], "own")) for c in self.classes}
        self.queries = np.concatenate([own[c] for c in self.classes])
        self.truth = np.concatenate([[i] * len(own[c]) for i, c in enumerate(self.classes)])

    def examples(self, picks: dict[str, list[int]], variants: Sequence[str]) -> tuple[np.ndarray, list[str], list[int]]:
        """(rows, labels, vectors per example) of the picked pool files, each made of these variants."""
        rows, labels, counts = [], [], []
        for c in self.classes:
            for i in picks[c]:
                parts = [self.pool[v][c][i] for v in variants]
                rows.extend(parts)
                labels.append(c)
                counts.append(sum(len(p) for p in parts))
        return np.concatenate(rows), labels, counts


def draws_for(dev: DevSet, shots: int, draws: int) -> list[dict[str, list[int]]]:
    """The same draws for every candidate and backbone (paired)."""
    out = []
    for d in range(draws):
        rng = np.random.default_rng([d, shots])
        out.append({c: pick(len(dev.pool[c]), shots, rng) for c in dev.pool})
    return out


def score(vectors: Vectors, picks, extras: str, centred: bool, rules: Sequence[tuple[str, float]]) -> list[float]:
    """Accuracy of each (vote, weight) rule on the set's queries, with these examples (`extras`: a
    key of `EXTRAS`, or a tuple of cached variants)."""
    from knn.core.classifier import KNNClassifier

    rows, labels, counts = vectors.examples(picks, EXTRAS[extras] if isinstance(extras, str) else extras)
    n = len(labels)
    clf = KNNClassifier(k=K, max_examples_per_class=n, max_examples=n, centred=centred)
    clf.add_many(rows, labels, vectors=counts)
    out = []
    for vote, weight in rules:
        clf.vote, clf.centroid_weight = vote, weight
        guess = np.asarray([vectors.classes.index(p.label) for p in clf.predict_many(vectors.queries)])
        out.append(float(np.mean(guess == vectors.truth)))
    return out


def fill(
    sets: dict[str, DevSet],
    backbones: Sequence[str],
    variants: Sequence[str],
    captures: Sequence[Capture | None] = (None,),
) -> None:
    """Embed whatever the runs need that is not cached yet, under one progress bar."""
    from tqdm import tqdm

    jobs = []
    for backbone in backbones:
        for capture in captures:
            cache = EmbeddingCache(backbone, capture=capture)
            for dev in sets.values():
                pool, queries = dev.files()
                jobs.append((cache, queries + pool, "own"))
                jobs += [(cache, pool, v) for v in variants if v != "own"]
    todo = [(cache, cache.missing(files, v), v) for cache, files, v in jobs]
    total = sum(len(files) for _, files, _ in todo)
    if total:
        with tqdm(total=total, desc="Embedding (cached for reruns)", unit="img", file=sys.stderr) as bar:
            for cache, files, variant in todo:
                cache.fill(files, variant, bar.update)


def choose_weight(shots: Sequence[int], draws: int) -> tuple[float, dict[float, float]]:
    """The blend's weight with the best mean accuracy over shots and draws on the selection set."""
    set_name, backbone, extras, centred = SELECTION
    dev = load_set(set_name)
    vectors = Vectors(dev, EmbeddingCache(backbone), EXTRAS[extras])
    totals = dict.fromkeys(WEIGHTS, 0.0)
    for n in shots:
        for picks in draws_for(dev, n, draws):
            scores = score(vectors, picks, extras, centred, [("blend", w) for w in WEIGHTS])
            for w, acc in zip(WEIGHTS, scores, strict=True):
                totals[w] += acc / (len(shots) * draws)
    best = max(WEIGHTS, key=lambda w: (round(totals[w], 6), -abs(w - 0.5)))
    return best, totals


def cell(values: Sequence[float]) -> str:
    if not len(values):
        return "-"
    a = 100 * np.asarray(values)
    return f"{a.mean():.1f} ± {a.std(ddof=1):.1f}" if len(a) > 1 else f"{a.mean():.1f}"


BASELINE = ("mobilenet_v2_1.0_224", "none", False, "examples")
"""Today's defaults: MobileNetV2 at 224, no stored extras, the k nearest examples vote."""


def paired_report(saved: dict, baseline: Callable[[tuple], tuple | None] | None = None) -> str:
    """Each candidate's paired difference from today's defaults, in points: the mean over draws
    of (candidate - default) on the same examples, ± its sd, per set and number of shots.
    `baseline` maps a candidate to the one it is compared with instead (None: no row)."""
    results = {tuple(json.loads(key)): values for key, values in saved["results"].items()}
    sets = list(dict.fromkeys(k[0] for k in results))
    shots = sorted({k[5] for k in results})
    candidates = list(dict.fromkeys(k[1:5] for k in results))
    rows = []
    for cand in candidates:
        against = BASELINE if baseline is None else baseline(cand)
        if against is None:
            continue
        cells, means = [], []
        for set_name in sets:
            for n in shots:
                base = results.get((set_name, *against, n))
                mine = results.get((set_name, *cand, n))
                if base is None or mine is None:
                    cells.append("-")
                    continue
                diff = 100 * (np.asarray(mine) - np.asarray(base))
                means.append(diff.mean())
                cells.append(f"{diff.mean():+.1f} ± {diff.std(ddof=1):.1f}" if len(diff) > 1 else f"{diff.mean():+.1f}")
        backbone, extras, centred, vote = cand
        label = f"blend {saved['weight']:g}" if vote == "blend" else vote
        name = f"{backbone.replace('mobilenet_', '')} · {extras}{' centred' if centred else ''} · {label}"
        rows.append((np.mean(means) if means else -np.inf, name, cells))
    rows.sort(key=lambda r: -r[0])
    header = ["candidate", "mean", *[f"{s} {n}" for s in sets for n in shots]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [f"| {name} | {mean:+.1f} | " + " | ".join(cells) + " |" for mean, name, cells in rows]
    return "\n".join(lines)


def first_capture(saved: dict) -> Callable[[tuple], tuple | None] | None:
    """For runs with captures: each candidate's row with the first capture's photos (None for those
    rows themselves); None for runs without."""
    labels = [json.loads(key)[1] for key in saved["results"]]
    first = next((label.partition("@")[2] for label in labels if "@" in label), None)
    if first is None:
        return None
    return lambda cand: None if cand[0].endswith(f"@{first}") else (f"{cand[0].partition('@')[0]}@{first}", *cand[1:])


def print_paired(saved: dict) -> None:
    """The paired differences: from the first capture's rows where the run has captures, else from
    today's defaults."""
    baseline = first_capture(saved)
    if baseline is None:
        print(f"\nPaired differences from today's defaults ({', '.join(map(str, BASELINE))}), points, mean ± sd over")
        print("the same draws; candidates by their mean over every set and number of examples:\n")
    else:
        print("\nPaired differences from the same backbone and rule with the first capture's photos, points,")
        print("mean ± sd over the same draws:\n")
    print(paired_report(saved, baseline))


def merged(runs: list[dict]) -> dict:
    """Saved runs as one (the draws are seeded, so a row measured twice is the same row)."""
    weights = {run["weight"] for run in runs}
    if len(weights) > 1:
        raise SystemExit(f"these runs blend with different weights: {sorted(weights)}")
    results = {key: values for run in runs for key, values in run["results"].items()}
    return {"weight": runs[0]["weight"], "draws": runs[0]["draws"], "results": results}


def row_order(row: tuple) -> tuple:
    """Backbones in `BACKBONES` order, then the extras in `EXTRAS` order, plain before centred."""
    backbone, extras, centred = row
    return (BACKBONES.index(backbone) if backbone in BACKBONES else len(BACKBONES), list(EXTRAS).index(extras), centred)


def wide_report(saved: dict) -> str:
    """Per set, one row per backbone and stored extras, the three votes side by side (mean ± sd)."""
    results = {tuple(json.loads(key)): values for key, values in saved["results"].items()}
    shots = sorted({k[5] for k in results})
    out = []
    for set_name in dict.fromkeys(k[0] for k in results):
        rows = sorted(dict.fromkeys(k[1:4] for k in results if k[0] == set_name), key=row_order)
        votes = ("examples", "centroids", f"blend {saved['weight']:g}")
        header = ["backbone", "extras", *[f"{v} {n}" for v in votes for n in shots]]
        lines = [f"*{set_name}*, accuracy % (mean ± sd over {saved['draws']} draws)", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for backbone, extras, centred in rows:
            cells = [cell(results.get((set_name, backbone, extras, centred, v, n), [])) for v in VOTES for n in shots]
            name = backbone.replace("mobilenet_", "")
            lines.append(f"| {name} | {extras}{' centred' if centred else ''} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["rps", "coil20", "grocery"])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 5, 10])
    parser.add_argument("--draws", type=int, default=10, help="random draws of the examples per number of shots")
    parser.add_argument(
        "--extras", nargs="+", choices=list(CANDIDATE_EXTRAS), default=list(CANDIDATE_EXTRAS)[:4], help="rows to show"
    )
    parser.add_argument("--weight", type=float, default=None, help="the blend's weight (default: chosen first)")
    parser.add_argument("--json", type=Path, default=cache_root() / "fewshot-results.json", help="raw results")
    parser.add_argument(
        "--report", type=Path, nargs="+", metavar="JSON", help="print the tables of saved runs (same draws) together"
    )
    parser.add_argument("--cached-only", action="store_true", help="embed nothing; skip rows not cached")
    parser.add_argument(
        "--capture",
        nargs="+",
        type=capture_size,
        metavar="WxH",
        help="photos as cameras of these sizes deliver them (default: the photos' own centre squares)",
    )
    args = parser.parse_args()
    if args.report:
        saved = merged([json.loads(path.read_text()) for path in args.report])
        print(wide_report(saved))
        print_paired(saved)
        return
    started = time.perf_counter()
    captures = args.capture or [None]
    sets = {name: load_set(name) for name in args.sets}
    pairs = [CANDIDATE_EXTRAS[name] for name in args.extras]
    if not args.cached_only:
        fill(sets, args.backbones, sorted({v for e, _ in pairs for v in EXTRAS[e]}), captures)
        if args.weight is None:  # the weight is chosen on the photos themselves, whatever the capture
            fill({SELECTION[0]: load_set(SELECTION[0])}, [SELECTION[1]], EXTRAS[SELECTION[2]])

    if args.weight is None:
        weight, totals = choose_weight(args.shots, args.draws)
        print(f"\nThe blend's weight, chosen on {SELECTION[0]} ({SELECTION[1]}, extras {SELECTION[2]}), mean of")
        print(f"{', '.join(map(str, args.shots))} examples per class over {args.draws} draws:\n")
        print("| weight of the centroid vote | " + " | ".join(f"{w:g}" for w in WEIGHTS) + " |")
        print("|---|" + "---|" * len(WEIGHTS))
        print("| accuracy % | " + " | ".join(f"{100 * totals[w]:.1f}" for w in WEIGHTS) + " |")
        print(f"\nchosen: {weight:g}")
    else:
        weight = args.weight
    rules = [(v, weight) for v in VOTES]

    results: dict[str, list[float]] = {}
    for set_name in args.sets:
        dev = sets[set_name]
        n_queries = sum(len(f) for f in dev.queries.values())
        what = f"{len(dev.pool)} classes, {n_queries} queries, {args.draws} draws"
        print(f"\n*{set_name}*: {what}, accuracy % (mean ± sd)\n")
        print("| backbone | input | extras | vote | " + " | ".join(f"{n} per class" for n in args.shots) + " |")
        print("|---|---|---|---|" + "---|" * len(args.shots))
        for backbone, capture in itertools.product(args.backbones, captures):
            cache = EmbeddingCache(backbone, capture=capture)
            pool = dev.files()[0]
            cached = [v for v in sorted({v for e, _ in pairs for v in EXTRAS[e]}) if not cache.missing(pool, v)]
            vectors = Vectors(dev, cache, cached)
            network, size = labelled(backbone, capture).rsplit("_", 1)
            for extras, centred in pairs:
                if any(v not in cached for v in EXTRAS[extras]):
                    print(f"| {network} | {size} | {extras} | not cached (--cached-only) | | | |", flush=True)
                    continue
                per_rule = {v: {n: [] for n in args.shots} for v in VOTES}
                for n in args.shots:
                    for picks in draws_for(dev, n, args.draws):
                        for (vote, _), acc in zip(rules, score(vectors, picks, extras, centred, rules), strict=True):
                            per_rule[vote][n].append(acc)
                shown = extras + (" centred" if centred else "")
                for vote in VOTES:
                    label = f"blend {weight:g}" if vote == "blend" else vote
                    cells = [cell(per_rule[vote][n]) for n in args.shots]
                    print(f"| {network} | {size} | {shown} | {label} | " + " | ".join(cells) + " |", flush=True)
                    for n in args.shots:
                        key = [set_name, labelled(backbone, capture), extras, centred, vote, n]
                        results[json.dumps(key)] = per_rule[vote][n]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    saved = {"weight": weight, "draws": args.draws, "results": results}
    args.json.write_text(json.dumps(saved))
    print_paired(saved)
    print(f"\n{time.perf_counter() - started:.0f} s; raw results in {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
