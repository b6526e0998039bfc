"""knn.project: round trips, and every kind of bad file refused with ProjectFileError."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

from knn.core import project
from knn.core.classifier import KNNClassifier
from knn.core.images import decode_jpeg, encode_jpeg
from knn.core.inputs import ClassifierError
from knn.core.limits import MAX_CLASSES, MAX_DIM, MAX_EXAMPLES, MAX_META_BYTES, MAX_STORED_VALUES
from knn.core.names import normalise_name
from knn.core.project import (
    FORMAT_VERSION,
    MAX_PROJECT_BYTES,
    ProjectFileError,
    load_project,
    project_bytes,
    read_project_meta,
    save_project,
)

BACKBONE = "mobilenet_v1_1.0_224"
D = 1024  # the backbone's width: load_project checks it


class UploadedFile(io.BytesIO):
    """Like Streamlit's UploadedFile: a BytesIO subclass with a name."""

    def __init__(self, data: bytes, name: str = "my project.npz"):
        super().__init__(data)
        self.name = name


class FakeEmbedder:
    backbone = BACKBONE


def make_classifier(dim: int = D) -> KNNClassifier:
    rng = np.random.default_rng(0)
    clf = KNNClassifier(k=5, unknown_threshold=0.42, max_examples_per_class=50)
    clf.add_class("rock")
    clf.add_class("empty in the middle")
    jpeg = encode_jpeg(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), size=32)
    for i in range(7):
        clf.add(rng.standard_normal(dim), ["rock", "paper", "scissors ✂"][i % 3], jpeg if i % 2 else None)
    clf.remove(3)  # a hole: rows are no longer in id order
    clf.add(rng.standard_normal(dim), "rock", jpeg)
    return clf


def state_of(clf: KNNClassifier):
    emb, labels, _ = clf.embeddings()
    images = [e.image for e in clf.examples()]
    return clf.classes, labels, emb, images, clf.k, clf.unknown_threshold, clf.max_examples_per_class


def assert_same(a: KNNClassifier, b: KNNClassifier) -> None:
    sa, sb = state_of(a), state_of(b)
    assert sa[0] == sb[0] and sa[1] == sb[1] and sa[3:] == sb[3:]
    np.testing.assert_array_equal(sa[2], sb[2])
    queries = np.random.default_rng(1).standard_normal((5, a.dim or D))
    if len(a):
        for p, q in zip(a.predict_many(queries), b.predict_many(queries), strict=True):
            # The same examples in another row order: equal within rounding, not bit for bit.
            assert p.label == q.label and list(p.confidences) == list(q.confidences)
            assert list(p.confidences.values()) == pytest.approx(list(q.confidences.values()), abs=1e-5)
            assert p.similarity == pytest.approx(q.similarity, abs=1e-5)


# ------------------------------------------------------------------ round trips
def test_round_trip_through_a_path(tmp_path: Path):
    clf = make_classifier()
    path = tmp_path / "hands.npz"
    save_project(path, clf, BACKBONE)
    loaded = load_project(path, expected_backbone=BACKBONE)
    assert loaded is not clf
    assert_same(clf, loaded)
    assert loaded.classes == ["rock", "empty in the middle", "paper", "scissors ✂"]
    assert loaded.counts()["empty in the middle"] == 0
    assert decode_jpeg(loaded.examples("rock")[-1].image).shape == (32, 32, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["hands.npz"]  # no temporary file left


def test_round_trip_through_files_bytes_and_str(tmp_path: Path):
    clf = make_classifier()
    data = project_bytes(clf, FakeEmbedder())
    assert_same(clf, load_project(UploadedFile(data), expected_backbone=FakeEmbedder()))
    assert_same(clf, load_project(data))
    assert_same(clf, load_project(memoryview(data)))
    buffer = io.BytesIO()
    save_project(buffer, clf, BACKBONE)
    assert_same(clf, load_project(io.BytesIO(buffer.getvalue())))
    save_project(str(tmp_path / "p"), clf, BACKBONE)  # no ".npz" appended behind our back
    assert_same(clf, load_project(str(tmp_path / "p")))


def test_a_format_1_file_loads_with_one_vector_per_example():
    clf = make_classifier()
    arrays = good_arrays()
    del arrays["vectors"]
    arrays["meta"] = np.frombuffer(json.dumps(dict(json.loads(arrays["meta"].tobytes()), version=1)).encode(), np.uint8)
    loaded = load_project(npz_bytes(arrays))
    assert_same(clf, loaded)
    assert all(e.vectors == 1 for e in loaded.examples())


def test_augmented_examples_keep_their_vectors_through_a_file():
    rng = np.random.default_rng(5)
    clf = KNNClassifier(k=1)
    own = rng.standard_normal((3, D))
    views = rng.standard_normal((3, 4, D))
    rows = np.concatenate([np.vstack([own[i], views[i]]) for i in range(3)])
    clf.add_many(rows, ["a", "b", "a"], vectors=[5, 5, 5])
    loaded = load_project(project_bytes(clf, BACKBONE))
    assert [e.vectors for e in loaded.examples()] == [5, 5, 5]
    np.testing.assert_allclose(loaded.state().embeddings, clf.state().embeddings, atol=1e-7)
    query = views[1, 2]  # one of the second example's views: that example answers
    assert loaded.predict(query).neighbors[0].example_id == 1 and loaded.predict(query).label == "b"


def test_file_format_is_plain_arrays():
    with np.load(io.BytesIO(project_bytes(make_classifier(), BACKBONE)), allow_pickle=False) as npz:
        arrays = dict(npz)
    assert arrays["embeddings"].dtype == np.float32 and arrays["embeddings"].shape == (7, D)
    assert arrays["classes"].dtype.kind == "U"
    assert arrays["image_bytes"].dtype == np.uint8 and arrays["image_offsets"].dtype == np.int64
    assert all(a.dtype != object for a in arrays.values())
    meta = json.loads(arrays["meta"].tobytes())
    assert meta["version"] == FORMAT_VERSION and meta["backbone"] == BACKBONE
    assert (meta["dim"], meta["k"], meta["unknown_threshold"]) == (D, 5, 0.42)


@pytest.mark.parametrize("vote", ["examples", "centroids", "blend"])
def test_the_vote_rule_travels_with_the_project(vote):
    clf = make_classifier()
    clf.vote, clf.centroid_weight, clf.centred = vote, 0.25, True
    loaded = load_project(project_bytes(clf, BACKBONE))
    assert (loaded.vote, loaded.centroid_weight, loaded.centred) == (vote, 0.25, True)
    assert_same(clf, loaded)
    meta = read_project_meta(project_bytes(clf, BACKBONE))
    assert (meta["vote"], meta["centroid_weight"], meta["centred"]) == (vote, 0.25, True)


@pytest.mark.parametrize("version", [1, 2])
def test_a_file_from_before_the_vote_rules_keeps_its_rule_when_defaults_change(version, monkeypatch):
    """A format 1 or 2 file was answered by the k nearest examples, uncentred: it still is, even
    when a newer default says otherwise (and even if such a file somehow carried the fields)."""
    expected, arrays = make_classifier(), good_arrays()
    meta = json.loads(arrays["meta"].tobytes())
    for key in ("vote", "centroid_weight", "centred"):
        del meta[key]
    if version == 1:
        del arrays["vectors"]
    arrays["meta"] = np.frombuffer(json.dumps(dict(meta, version=version)).encode(), np.uint8)
    new_defaults = KNNClassifier.__init__.__kwdefaults__ | {"vote": "blend", "centred": True}
    monkeypatch.setattr(KNNClassifier.__init__, "__kwdefaults__", new_defaults)
    assert KNNClassifier().vote == "blend"  # the default has changed ...
    loaded = load_project(npz_bytes(arrays))
    assert (loaded.vote, loaded.centred) == ("examples", False)  # ... the old project has not
    assert_same(expected, loaded)
    arrays["meta"] = np.frombuffer(json.dumps(dict(meta, version=version, vote="blend")).encode(), np.uint8)
    assert load_project(npz_bytes(arrays)).vote == "examples"


@pytest.mark.parametrize("classes", [[], ["only an empty class"]])
def test_round_trip_without_examples(classes):
    clf = KNNClassifier(k=2)
    for name in classes:
        clf.add_class(name)
    loaded = load_project(project_bytes(clf, BACKBONE))
    assert loaded.classes == classes and len(loaded) == 0 and loaded.dim is None and loaded.k == 2


def usable_name(text: str) -> str | None:
    """The name as the classifier would store it, or None where it refuses the text."""
    try:
        return normalise_name(text)
    except ClassifierError:
        return None


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 12),
    names=st.lists(st.text(min_size=1, max_size=8).map(usable_name).filter(bool), min_size=1, max_size=4, unique=True),
    k=st.integers(1, 9),
    threshold=st.none() | st.floats(-1, 1),
)
def test_round_trip_property(seed, n, names, k, threshold):
    rng = np.random.default_rng(seed)
    clf = KNNClassifier(k=k, unknown_threshold=threshold)
    for name in names:
        clf.add_class(name)
    for _ in range(n):
        image = bytes([0xFF, 0xD8, *rng.integers(0, 255, rng.integers(0, 5))]) if rng.random() < 0.5 else None
        clf.add(rng.standard_normal(5), names[rng.integers(len(names))], image)
    assert_same(clf, load_project(project_bytes(clf, BACKBONE)))


# ------------------------------------------------------------------ bad files
def good_arrays() -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(project_bytes(make_classifier(), BACKBONE)), allow_pickle=False) as npz:
        return dict(npz)


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def with_meta(**changes) -> bytes:
    arrays = good_arrays()
    meta = json.loads(arrays["meta"].tobytes())
    meta.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    return npz_bytes(arrays)


def with_array(name: str, value) -> bytes:
    arrays = good_arrays()
    arrays[name] = value
    return npz_bytes(arrays)


def lying_header() -> bytes:
    """A member whose .npy header declares a terabyte but which holds 16 bytes."""
    good = npz_bytes(good_arrays())
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "image_bytes.npy":
                header = io.BytesIO()
                npy_format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**12,)})
                data = header.getvalue() + b"\0" * 16
            dst.writestr(info.filename, data)
    return out.getvalue()


def classes_member(names: list[str], extra: list[int]) -> bytes:
    """The classes member written by hand as UTF-32 code units, some of which are not Unicode."""
    arrays = good_arrays()
    units = [ord(c) for c in "".join(names)] + extra
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": f"<U{len(units)}", "fortran_order": False, "shape": (1,)})
    arrays["meta"] = np.frombuffer(
        json.dumps(dict(json.loads(arrays["meta"].tobytes()), n_classes=1)).encode(), np.uint8
    )
    arrays["labels"] = np.zeros_like(arrays["labels"])
    good = npz_bytes({k: v for k, v in arrays.items() if k != "classes"} | {"classes": np.array(["x"])})
    return replace_member(good, "classes.npy", b"\x93NUMPY" + header.getvalue()[6:] + np.array(units, "<u4").tobytes())


def replace_member(data: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, content if info.filename == name else src.read(info))
    return out.getvalue()


def flagged(data: bytes, name: str, encrypted: bool = False, method: int | None = None) -> bytes:
    """The file with one member marked encrypted or compressed by a method zipfile cannot read."""
    raw = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        local = archive.getinfo(name).header_offset
        index = [i.filename for i in archive.infolist()].index(name)
    central = -1
    for _ in range(index + 1):
        central = raw.find(b"PK\x01\x02", central + 1)
    if encrypted:
        raw[local + 6] |= 1
        raw[central + 8] |= 1
    if method is not None:
        raw[local + 8 : local + 10] = method.to_bytes(2, "little")
        raw[central + 10 : central + 12] = method.to_bytes(2, "little")
    return bytes(raw)


def bad_files() -> dict[str, tuple[bytes, str]]:
    good = project_bytes(make_classifier(), BACKBONE)
    arrays = good_arrays()
    n = len(arrays["labels"])
    nan = arrays["embeddings"].copy()
    nan[1, 2] = np.nan
    inf = arrays["embeddings"].copy()
    inf[0, 0] = np.inf
    object_classes = np.empty(4, dtype=object)
    object_classes[:] = ["a", "b", "c", "d"]
    bad_offsets = arrays["image_offsets"].copy()
    bad_offsets[2] = bad_offsets[-1] + 10
    extra = dict(arrays, extra=np.zeros(1))
    missing = {k: v for k, v in arrays.items() if k != "labels"}
    return {
        "empty": (b"", "is empty"),
        "truncated": (good[: len(good) // 2], "truncated or damaged"),
        "truncated end": (good[:-30], "truncated or damaged"),
        "not a zip": (b"\xff\xd8\xff\xe0 a JPEG, say" * 100, "not a project file"),
        "unrelated npz": (npz_bytes({"x": np.zeros(3)}), "missing"),
        "extra member": (npz_bytes(extra), "unexpected contents"),
        "missing member": (npz_bytes(missing), "missing labels.npy"),
        "float64 embeddings": (with_array("embeddings", arrays["embeddings"].astype(np.float64)), "dtype float64"),
        "float16 embeddings": (with_array("embeddings", arrays["embeddings"].astype(np.float16)), "dtype float16"),
        "float labels": (with_array("labels", arrays["labels"].astype(np.float32)), "'labels' has dtype"),
        "object classes": (npz_bytes(dict(arrays, classes=object_classes)), "dtype object"),
        "bytes classes": (with_array("classes", np.array([b"a", b"b", b"c", b"d"])), "'classes' has dtype"),
        "1-D embeddings": (with_array("embeddings", arrays["embeddings"].ravel()), "shape"),
        "NaN": (with_array("embeddings", nan), "NaN or infinite"),
        "inf": (with_array("embeddings", inf), "NaN or infinite"),
        "zero embedding": (with_array("embeddings", np.zeros_like(arrays["embeddings"])), "all zeros"),
        "short labels": (with_array("labels", arrays["labels"][:-1]), f"{n - 1} labels"),
        "short vectors": (with_array("vectors", arrays["vectors"][:-1]), f"{n - 1} vector counts"),
        "vectors not summing": (with_array("vectors", arrays["vectors"] * 2), f"{n} embeddings for {2 * n} vectors"),
        "zero vectors": (with_array("vectors", arrays["vectors"] * 0), "vector count outside"),
        "short offsets": (with_array("image_offsets", arrays["image_offsets"][:-1]), "images"),
        "bad offsets": (with_array("image_offsets", bad_offsets), "offsets"),
        "label out of range": (with_array("labels", arrays["labels"] + 10), "class that does not exist"),
        "negative label": (with_array("labels", arrays["labels"] - 10), "class that does not exist"),
        "repeated class": (with_array("classes", np.array(["a", "a", "b", "c"])), "class names repeat"),
        "blank class": (with_array("classes", np.array(["a", " ", "b", "c"])), "cannot be empty"),
        "look-alike classes": (with_array("classes", np.array(["a", " a ", "é", "e\u0301"])), "class names repeat"),
        "zero-width class": (with_array("classes", np.array(["a", "\u200b", "b", "c"])), "cannot be empty"),
        "lone surrogate": (classes_member(["rock"], extra=[0xD800]), "must be valid Unicode"),
        "above U+10FFFF": (classes_member([], extra=[0x110000]), "not valid text"),
        "line separator": (with_array("classes", np.array(["a", "b\u2028c", "d", "e"])), "separators"),
        "long class name": (with_array("classes", np.array(["a" * 81, "b", "c", "d"])), "at most 80"),
        "too many examples": (
            with_array("labels", np.zeros(MAX_EXAMPLES + 1, np.int32)),
            f"{MAX_EXAMPLES + 1:,} entries; a project has at most {MAX_EXAMPLES:,}",
        ),
        "too many values": (
            with_array("embeddings", np.ones((MAX_STORED_VALUES // 2048 + 1, 2048), np.float32)),
            f"a project holds at most {MAX_STORED_VALUES:,}",
        ),
        "too many classes": (
            with_array("classes", np.array([f"c{i}" for i in range(MAX_CLASSES + 1)])),
            f"{MAX_CLASSES + 1} classes; a project has at most {MAX_CLASSES}",
        ),
        "too wide embeddings": (with_array("embeddings", np.ones((n, MAX_DIM + 1), np.float32)), "values; at most"),
        "settings too large": (with_meta(pad="x" * 2 * MAX_META_BYTES), "more than a project can hold"),
        "deeply nested settings": (
            with_array("meta", np.frombuffer(b"[" * 20_000 + b"]" * 20_000, np.uint8)),
            "settings cannot be read",
        ),
        "encrypted member": (flagged(good, "meta.npy", encrypted=True), "truncated or damaged"),
        "unknown compression": (flagged(good, "meta.npy", method=99), "truncated or damaged"),
        "bad backbone id": (with_meta(backbone="../../etc/passwd"), "'backbone'"),
        "not JPEG": (with_array("image_bytes", np.zeros_like(arrays["image_bytes"])), "not JPEG"),
        "meta not JSON": (with_array("meta", np.frombuffer(b"\xff{oops", np.uint8)), "settings cannot be read"),
        "meta not ours": (with_meta(format="something else"), "not a project file saved by this app"),
        "newer version": (with_meta(version=FORMAT_VERSION + 1), "newer version of this app"),
        "old version": (with_meta(version=0), "format 0"),
        "no version": (with_meta(version=None), "version is missing"),
        "bad k": (with_meta(k=0), "'k'"),
        "bad threshold": (with_meta(unknown_threshold=3), "'unknown_threshold'"),
        "bad vote": (with_meta(vote="majority"), "'vote'"),
        "bad centroid weight": (with_meta(centroid_weight=-0.5), "'centroid_weight'"),
        "bad centred": (with_meta(centred=1), "'centred'"),
        "format 3 without its vote": (with_meta(vote=None), "'vote'"),
        "wrong dim": (with_meta(dim=D + 1), f"{D} values but it says {D + 1}"),
        "wrong count": (with_meta(n_examples=n + 1), "examples"),
        "lying .npy header": (lying_header(), "does not hold the data its header declares"),
        "narrower than its backbone": (
            project_bytes(make_classifier(dim=512), BACKBONE),
            f"holds 512-value embeddings but {BACKBONE} makes 1024-value ones",
        ),
        "other backbone": (
            project_bytes(make_classifier(), "mobilenet_v2_1.0_224"),
            "This project was made with mobilenet_v2_1.0_224 but the app is using mobilenet_v1_1.0_224; "
            "switch the backbone in Settings first",
        ),
    }


BAD = bad_files()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_is_refused_and_the_current_classifier_kept(case: str, tmp_path: Path):
    data, words = BAD[case]
    current = make_classifier()
    before = state_of(current)
    path = tmp_path / "bad.npz"
    path.write_bytes(data)
    for source in (path, UploadedFile(data)):
        with pytest.raises(ProjectFileError, match=words if case == "other backbone" else None) as info:
            current = load_project(source, expected_backbone=BACKBONE)
        assert words in str(info.value), str(info.value)
    assert isinstance(info.value, ValueError)
    after = state_of(current)
    assert after[:2] == before[:2] and after[3:] == before[3:]
    np.testing.assert_array_equal(after[2], before[2])


def test_the_width_is_checked_against_the_backbone_id_at_any_size():
    narrow = project_bytes(make_classifier(dim=512), "mobilenet_v1_1.0_320")
    with pytest.raises(ProjectFileError, match="512-value embeddings but mobilenet_v1_1.0_320 makes 1024-value"):
        load_project(narrow, expected_backbone="mobilenet_v1_1.0_320")
    assert load_project(narrow).dim == 512  # a caller that names no backbone checks nothing
    wide = project_bytes(make_classifier(), "mobilenet_v1_1.0_320")
    assert_same(make_classifier(), load_project(wide, expected_backbone="mobilenet_v1_1.0_320"))


def test_file_over_the_size_limit(tmp_path: Path, monkeypatch):
    data = project_bytes(make_classifier(), BACKBONE)
    assert MAX_PROJECT_BYTES == 300 * 1024**2
    monkeypatch.setattr(project, "MAX_PROJECT_BYTES", len(data) - 1)
    path = tmp_path / "big.npz"
    path.write_bytes(data)
    for source in (path, UploadedFile(data), data):
        with pytest.raises(ProjectFileError, match="limited to"):
            load_project(source)


def test_zip_bomb_declared_size():
    # 200 MB of zeros compress to ~200 kB; the declared uncompressed size gives the game away
    # before anything is decompressed.
    arrays = good_arrays()
    arrays["image_bytes"] = np.zeros(200 * 1024**2, np.uint8)
    data = npz_bytes(arrays)
    assert len(data) < 1024**2
    with pytest.raises(ProjectFileError, match="would unpack image_bytes.npy to 200 MB, more than a project can hold"):
        load_project(data)


def test_too_large_project_is_not_saved(tmp_path: Path, monkeypatch):
    path = tmp_path / "p.npz"
    save_project(path, make_classifier(), BACKBONE)
    old = path.read_bytes()
    monkeypatch.setattr(project, "MAX_PROJECT_BYTES", 100)
    with pytest.raises(ProjectFileError, match="remove some examples"):
        save_project(path, make_classifier(), BACKBONE)
    assert path.read_bytes() == old


def test_save_is_atomic(tmp_path: Path, monkeypatch):
    path = tmp_path / "p.npz"
    save_project(path, make_classifier(), BACKBONE)
    old = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    bigger = make_classifier()
    bigger.add(np.ones(D), "new")
    with pytest.raises(OSError, match="disk full"):
        save_project(path, bigger, BACKBONE)
    assert path.read_bytes() == old  # the old project is intact...
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # ...and no temporary file is left
    monkeypatch.undo()
    save_project(path, bigger, BACKBONE)
    assert load_project(path).counts()["new"] == 1


def test_bad_arguments():
    with pytest.raises(ProjectFileError, match="backbone"):
        project_bytes(make_classifier(), "")
    with pytest.raises(ProjectFileError, match="no such file"):
        load_project("/nonexistent/project.npz")
    with pytest.raises(ProjectFileError, match="cannot read a project"):
        load_project(12)
    with pytest.raises(ProjectFileError, match="binary mode"):
        load_project(io.StringIO("text"))


def test_saved_file_is_readable_by_others_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "p.npz"
    save_project(path, make_classifier(), BACKBONE)
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]
    assert read_project_meta(path)["backbone"] == BACKBONE
