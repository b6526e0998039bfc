"""Few-shot evaluation on real photos, and the TF.js rule it is compared with."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knn.core.evaluation import few_shot_accuracy, few_shot_split, tfjs_predict
from knn.core.folders import class_folders
from knn.model.folders import embed_folder


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
    assert ours == nearest  # with one example per class, weighted k=3 is nearest neighbour
    assert ours >= 0.8 and tfjs <= 0.5


def test_more_examples_do_not_hurt_much(rps_embedded):
    one, _ = few_shot_accuracy(rps_embedded, 1)
    five, _ = few_shot_accuracy(rps_embedded, 5)
    assert five >= one - 0.05 and five >= 0.85
