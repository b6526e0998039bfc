"""The harness's place in the house: tests and benchmarks import it, the product never does, and
importing it pulls in neither pytest nor a browser."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [ROOT / "app.py", ROOT / "knn", ROOT / "ui"]
HARNESS_MODULES = sorted(f"harness.{f.stem}".removesuffix(".__init__") for f in (ROOT / "harness").glob("*.py"))


def imported_roots(paths: list[Path]) -> dict[str, set[str]]:
    """Top-level package of every absolute import in the Python files under `paths`, per file."""
    files = [f for p in paths if p.exists() for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    out: dict[str, set[str]] = {}
    for f in files:
        roots = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
        out[str(f.relative_to(ROOT))] = roots
    return out


def test_the_product_never_imports_the_harness_or_the_tests():
    found = imported_roots(PRODUCT)
    assert len(found) > 20  # the page and the engine were read
    assert {f: r & {"harness", "tests"} for f, r in found.items() if r & {"harness", "tests"}} == {}


def test_benchmarks_use_the_harness_not_the_tests():
    found = imported_roots([ROOT / "bench"])
    assert not {f for f, r in found.items() if "tests" in r}
    assert {"bench/live.py", "bench/steady.py"} <= {f for f, r in found.items() if "harness" in r}


def test_importing_the_harness_needs_no_pytest_and_starts_no_browser():
    code = (
        f"import sys; [__import__(m) for m in {HARNESS_MODULES!r}];"
        "print(sorted(m for m in ('pytest', 'playwright') if m in sys.modules))"
    )
    assert "harness.browser" in HARNESS_MODULES and "harness" in HARNESS_MODULES
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
