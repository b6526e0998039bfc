"""Programs a test or benchmark starts (the app, a relay, a balancer): free ports, finding Debian's
binaries, polling with a deadline, and `ChildProcess`, stopped and cleaned up on exit."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time


def free_port(kinds=(socket.SOCK_STREAM,)) -> int:
    """A loopback port free now for each socket kind (TCP, and UDP too for a TURN server)."""
    while True:
        with socket.socket(type=kinds[0]) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for kind in kinds[1:]:
                with socket.socket(type=kind) as s:
                    s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def find_binary(name: str) -> str | None:
    """A Debian package's program, also where a non-root PATH does not look (haproxy is in /usr/sbin)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def wait_until(condition, what: str, seconds: float, log=lambda: "") -> None:
    """Poll `condition()` until true; RuntimeError naming `what` (and `log()`) if it never is."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds} s waiting for {what}\n{log()}")
        time.sleep(0.2)


class ChildProcess:
    """A program a test starts, used with `with`: stopped on exit (terminate, then kill), its
    temporary folder removed, its log readable meanwhile. Subclasses set `_tmp` and `log_path` and
    start `process` in `start()`, with `_log` the open file its output goes to (None when the program
    writes `log_path` itself)."""

    STOP_SECONDS = 10.0
    process: subprocess.Popen | None = None
    _log = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """`kill -9`: the program ends at once, as in a crash (its log stays until `stop()`)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        self.end()
        self._tmp.cleanup()

    def end(self) -> None:
        """End the program (terminate, then kill) but keep its folder and log, to start it again."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
