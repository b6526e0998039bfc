"""Writing files so that a crash never leaves half of one under the real name."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `out`; move it into place only if the block succeeds.

    The temporary name keeps the full suffix because Keras insists on ``.weights.h5`` and
    ``.keras``; it starts with a dot so a half-written file is not mistaken for a real one.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}-", suffix="".join(out.suffixes), dir=out.parent)
    os.close(fd)
    os.chmod(name, 0o644)  # mkstemp's 0600 would hide a shared cache or a project from others
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(out: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `out` atomically, flushed to disk before it takes the real name."""
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
