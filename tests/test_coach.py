"""knn.core.coach: what the stored examples say to teach next, on made-up clusters and on real photos."""

from __future__ import annotations

import math

import numpy as np
import pytest

from knn.core.classifier import KNNClassifier
from knn.core.coach import FEW_EXAMPLES, HESITATION_SECONDS, Coaching, Hesitation, coach, neighbors_needed
from knn.core.evaluation import leave_one_out
from knn.core.image_folders import class_folders
from knn.core.images import center_crop_resize, read_image
from knn.core.neighbors import nearest_others


def _coach(clf: KNNClassifier) -> Coaching:
    state = clf.state()
    return coach(state, nearest_others(state, neighbors_needed(state.k)))


def _cluster(rng, centre, n, spread):
    return centre + spread * rng.standard_normal((n, len(centre)))


def _two_classes(rng) -> tuple[KNNClassifier, np.ndarray]:
    """Classes "a" and "b" of 10 examples each around two random centres; and b's centre."""
    a, b = 3 * rng.standard_normal(32), 3 * rng.standard_normal(32)
    clf = KNNClassifier()
    clf.add_many(_cluster(rng, a, 10, 1.0), ["a"] * 10)
    clf.add_many(_cluster(rng, b, 10, 1.0), ["b"] * 10)
    return clf, b


def test_a_well_taught_classifier_gets_no_tips_and_its_per_class_accuracy():
    rng = np.random.default_rng(0)
    clf = KNNClassifier()
    for label in ("a", "b", "c"):
        clf.add_many(_cluster(rng, 3 * rng.standard_normal(32), 10, 1.0), [label] * 10)
    result = _coach(clf)
    assert result.tips() == [] and result.suspects == () and result.same_scene == {}
    assert result.accuracy("a") == 1.0
    expected = leave_one_out(clf)  # the same neighbors, the same vote
    assert result.evaluation.per_class == expected.per_class
    np.testing.assert_array_equal(result.evaluation.confusion, expected.confusion)


def test_few_empty_and_near_duplicate_classes_are_named():
    rng = np.random.default_rng(1)
    clf = KNNClassifier()
    clf.add_many(_cluster(rng, rng.standard_normal(32), 8, 1.0), ["varied"] * 8)
    still = rng.standard_normal(32)
    clf.add_many(_cluster(rng, still, 6, 0.02 * np.linalg.norm(still) / np.sqrt(32)), ["still"] * 6)  # one scene
    clf.add_many(_cluster(rng, rng.standard_normal(32), FEW_EXAMPLES - 1, 1.0), ["few"] * (FEW_EXAMPLES - 1))
    clf.add_class("empty")
    result = _coach(clf)
    assert result.few == ("few",) and result.empty == ("empty",)
    assert list(result.same_scene) == ["still"] and result.same_scene["still"] > 0.99
    tips = " ".join(result.tips())
    assert "“empty” has no examples" in tips and "“few” has only 2 examples" in tips
    assert "The 6 examples of “still” are near-duplicates" in tips and "vary the angle, distance and light" in tips
    assert math.isnan(result.accuracy("empty"))


def test_one_mislabelled_example_is_found_with_where_it_belongs():
    rng = np.random.default_rng(2)
    clf, b = _two_classes(rng)
    (wrong,) = clf.add_many(_cluster(rng, b, 1, 1.0), ["a"])  # a "b" filed under "a"
    result = _coach(clf)
    (suspect,) = result.suspects
    assert (suspect.example_id, suspect.label, suspect.nearer_to) == (wrong, "a", ("b",))
    assert suspect.agreeing == suspect.looked_at == 4


def test_a_class_taught_with_the_other_classes_examples_is_a_confused_pair_not_suspects():
    rng = np.random.default_rng(3)
    clf, b = _two_classes(rng)
    clf.add_many(_cluster(rng, b, 10, 1.0), ["copy of b"] * 10)
    result = _coach(clf)
    assert result.suspects == ()
    assert {result.confused.label, result.confused.other} == {"b", "copy of b"}
    assert result.confused.count >= 3
    assert any("are nearer to" in tip and "add more varied examples of both" in tip for tip in result.tips())


def test_hesitation_needs_the_same_close_pair_for_a_few_seconds():
    h = Hesitation(hold=0.0)
    close = {"cup": 0.55, "mug": 0.45, "pen": 0.0}
    assert h.update(close, 0.0) is None
    assert h.update({"cup": 0.45, "mug": 0.55}, 1.0) is None  # the same two, swapped: still undecided
    assert h.update(close, HESITATION_SECONDS) == ("cup", "mug", HESITATION_SECONDS)
    assert h.update({"cup": 0.9, "mug": 0.1}, HESITATION_SECONDS + 1) is None  # decided: the clock stops
    assert h.update(close, HESITATION_SECONDS + 2) is None
    assert h.update({"cup": 0.5, "pen": 0.5}, HESITATION_SECONDS + 4) is None  # another pair starts afresh
    assert h.update(None, 100.0) is None


def test_a_reported_hesitation_and_its_end_each_stand_for_the_hold():
    """Each change of the hint redraws the whole page: a camera moved between classes must not
    turn it on and off every few seconds."""
    h = Hesitation(hold=10.0)
    close, decided = {"cup": 0.55, "mug": 0.45}, {"cup": 0.9, "mug": 0.1}
    h.update(close, 0.0)
    assert h.update(close, 3.0) == ("cup", "mug", 3.0)  # the first is reported at once
    assert h.update(decided, 4.0) == ("cup", "mug", 3.0)  # decided, but the hint stands
    assert h.update(decided, 13.0) is None  # its end shows once the hold is over
    h.update(close, 14.0)
    assert h.update(close, 17.0) is None  # undecided again, but the end stands
    assert h.update(close, 23.0) == ("cup", "mug", 9.0)  # until the hold is over
    h.reset()  # the user answered: the hint goes at once, and the clock starts again
    assert h.update(close, 24.0) is None


@pytest.fixture(scope="module")
def rps_embedded(embedder, rps_dir) -> dict[str, np.ndarray]:
    """20 photos of each gesture, spread over each class's files."""
    squares = {
        label: [center_crop_resize(read_image(p), embedder.input_size) for p in files[:120:6]]
        for label, files in class_folders(rps_dir).items()
    }
    return {label: np.asarray(embedder.embed(images)) for label, images in squares.items()}


def test_real_photos_of_paper_taught_as_rock_are_flagged(rps_embedded):
    clf = KNNClassifier()
    clf.add_many(rps_embedded["rock"][:12], ["rock"] * 12)
    wrong = clf.add_many(rps_embedded["paper"][12:14], ["rock"] * 2)
    clf.add_many(rps_embedded["paper"][:12], ["paper"] * 12)
    clf.add_many(rps_embedded["scissors"][:12], ["scissors"] * 12)
    result = _coach(clf)
    flagged = {s.example_id: s for s in result.suspects}
    assert set(flagged) == set(wrong)
    assert all(s.label == "rock" and "paper" in s.nearer_to and "rock" not in s.nearer_to for s in flagged.values())
    assert result.accuracy("rock") < 1.0 == result.accuracy("paper")


def test_real_photos_a_class_taught_with_another_class_photos_is_a_named_confused_pair(rps_embedded):
    clf = KNNClassifier()
    clf.add_many(rps_embedded["paper"][:10], ["cup"] * 10)  # "cup" was shown the paper gesture
    clf.add_many(rps_embedded["paper"][10:20], ["paper"] * 10)
    clf.add_many(rps_embedded["rock"][:10], ["rock"] * 10)
    result = _coach(clf)
    assert {result.confused.label, result.confused.other} == {"cup", "paper"}
    tip = next(t for t in result.tips() if "are nearer to" in t)
    assert f"{result.confused.count} of 10 examples of “{result.confused.label}”" in tip
    assert result.accuracy("rock") == 1.0 and result.accuracy("cup") < 0.8


def test_two_similar_photos_filed_wrong_together_are_both_flagged(embedder, rps_dir, rps_embedded):
    """Wrong labels come in batches: two consecutive rock photos, each the other's nearest."""
    rock = class_folders(rps_dir)["rock"][100:102]
    pair = np.asarray(embedder.embed([center_crop_resize(read_image(p), embedder.input_size) for p in rock]))
    clf = KNNClassifier()
    clf.add_many(rps_embedded["rock"][:10], ["rock"] * 10)
    clf.add_many(rps_embedded["paper"][:10], ["paper"] * 10)
    wrong = clf.add_many(pair, ["paper"] * 2)
    clf.add_many(rps_embedded["scissors"][:10], ["scissors"] * 10)
    flagged = {s.example_id: s.nearer_to[0] for s in _coach(clf).suspects}
    assert {i: flagged.get(i) for i in wrong} == dict.fromkeys(wrong, "rock")
    assert len(flagged) <= 3  # a paper photo much like scissors may be shown too, not half the set


def test_a_pair_cut_off_from_their_class_is_flagged_but_not_a_normal_member():
    rng = np.random.default_rng(4)
    clf, b = _two_classes(rng)
    twin = b + rng.standard_normal(32)
    wrong = clf.add_many(np.stack([twin, twin + 0.05 * rng.standard_normal(32)]), ["a", "a"])
    assert {s.example_id for s in _coach(clf).suspects} == set(wrong)
