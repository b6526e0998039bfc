"""The command line: ``python -m knn predict | teach | evaluate | export`` (``--help`` on each).

Results go to stdout, progress bars (on a terminal) and messages to stderr. Exit codes:
0 success; 2 bad input (a missing file, a non-image, a bad project file, a bad option);
1 anything else (e.g. weights that cannot be found, a failed conversion); 130 interrupted.
Files are written atomically: a failed command never leaves half a project or half a model.
TensorFlow's and LiteRT's native start-up logs are hidden; ``KNN_DEBUG=1`` shows them and turns
the one-line report of an unexpected failure back into a traceback.

Images that cannot be read are reported on stderr with the reason. `teach` and `evaluate` skip
them and go on (``--strict`` makes them fatal) but fail when a class is left with no image;
`predict` answers for every readable image, then exits with 2 if any input was not an image.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Never, TextIO, TypeVar

import numpy as np

from .core.image_folders import IMAGE_SUFFIXES, class_folders, natural_key

if TYPE_CHECKING:  # tqdm is imported when a bar is shown
    from tqdm import tqdm

T = TypeVar("T")

PROG = "python -m knn"
UNKNOWN = "(unknown)"  # printed by `predict` when the best similarity is below the threshold


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


# --- small helpers ------------------------------------------------------------------------------


def _progress(iterable: Iterable[T], total: int | None = None, desc: str = "", quiet: bool = False) -> tqdm[T]:
    """A tqdm bar on stderr, shown only on a terminal (pipes and logs stay clean)."""
    from tqdm import tqdm

    return tqdm(
        iterable, total=total, desc=desc, unit="img", file=sys.stderr, disable=True if quiet else None, leave=False
    )


def _bar(total: int, desc: str = "", quiet: bool = False) -> tqdm[Never]:
    """`_progress` without an iterable: advanced by `update`."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=True if quiet else None, leave=False)


def _warn(message: str, level: str = "warning") -> None:
    from tqdm import tqdm

    tqdm.write(f"{level}: {message}", file=sys.stderr)


def _out(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)  # clears and redraws a running bar instead of garbling it
    sys.stdout.flush()


def _existing_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such {what}")
    if not p.is_file():
        raise UsageError(f"{path} is not a file (expected a {what})")
    return p


def _existing_folder(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such folder")
    if not p.is_dir():
        raise UsageError(f"{path} is not a folder")
    return p


def _writable_target(path: str) -> Path:
    """Check that the output can be written, by writing a file beside it, before any long work."""
    import tempfile

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{path} is a folder; give a file name to write")
    if not p.parent.is_dir():
        raise UsageError(f"cannot write {path}: the folder {p.parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".knn-write-test-", dir=p.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return p


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[TextIO]:
    """Send fd 2 to /dev/null while TensorFlow runs (its C++ start-up logs ignore every log-level
    setting); yield a stream on the real stderr for our own progress. KNN_DEBUG=1 keeps the logs."""
    if os.environ.get("KNN_DEBUG"):
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    stream = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield stream
    finally:
        stream.close()
        os.dup2(saved, 2)
        os.close(saved)


def _load_project(path: str):
    """(classifier, backbone id) from a project file; ProjectFileError on a bad file."""
    from .core.project import ProjectFileError, load_project, read_project_meta
    from .model.backbones import BACKBONES

    project = _existing_file(path, "project file")
    classifier = load_project(project)  # validates everything before the backbone is read
    backbone = read_project_meta(project)["backbone"]
    if backbone not in BACKBONES:
        raise ProjectFileError(
            f"{path} was made with the backbone {backbone!r}, which this version does not know "
            f"(it knows {', '.join(BACKBONES)})"
        )
    return classifier, backbone


def _fits(classifier, embedder, path: str) -> None:
    """The project's embeddings must be the size the backbone makes (a damaged file might not be)."""
    if classifier.dim is not None and classifier.dim != embedder.dim:
        raise UsageError(
            f"{path} holds {classifier.dim}-value embeddings but {embedder.backbone} makes "
            f"{embedder.dim}-value ones: the file is damaged"
        )


def _embedder(backbone: str | None, quiet: bool, resolution: int | None = None):
    """The engine's embedder: `backbone`, or the best this machine has (the reason goes to stderr),
    at `resolution`. One-off builds report on stderr, LiteRT's start-up line does not."""
    from .model.backbones import get_backbone
    from .model.choice import choose_backbone
    from .model.embedder import Embedder

    with _native_stderr_silenced() as stderr:

        def report(fraction: float, text: str) -> None:
            if not quiet:
                print(f"{text} ({fraction:.0%})", file=stderr, flush=True)

        if backbone is None:
            choice = choose_backbone(resolution or 224, progress=report)
            if not quiet:
                print(f"using {choice.backbone}: {choice.reason}", file=stderr, flush=True)
            backbone = choice.backbone
        elif resolution is not None:
            backbone = get_backbone(backbone).at(resolution).id
        return Embedder(backbone, progress=report)


def _read_images(files: Sequence[Path], embedder, strict: bool, quiet: bool, desc: str, keep_jpegs: bool = False):
    """Yield (path, embedding, stored JPEG or None) for each readable image; warn about (or refuse)
    the rest. The JPEG is the model's square at the size a project stores (as the app keeps it)."""
    from .core.images import ImageError, encode_jpeg, read_squares
    from .core.limits import STORED_IMAGE_SIZE

    sizes = (embedder.input_size, STORED_IMAGE_SIZE) if keep_jpegs else (embedder.input_size,)
    for path in _progress(files, total=len(files), desc=desc, quiet=quiet):
        try:
            image, *stored = read_squares(path, *sizes)
        except ImageError as exc:
            if strict:
                raise UsageError(str(exc)) from None
            _warn(f"skipping {exc}")
            continue
        yield path, embedder.embed_one(image), encode_jpeg(stored[0]) if stored else None


def _class_folders(root: Path, max_per_class: int | None = None) -> dict[str, list[Path]]:
    """Class name (normalised as a typed name is) -> its image files; at most `max_per_class`
    of them, spread evenly over the folder."""
    from .core.inputs import ClassifierError
    from .core.names import normalise_name

    try:
        folders = class_folders(root)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"{exc}; expected one subfolder of images per class") from None
    named: dict[str, list[Path]] = {}
    for folder, files in folders.items():
        try:
            name = normalise_name(folder)
        except ClassifierError as exc:
            shown = os.fsencode(folder).decode("utf-8", "backslashreplace")
            raise UsageError(f"the class folder {shown!r} cannot be a class name ({exc})") from None
        if name in named:
            raise UsageError(f"two class folders are both the class {name!r}: merge or rename one")
        if max_per_class is not None and len(files) > max_per_class:
            step = len(files) / max_per_class
            files = [files[int(i * step)] for i in range(max_per_class)]
        named[name] = files
    return named


def _read_class_folders(
    folders: dict[str, list[Path]], root: Path, embedder, strict: bool, quiet: bool, keep_jpegs: bool = False
):
    """class -> (embeddings [n, D], JPEGs or Nones) for every readable image of `folders`.

    Only the small stored JPEG (as the app keeps it) is held per image, never the decoded photo.
    """
    files = [path for paths in folders.values() for path in paths]
    label_of = {path: name for name, paths in folders.items() for path in paths}
    out: dict[str, tuple[list[np.ndarray], list[bytes | None]]] = {name: ([], []) for name in folders}
    for path, embedding, jpeg in _read_images(files, embedder, strict, quiet, "Embedding", keep_jpegs):
        embeddings, jpegs = out[label_of[path]]
        embeddings.append(embedding)
        jpegs.append(jpeg)
    empty = [name for name, (embeddings, _) in out.items() if not embeddings]
    if empty:
        raise UsageError(f"no readable image in class folder(s): {', '.join(str(root / n) for n in empty)}")
    return {name: (np.stack(embeddings), jpegs) for name, (embeddings, jpegs) in out.items()}


def _image_files(paths: Sequence[str]) -> list[Path]:
    """Named files as given, folders expanded (recursively) to their image files in natural order."""
    files: list[Path] = []
    for name in paths:
        p = Path(name)
        if p.is_dir():
            found = sorted(
                (
                    f
                    for f in p.rglob("*")
                    if f.is_file()
                    and f.suffix.lower() in IMAGE_SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                ),
                key=lambda f: [natural_key(Path(part)) for part in f.relative_to(p).parts],
            )
            if not found:
                raise UsageError(f"{name} holds no image files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(f"{name}: no such file or folder")
    return files


# --- commands -----------------------------------------------------------------------------------


def cmd_predict(args: argparse.Namespace) -> int:
    files = _image_files(args.inputs)  # every path checked before the model loads
    classifier, backbone = _load_project(args.project)
    if len(classifier) == 0:
        raise UsageError(f"{args.project} has no examples to compare with")
    embedder = _embedder(backbone, args.quiet)
    _fits(classifier, embedder, args.project)
    unreadable = 0
    from .core.images import ImageError, read_square

    for path in _progress(files, total=len(files), desc="Predicting", quiet=args.quiet):
        try:
            image = read_square(path, embedder.input_size)
        except ImageError as exc:
            _warn(str(exc), "error")
            unreadable += 1
            continue
        pred = classifier.predict(embedder.embed_one(image))
        label = UNKNOWN if pred.label is None else pred.label
        confidence = max(pred.confidences.values()) if pred.label is None else pred.confidences[pred.label]
        _out(f"{path}\t{label}\t{confidence:.3f}")
    if unreadable:
        _warn(f"{unreadable} of {len(files)} inputs were not readable images", "error")
        return 2
    return 0


def cmd_teach(args: argparse.Namespace) -> int:
    from .core.classifier import KNNClassifier
    from .core.evaluation import leave_one_out
    from .core.limits import MAX_CLASSES, MAX_EXAMPLES
    from .core.project import save_project
    from .core.voting import DEFAULT_CENTRED, DEFAULT_CENTROID_WEIGHT, DEFAULT_VOTE

    root = _existing_folder(args.folder)
    out = _writable_target(args.output)
    folders = _class_folders(root, args.max_per_class)  # layout errors and limits before the model loads
    if len(folders) > MAX_CLASSES:
        raise UsageError(f"{root} has {len(folders)} class folders; a project holds at most {MAX_CLASSES} classes")
    total = sum(len(files) for files in folders.values())
    if total > MAX_EXAMPLES:
        raise UsageError(
            f"{root} has {total:,} images; a project holds at most {MAX_EXAMPLES:,} examples: "
            f"use --max-per-class {MAX_EXAMPLES // len(folders)}"
        )
    embedder = _embedder(args.backbone, args.quiet, args.resolution)  # argparse checked the id
    data = _read_class_folders(folders, root, embedder, args.strict, args.quiet, keep_jpegs=True)
    biggest = max(len(jpegs) for _, jpegs in data.values())
    classifier = KNNClassifier(
        k=args.k,
        unknown_threshold=args.unknown_threshold,
        max_examples_per_class=max(1000, biggest),
        vote=DEFAULT_VOTE,  # a new project's rule, as the page gives it
        centroid_weight=DEFAULT_CENTROID_WEIGHT,
        centred=DEFAULT_CENTRED,
    )
    for name, (embeddings, jpegs) in data.items():
        classifier.add_many(embeddings, [name] * len(jpegs), jpegs)
    save_project(out, classifier, embedder.backbone)
    counts = ", ".join(f"{name} {n}" for name, n in classifier.counts().items())
    _out(f"taught {len(classifier.classes)} classes from {len(classifier)} images ({counts})")
    accuracy = leave_one_out(classifier).accuracy
    if not math.isnan(accuracy):
        _out(f"leave-one-out accuracy {accuracy:.1%} (k={classifier.k}, {embedder.backbone})")
    _out(f"saved {out}")
    return 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table: readable in a terminal, pasteable into a README."""
    _out("| " + " | ".join(header) + " |")
    _out("|" + "---|" * len(header))
    for row in rows:
        _out("| " + " | ".join(str(v) for v in row) + " |")


def _evaluate_project(args: argparse.Namespace) -> int:
    from .core.evaluation import leave_one_out

    classifier, backbone = _load_project(args.target)
    if args.k is not None:
        classifier.k = args.k
    result = leave_one_out(classifier)
    if result.n < 2:
        raise UsageError(f"{args.target} has {result.n} example(s); leave-one-out needs at least 2")
    _out(f"leave-one-out accuracy {result.accuracy:.1%} on {result.n} examples (k={classifier.k}, {backbone})")
    counts = classifier.counts()
    header = ["class", "examples", "accuracy", *[f"→ {c}" for c in result.classes]]
    rows = [
        [name, counts[name], "-" if math.isnan(acc) else f"{acc:.1%}", *result.confusion[i].tolist()]
        for i, (name, acc) in enumerate(result.per_class.items())
    ]
    _out("")
    _print_table(header, rows)
    return 0


def _evaluate_folders(args: argparse.Namespace) -> int:
    from .core.evaluation import METHOD_LABELS
    from .model.backbones import RESOLUTIONS
    from .model.evaluate import Configuration, evaluate

    roots = [_existing_folder(target) for target in args.targets]
    shots = sorted(set(args.shots or [1, 5, 10]))
    folders = _merged_class_folders(roots)
    k = 3 if args.k is None else args.k
    if args.compare:
        configurations = _comparison(args)
    else:
        embedder = _embedder(args.backbone, args.quiet, args.resolution)
        configurations = [Configuration(embedder.backbone, args.augment)]
        chosen = {embedder.backbone: embedder}
    needed = sum(len(files) for files in _needed_files(folders, shots, args).values())
    bar = _bar(needed * len(configurations), desc="Embedding", quiet=args.quiet)

    def embedder_for(backbone: str):
        return chosen[backbone] if not args.compare and backbone in chosen else _embedder(backbone, args.quiet)

    def skip(path: Path, exc: Exception) -> None:
        if args.strict:
            raise UsageError(str(exc))
        _warn(f"skipping {exc}")

    try:
        scores = evaluate(
            folders, configurations, shots, args.split, args.max_queries, k, embedder_for, tick=bar.update, skip=skip
        )
    except ValueError as exc:  # too few files for the split, or a class left with no readable image
        raise UsageError(str(exc)) from None
    finally:
        bar.close()
    where = ", ".join(str(r) for r in roots)
    split = {
        "halves": "examples from the first half of each class's files, queries from the second half",
        "arc": "examples from a sixth of each turntable (the first files), queries from the opposite half",
    }
    if args.compare:
        _print_comparison(scores, shots, len(folders), where, split[args.split], k)
        return 0
    methods = {"ours": f"ours (k={k}, similarity-weighted)", "nearest": METHOD_LABELS["nearest"]}
    by = {(s.shots, s.method): s for s in scores}
    rows = [[n, by[n, "ours"].queries, *[f"{by[n, m].accuracy:.1%}" for m in methods]] for n in shots]
    config = configurations[0]
    mode = RESOLUTIONS.get(int(config.backbone.rsplit("_", 1)[1]), "")
    _out(f"few-shot accuracy on {where} ({len(folders)} classes, {config.label}, {mode} mode): {split[args.split]}")
    _out("")
    _print_table(["examples per class", "queries", *methods.values()], rows)
    return 0


def _needed_files(folders: dict[str, list[Path]], shots: list[int], args: argparse.Namespace) -> dict[str, set]:
    from .model.evaluate import plan

    try:
        examples_at, queries = plan(folders, shots, args.split, args.max_queries)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return {
        name: {f for per_class in examples_at.values() for f in per_class[name]} | set(queries[name])
        for name in folders
    }


def _merged_class_folders(roots: list[Path]) -> dict[str, list[Path]]:
    """The classes of several folders together; a name in two of them gets its folder's name too."""
    merged: dict[str, list[Path]] = {}
    per_root = [(root, _class_folders(root)) for root in roots]
    seen = [name for _, folders in per_root for name in folders]
    for root, folders in per_root:
        for name, files in folders.items():
            merged[f"{root.name}/{name}" if seen.count(name) > 1 else name] = files
    return merged


def _comparison(args: argparse.Namespace) -> list:
    """Every backbone this machine has weights for (MobileNetV2 1.0 and v1 1.0) x both input sizes
    x augmentation off and on."""
    from .model.backbones import DEFAULT_BACKBONE, FALLBACK_BACKBONE, RESOLUTIONS, get_backbone
    from .model.evaluate import Configuration
    from .model.weights import WeightsUnavailable, resolve_weights

    networks = [args.backbone] if args.backbone else [DEFAULT_BACKBONE, FALLBACK_BACKBONE]
    configurations = []
    for network in networks:
        try:
            resolve_weights(network)
        except WeightsUnavailable as exc:
            _warn(f"leaving {network} out of the comparison: {exc}")
            continue
        for size in RESOLUTIONS:
            for augment in (False, True):
                configurations.append(Configuration(get_backbone(network).at(size).id, augment))
    if not configurations:
        raise UsageError("no backbone's weights are on this machine")
    return configurations


def _print_comparison(scores, shots: list[int], n_classes: int, where: str, split: str, k: int) -> None:
    from .core.evaluation import METHOD_LABELS

    _out(f"few-shot accuracy on {where} ({n_classes} classes): {split}")
    _out("")
    header = ["backbone", "input", "augmented examples", "classifier", *[f"{n} per class" for n in shots]]
    by = {(s.configuration, s.shots, s.method): s for s in scores}
    configurations = list(dict.fromkeys(s.configuration for s in scores))
    plain = [c for c in configurations if c.backbone.endswith("_224") and not c.augment] or configurations
    # The TF.js demo's rule on its own model (v1 at 224) where that was compared.
    anchor = next((c for c in plain if c.backbone.startswith("mobilenet_v1")), plain[0])
    rows = [
        [
            anchor.backbone.rsplit("_", 1)[0],
            anchor.backbone.rsplit("_", 1)[1],
            "no",
            METHOD_LABELS["tfjs"] + " (the anchor)",
            *[f"{by[anchor, n, 'tfjs'].accuracy:.1%}" for n in shots],
        ]
    ]
    for c in configurations:
        network, size = c.backbone.rsplit("_", 1)
        rows.append(
            [
                network,
                size,
                "yes" if c.augment else "no",
                f"ours (k={k})",
                *[f"{by[c, n, 'ours'].accuracy:.1%}" for n in shots],
            ]
        )
    _print_table(header, rows)
    _out("")
    _out(f"{by[configurations[0], shots[0], 'ours'].queries} queries in all, the same for every row")


def cmd_evaluate(args: argparse.Namespace) -> int:
    targets = [Path(t) for t in args.targets]
    if all(t.is_dir() for t in targets):
        return _evaluate_folders(args)
    if len(targets) > 1 or args.shots or args.compare:
        raise UsageError(
            "--shots, --compare and several targets apply to folders of class subfolders, not to a project file"
        )
    args.target = args.targets[0]
    return _evaluate_project(args)


def cmd_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .model.export import ExportError, _format_of, export_model

    out = _writable_target(args.output)
    try:
        fmt = _format_of(out)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    classifier, backbone = _load_project(args.project)
    with (
        _native_stderr_silenced() as stderr,
        tqdm(
            total=100,
            desc="Exporting",
            file=stderr,
            disable=True if args.quiet else None,
            leave=False,
            bar_format="{percentage:3.0f}%|{bar}| {desc}",
        ) as bar,
    ):

        def report(fraction: float, text: str) -> None:
            bar.set_description_str(text)
            bar.update(round(100 * fraction) - bar.n)

        export_model(classifier, backbone, out, fmt, progress=report)
    size = out.stat().st_size / 1024**2
    _out(
        f"wrote {out} ({size:.1f} MB, {fmt}): {len(classifier.classes)} classes, {len(classifier)} examples, "
        f"k={classifier.k}, {backbone}"
    )
    _out("class names inside it: zipfile.ZipFile(path).read('labels.txt')")
    return 0


# --- parser -------------------------------------------------------------------------------------


def _threshold(text: str) -> float:
    value = float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a cosine similarity between -1 and 1")
    return value


HELP_WIDTH = 80
"""Columns the commands' descriptions are wrapped to."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _paragraphs(text: str) -> str:
    """A command's description wrapped here, its blank-line-separated paragraphs kept apart: shown as
    written by argparse's public `RawDescriptionHelpFormatter`."""
    return "\n\n".join(
        textwrap.fill(" ".join(p.split()), HELP_WIDTH, break_on_hyphens=False) for p in text.split("\n\n")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_paragraphs(
            "Teach, evaluate, use and export k-nearest-neighbor image classifiers on MobileNet embeddings."
        ),
        epilog="Exit codes: 0 ok, 2 bad input, 1 other failure. Run a command with --help for details.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or build messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_predict, _add_teach, _add_evaluate, _add_export):
        add(sub)
    return parser


def _backbone_option(p: argparse.ArgumentParser, what: str) -> None:
    from .model.backbones import BACKBONES, DEFAULT_BACKBONE, FALLBACK_BACKBONE, RESOLUTIONS

    p.add_argument(
        "--backbone",
        default=None,
        choices=list(BACKBONES),
        metavar="ID",
        help=f"{what} (default {DEFAULT_BACKBONE} where its weights can be had, else "
        f"{FALLBACK_BACKBONE}); one of: {', '.join(BACKBONES)}",
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=None,
        choices=list(RESOLUTIONS),
        metavar="PX",
        help="input size: " + ", ".join(f"{s} ({m})" for s, m in RESOLUTIONS.items()) + "; default 224",
    )


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="classify images with a project",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Print one line per image: path, class, confidence (tab-separated). The class is "
            f"{UNKNOWN} when the best similarity is below the project's unknown threshold. "
            "Folders are searched recursively for image files."
        ),
    )
    p.add_argument("project", metavar="PROJECT", help="a project file (.npz) saved by the app or `teach`")
    p.add_argument("inputs", metavar="IMAGE_OR_FOLDER", nargs="+", help="image files and/or folders")
    p.set_defaults(run=cmd_predict)


def _add_teach(sub) -> None:
    p = sub.add_parser(
        "teach",
        help="build a project from a folder with one subfolder per class",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Every subfolder of FOLDER is a class and its image files are the examples. Unreadable "
            "images are skipped with a warning (--strict: refused); a class with no readable image "
            "is an error. The project is written atomically."
        ),
    )
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("-o", "--output", metavar="PROJECT", required=True, help="project file to write (.npz)")
    _backbone_option(p, "embedding model")
    p.add_argument("-k", type=_positive, default=3, help="neighbors that vote (default 3)")
    p.add_argument(
        "--unknown-threshold",
        type=_threshold,
        default=None,
        metavar="SIM",
        help="answer unknown when the best cosine similarity is below this (default: never)",
    )
    p.add_argument(
        "--max-per-class",
        type=_positive,
        default=None,
        metavar="N",
        help="take at most N images of each class, spread evenly over its files",
    )
    p.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    p.set_defaults(run=cmd_teach)


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="leave-one-out accuracy of a project, or few-shot accuracy on a folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "evaluate PROJECT: classify every stored example by all the others (leave-one-out) and "
            "print per-class accuracy and the confusion matrix.\n\n"
            "evaluate FOLDER [FOLDER ...] --shots 1 5 10: for each number of examples per class, take "
            "them evenly from the first half of each class's files (natural order) and query with the "
            "second half, since neighboring frames are near-duplicates; ours beside plain "
            "nearest neighbor. Only the files the split uses are embedded."
        ),
    )
    p.add_argument(
        "targets",
        metavar="PROJECT_OR_FOLDER",
        nargs="+",
        help="a project file, or folders of class subfolders (their classes are put together)",
    )
    p.add_argument(
        "--shots", type=_positive, nargs="+", metavar="N", help="examples per class, folder only (default 1 5 10)"
    )
    p.add_argument(
        "--split",
        choices=["halves", "arc"],
        default="halves",
        help="halves: examples from each class's first half of files, queries from the second; "
        "arc: examples from a sixth of a turntable, queries from the opposite half (COIL-20)",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="store each example with its mirror and crops (12 vectors), as the app can",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="every backbone with weights here x 224/320 x augmentation off/on, beside the TF.js rule",
    )
    p.add_argument(
        "-k", type=_positive, default=None, help="neighbors that vote (default: the project's k; 3 for a folder)"
    )
    p.add_argument(
        "--max-queries",
        type=_positive,
        default=None,
        metavar="N",
        help="at most N queries per class, spread evenly (folder only)",
    )
    _backbone_option(p, "embedding model for a folder")
    p.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    p.set_defaults(run=cmd_evaluate)


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a project as one Keras or LiteRT model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Write MobileNet + L2 normalisation + the KNN head as one model: .keras (loads with "
            "keras.models.load_model, no knn needed) or .tflite (ai_edge_litert). Input: float32 "
            "[batch, S, S, 3] RGB 0..255, centre-cropped and resized to S (224, or 320 for a project in the "
            "accurate mode; knn.json says). Outputs: "
            "probabilities [batch, classes], class_index [batch] (-1 = unknown), similarity "
            "[batch]. The class names are inside the file: it is also a zip holding labels.txt "
            "and knn.json."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument(
        "-o",
        "--output",
        metavar="MODEL",
        required=True,
        help="model.keras or model.tflite: the suffix chooses the format",
    )
    p.set_defaults(run=cmd_export)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    args = build_parser().parse_args(argv)  # exits 2 itself on bad usage
    from .core.classifier import ClassifierError
    from .core.images import ImageError
    from .core.project import ProjectFileError
    from .model.export import ExportError

    bad_input = (UsageError, ProjectFileError, ImageError, ClassifierError, ExportError, FileNotFoundError)
    try:
        return args.run(args)
    except bad_input as exc:
        message = str(exc) if not isinstance(exc, FileNotFoundError) else f"{exc.filename or exc}: no such file"
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # any failure: one clear line instead of a traceback
        print(f"{PROG} {args.command}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("KNN_DEBUG"):
            raise
        return 1
