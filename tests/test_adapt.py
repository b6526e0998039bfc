"""knn.serving.adapt: every adaptation was checked against the version requirements.txt pins, and
one that does not fit leaves its library stock after a single warning.

Upgrading aiortc, aioice, streamlit-webrtc or Streamlit in requirements.txt fails
`test_each_adaptation_was_checked_against_the_pinned_version` until each adaptation of it has been
read again against the new version and its declaration (`checked`) updated: an upgrade is a
decision, never a silent loss of an adaptation."""

from __future__ import annotations

import ast
import importlib.metadata
import logging
import os
import re
import subprocess
import sys
import types
from pathlib import Path

from knn.serving import adapt as adapt_module
from knn.serving.adapt import MODULES, Adaptation, adapt, declared

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def pins(requirements: str) -> dict[str, str]:
    """Package (lower case) -> the exact version a requirements file pins it at."""
    return {m[1].lower(): m[2] for line in requirements.splitlines() if (m := PIN.match(line))}


def disagreements(requirements: str) -> list[str]:
    """One message per adaptation whose package is not pinned at the version it was checked against."""
    pinned = pins(requirements)
    out = []
    for a in declared():
        pin = pinned.get(a.package.lower())
        if pin is None:
            out.append(f"{a.package} is not pinned exactly in requirements.txt, but {a.name} reads its internals")
        elif pin != a.checked:
            out.append(
                f"{a.package} is pinned at {pin} but {a.name} was checked against {a.checked}: "
                f"re-check it, then update its declaration (knn/serving, docs/adaptations.md)"
            )
    return out


def test_each_adaptation_was_checked_against_the_pinned_version():
    problems = disagreements((ROOT / "requirements.txt").read_text())
    assert not problems, "\n".join(problems)


def test_an_upgrade_in_requirements_names_each_adaptation_to_check_again():
    text = (ROOT / "requirements.txt").read_text()
    upgraded = re.sub(r"(?m)^aioice==\S+", "aioice==0.14.0", text)
    assert upgraded != text
    found = disagreements(upgraded)
    assert sorted(m.split(" but ")[1].split(" was")[0] for m in found) == ["consent", "socket_drain"]
    assert "aioice is pinned at 0.14.0 but socket_drain was checked against 0.13.0: re-check it" in "\n".join(found)
    unpinned = re.sub(r"(?m)^aioice==\S+\n", "", text)
    assert "aioice is not pinned exactly in requirements.txt" in "\n".join(disagreements(unpinned))


def test_the_installed_packages_are_the_pinned_ones():
    """What these tests ran against is what requirements.txt pins (else install it again)."""
    pinned = pins((ROOT / "requirements.txt").read_text())
    for package in sorted({a.package for a in declared()}):
        assert importlib.metadata.version(package) == pinned[package.lower()], package


def test_every_adaptation_is_declared_where_adapt_finds_it():
    """Each knn.serving module that builds an Adaptation is in MODULES, and each one fits what is installed."""
    builds = sorted(p.stem for p in (ROOT / "knn" / "serving").glob("*.py") if "= Adaptation(" in p.read_text())
    assert builds == sorted(MODULES)
    names = [a.name for a in declared()]
    assert len(names) == len(set(names)), names
    for a in declared():
        assert a.check(a.find()) == [], a.name
        assert a.reason and a.kept_by and a.lost, a.name


def fake_adaptation(changes: list) -> Adaptation:
    """An adaptation of a stand-in library: it needs `library.hook` and sets `library.value`."""
    return Adaptation(
        name="fake",
        package="streamlit",  # installed: its real version is what `checked` must match
        checked=importlib.metadata.version("streamlit"),
        reason="a test",
        kept_by="this test",
        lost="The fake library keeps its value",
        find=lambda: None,
        check=lambda library: [] if hasattr(library, "hook") else ["fake.hook is missing"],
        change=lambda library, value: changes.append(value) or setattr(library, "value", value),
    )


def test_a_missing_attribute_leaves_the_library_stock_and_warns_once(caplog, monkeypatch):
    monkeypatch.setattr(adapt_module, "_warned", set())
    changes: list = []
    fake = fake_adaptation(changes)
    library = types.SimpleNamespace(value="stock")
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert adapt(fake, "adapted", found=library) is False
        assert adapt(fake, "adapted", found=library) is False  # a second start of the process
    assert library.value == "stock" and changes == []
    assert [r.getMessage() for r in caplog.records] == [
        "The fake library keeps its value (fake.hook is missing); streamlit is left stock."
    ]
    library.hook = object()
    assert adapt(fake, "adapted", found=library) is True
    assert library.value == "adapted" and changes == ["adapted"]


def test_another_version_or_a_library_that_cannot_be_found_is_refused(caplog, monkeypatch):
    monkeypatch.setattr(adapt_module, "_warned", set())
    changes: list = []

    def gone():
        raise ImportError("No module named 'streamlit.fake'")

    fake = fake_adaptation(changes)
    with caplog.at_level(logging.WARNING, logger="knn.serving.adapt"):
        assert adapt(fake, 1, version="0.1.0", found=types.SimpleNamespace(hook=1)) is False
        assert adapt(Adaptation(**{**vars(fake), "find": gone}), 1) is False
    assert changes == []
    first, second = (r.getMessage() for r in caplog.records)
    assert "streamlit 0.1.0 is not the version this was checked against" in first
    assert "streamlit has changed: No module named 'streamlit.fake'" in second


SHIPPED = {"bitrate_ceiling", "encoder_word", "socket_drain", "consent"} | {
    "camera_context",
    "camera_peer",
    "clicks",
    "upload_urls",
}
"""What a serving process applies with no setting made (relay_policy needs a relay policy)."""


def test_the_serving_process_applies_them_unless_knn_stock_names_them():
    """What `streamlit run app.py` runs once per process (knn.serving.startup.start), in a process of its own."""
    code = (
        "from knn.serving.settings import Settings; from knn.serving.startup import start; "
        "s = Settings.from_env(); print(s.problems, sorted(start(s).applied))"
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KNN_")}, "KNN_STOCK": "socket_drain, clicks"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    problems, _, names = done.stdout.strip().splitlines()[-1].partition(" ")
    assert problems == "()", done.stdout
    assert set(ast.literal_eval(names)) == SHIPPED - {"socket_drain", "clicks"}
    from knn.serving.settings import Settings

    assert Settings.from_env({"KNN_STOCK": "all"}).stock == {a.name for a in declared()}
