"""Writing files so that a crash never leaves half of one under the real name.

A file is written under a hidden temporary name beside its target, which names the writing
process (`.{target}.{pid}.{random}.tmp{suffixes}`), then moved into place. A process killed
mid-write (kill -9) cannot remove its temporary file, so the next write of the same target removes
the ones whose process is gone. Overwriting keeps the target's permissions (a 0600 project stays
private); a new file is 0644, so a shared cache or project can be read by others.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NEW_FILE_MODE = 0o644


@contextmanager
def atomic_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `out`; move it into place only if the block succeeds.

    The temporary name ends with the target's full suffix because Keras insists on
    ``.weights.h5`` and ``.keras``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    try:
        mode = out.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    fd, name = tempfile.mkstemp(
        prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp" + "".join(out.suffixes), dir=out.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)  # after the block: a writer such as Keras may have replaced the file
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(out: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `out` atomically, flushed to disk before it takes the real name."""
    with atomic_output(out) as tmp, open(tmp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporary files of `out` whose writing process no longer exists; returns them."""
    prefix = f".{out.name}."
    removed: list[Path] = []
    try:
        candidates = [p for p in out.parent.iterdir() if p.name.startswith(prefix) and ".tmp" in p.name]
    except OSError:
        return removed
    for path in candidates:
        pid_text = path.name[len(prefix) :].split(".", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
