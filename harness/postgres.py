"""A temporary PostgreSQL cluster for the project store's tests and benchmark.

Debian's `postgresql` binaries (initdb, pg_ctl) in a temporary folder owned by the `postgres`
user: initdb refuses to run as root, so when we are root every command runs through `runuser -u
postgres --`. The server listens on 127.0.0.1 at a free port, with its socket in that folder,
trusts local connections, and is stopped and removed by `stop()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import free_port


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/").glob("usr/lib/postgresql/*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


def missing() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    if binaries() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "there is no postgres user to run the server as (initdb refuses root)"
    return None


class Cluster:
    """A throwaway PostgreSQL server: `start()`, `url(database)`, `create_database()`, `stop()`.

    Args:
        durable: keep fsync on (a benchmark's numbers); tests turn it off for speed, since they
            kill the app's processes, never the server's machine.
    """

    def __init__(self, durable: bool = False) -> None:
        self.bin = binaries()
        self.durable = durable
        self.folder = Path(tempfile.mkdtemp(prefix="knn-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._databases = 0
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        os.chmod(self.folder, 0o700)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120, cwd="/")

    def start(self) -> Cluster:
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}"
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate`: as if it crashed); its files stay for `start()`."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        self._databases += 1
        name = f"knn_{os.getpid()}_{self._databases}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
