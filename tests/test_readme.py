"""README's engine example runs as written, against the real photos and the real model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_engine_example_runs_as_written(shared_dir, tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The engine") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared_dir)  # the example's ../shared, beside its folder
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    run = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    first, accuracy = run.stdout.strip().splitlines()[-2:]
    assert first.startswith("paper ")
    assert float(accuracy) >= 0.5
    assert (work / "hands.npz").is_file()
