"""pyproject.toml's Python versions agree with each other and with the Pythons CI runs the tests on."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def classifier_versions() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = (re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c) for c in project["classifiers"])
    return sorted((m.group(1) for m in found if m), key=lambda v: int(v.split(".")[1]))


def test_requires_python_starts_at_the_lowest_classifier():
    requires = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    versions = classifier_versions()
    assert versions, "pyproject.toml names no Python 3.x classifier"
    assert all(requires.contains(f"{v}.0") for v in versions), (requires, versions)
    below = f"3.{int(versions[0].split('.')[1]) - 1}.99"
    assert not requires.contains(below), f"requires-python {requires} admits {below}, which no classifier names"


def test_the_pythons_ci_runs_are_the_classifiers():
    versions = classifier_versions()
    others = set(re.findall(r"\.ci/venv (3\.\d+)", (ROOT / ".ci" / "run").read_text()))
    assert others, ".ci/run builds no venv for another Python"
    # CI's python3 runs the lowest (the development Python); .ci/venv builds each of the others.
    assert set(versions) == others | {versions[0]}, (versions, others)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert here in versions, f"this suite runs on Python {here}, which pyproject.toml does not name"
