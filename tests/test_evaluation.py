"""Few-shot evaluation on real photos, and the TF.js rule it is compared with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knn.core.evaluation import few_shot_accuracy, few_shot_split, tfjs_predict
from knn.core.image_folders import class_folders
from knn.model.folder_embeddings import embed_folder


def test_tfjs_rule_gives_ties_to_the_first_class():
    examples = np.eye(3, 4, dtype=np.float32)  # one example per class, orthogonal
    query = np.array([[0.1, 0.9, 0.0, 0.0]], np.float32)  # clearly class 1
    # k=3 with one example each: every class gets one vote, so the first class wins.
    assert tfjs_predict(examples, np.array([0, 1, 2]), query, k=3).tolist() == [0]
    assert tfjs_predict(examples, np.array([0, 1, 2]), query, k=1).tolist() == [1]


def test_split_keeps_queries_out_of_the_first_half():
    files = list(range(20))
    examples, queries = few_shot_split(files, 5)
    assert examples == [0, 2, 4, 6, 8] and queries == list(range(10, 20))
    with pytest.raises(ValueError, match="needs at least"):
        few_shot_split(files, 11)


def test_natural_order(coil_dir: Path):
    names = [p.name for p in class_folders(coil_dir)["obj1"][:3]]
    assert names == ["obj1__0.png", "obj1__1.png", "obj1__2.png"]


@pytest.fixture(scope="module")
def rps_embedded(embedder, rps_dir: Path, tmp_path_factory) -> dict[str, np.ndarray]:
    # Every 4th photo keeps the test quick; the split still spans the whole recording.
    small = tmp_path_factory.mktemp("rps")
    for name, files in class_folders(rps_dir).items():
        (small / name).mkdir()
        for f in files[::4]:
            (small / name / f.name).symlink_to(f)
    return embed_folder(embedder, small)


def test_one_shot_beats_the_tfjs_rule(rps_embedded):
    ours, n = few_shot_accuracy(rps_embedded, 1, "ours")
    tfjs, _ = few_shot_accuracy(rps_embedded, 1, "tfjs")
    nearest, _ = few_shot_accuracy(rps_embedded, 1, "nearest")
    assert n == 3 * 15
    assert ours == nearest  # with one example per class, weighted k=3 is nearest neighbor
    assert ours >= 0.7 and tfjs <= 0.5 and ours - tfjs >= 0.3  # one photo per class: the rule decides


def test_more_examples_do_not_hurt_much(rps_embedded):
    one, _ = few_shot_accuracy(rps_embedded, 1)
    five, _ = few_shot_accuracy(rps_embedded, 5)
    assert five >= one - 0.05 and five >= 0.85


def test_only_the_files_a_split_uses_are_embedded(embedder, rps_dir):
    """120 photos a class, 5 examples and 10 queries used: 15 a class are embedded, once each,
    whatever the number of shots; augmentation embeds 12 views of each example file only."""
    from knn.model.evaluate import Configuration, evaluate

    class Counting:
        def __init__(self, inner):
            self.inner, self.images = inner, 0
            self.input_size, self.backbone = inner.input_size, inner.backbone

        def embed(self, images):
            self.images += len(images)
            return self.inner.embed(images)

    folders = class_folders(rps_dir)
    counting = Counting(embedder)
    scores = evaluate(
        folders, [Configuration(embedder.backbone)], [1, 5], max_queries=10, embedder_for=lambda backbone: counting
    )
    examples = {f for files in folders.values() for n in (1, 5) for f in few_shot_split(files, n)[0]}
    assert counting.images == len(examples) + 3 * 10
    assert {(s.shots, s.method) for s in scores} == {(n, m) for n in (1, 5) for m in ("ours", "tfjs", "nearest")}
    assert all(s.queries == 30 for s in scores)
    counting.images = 0
    evaluate(
        folders,
        [Configuration(embedder.backbone, augment=True)],
        [5],
        max_queries=10,
        embedder_for=lambda backbone: counting,
    )
    assert counting.images == 3 * 5 * 12 + 3 * 10


def test_the_arc_split_queries_the_far_side_of_the_turntable():
    from knn.core.evaluation import arc_split

    examples, queries = arc_split(list(range(72)), 5)
    assert examples == [0, 2, 4, 7, 9] and queries == list(range(24, 60))  # 0°-55° vs 120°-295°
    with pytest.raises(ValueError, match="sixth of the turntable"):
        arc_split(list(range(72)), 13)
