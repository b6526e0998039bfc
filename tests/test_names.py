"""knn.core.names: one normalisation for every class name, wherever it comes from."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knn.core.classifier import KNNClassifier
from knn.core.inputs import ClassifierError
from knn.core.names import normalise_name


@pytest.mark.parametrize(
    "typed, stored",
    [
        (" a ", "a"),
        ("a   b", "a b"),
        ("a\u00a0b", "a b"),  # a no-break space is a space
        ("e\u0301", "\u00e9"),  # the two ways to write é are one name
        ("\ufeffmug\u200b", "mug"),  # invisible format characters at the ends go
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # zero-width joiners inside an emoji stay
    ],
)
def test_look_alike_names_are_one(typed, stored):
    assert normalise_name(typed) == stored


@pytest.mark.parametrize(
    "name, words",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("\u200b", "empty"),
        ("rock\ud800", "valid Unicode"),
        ("a\nb", "control characters"),
        ("a\tb", "control characters"),
        ("a\u2028b", "separators"),
        ("a\u2029b", "separators"),
        ("\u202egnp.exe", "direction"),
        ("x" * 81, "at most 80"),
        (7, "must be text"),
    ],
)
def test_refused_names_say_why(name, words):
    with pytest.raises(ClassifierError, match=words):
        normalise_name(name)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_a_stored_name_is_stable_and_safe_anywhere_it_is_written(text):
    try:
        name = normalise_name(text)
    except ClassifierError:
        return
    assert normalise_name(name) == name  # idempotent: a saved name loads as itself
    assert name == name.strip() and "  " not in name
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in name)
    assert len(name.splitlines()) == 1  # one line of labels.txt
    name.encode("utf-8")  # strict UTF-8 never fails on it


def test_the_classifier_takes_names_normalised():
    clf = KNNClassifier()
    assert clf.add_class(" Mug ") == "Mug"
    with pytest.raises(ClassifierError, match="already exists"):
        clf.add_class("Mug\u00a0")
    clf.add([1.0, 0.0], "mug ")  # a new class "mug": case is kept, spaces are not
    assert clf.classes == ["Mug", "mug"]
    assert clf.rename_class("mug", "  cup  ") == "cup"
    assert clf.counts() == {"Mug": 0, "cup": 1}
