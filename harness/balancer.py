"""HAProxy with the shipped deploy/haproxy/haproxy.cfg in front of several app processes on
loopback: sticky sessions as an operator deploys them."""

from __future__ import annotations

import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from . import ROOT
from .app_server import AppServer
from .processes import ChildProcess, find_binary, free_port, wait_until

HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"


class Balancer(ChildProcess):
    """HAProxy with the shipped deploy/haproxy/haproxy.cfg in front of `apps`, on a free loopback port.

    The config reads its addresses from the environment (KNN_LB_BIND, KNN_APP1...), so this runs the
    very file an operator deploys. `url` is what browsers open; `log()` has one line per request,
    naming the process (app1, app2, ...) it went to.
    """

    BINARY = "haproxy"

    def __init__(self, apps: list[AppServer], config: Path = HAPROXY_CONFIG) -> None:
        self.binary = find_binary(self.BINARY)
        if self.binary is None:
            raise FileNotFoundError("haproxy is absent: apt-get install haproxy")
        self._tmp = tempfile.TemporaryDirectory(prefix="knn-lb-")
        self.log_path = Path(self._tmp.name) / "haproxy.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.names = {f"app{i}": app for i, app in enumerate(apps, 1)}
        self._env = {
            **os.environ,
            "KNN_LB_BIND": f"127.0.0.1:{self.port}",
            **{f"KNN_APP{i}": f"127.0.0.1:{app.port}" for i, app in enumerate(apps, 1)},
        }
        self._config = config

    def start(self) -> None:
        self._log = self.log_path.open("w+")
        self.process = subprocess.Popen(
            [self.binary, "-db", "-f", str(self._config)], env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n{self.log()}")
            try:  # through the balancer to a process: every one is up once each answered a check
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            wait_until(ready, "haproxy to answer", 30, self.log)
        except RuntimeError:
            self.stop()
            raise

    def server_of(self, context) -> str:
        """The process (app1, app2, ...) a browser context is pinned to, from its cookie."""
        (name,) = [c["value"] for c in context.cookies(self.url) if c["name"] == "KNN_SERVER"]
        return name
