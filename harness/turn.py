"""coturn's `turnserver` on loopback with one static user: the relay Streamlit Community Cloud's
users go through, run here so the camera can be tested through it."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import socket
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from .processes import ChildProcess, find_binary, free_port, wait_until


class TurnServer(ChildProcess):
    """coturn's `turnserver` on loopback with one static user: `with TurnServer() as turn: turn.ice_servers()`.

    Peers on loopback are allowed (the browser, the app and the relay share this machine; coturn
    refuses them by default), relay addresses are 127.0.0.1, no TLS/DTLS listeners and no admin CLI.
    Its log (verbose: one line per TURN request, and each allocation's byte counts when it ends)
    shows what the relay did: `allocations()`, `relayed()`.
    """

    BINARY = "turnserver"

    def __init__(self) -> None:
        self.binary = find_binary(self.BINARY)
        if self.binary is None:
            raise FileNotFoundError("coturn's turnserver is absent: apt-get install coturn")
        self._tmp = tempfile.TemporaryDirectory(prefix="knn-turn-")
        tmp = Path(self._tmp.name)
        self.log_path = tmp / "turn.log"
        self.userdb = tmp / "turndb"
        self.port = free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
        self.username, self.password, self.realm = "knn", secrets.token_hex(8), "knn.test"
        self._args = [
            self.binary,
            "-n",  # no config file: only these options
            "--listening-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--relay-ip=127.0.0.1",
            "--allow-loopback-peers",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--lt-cred-mech",
            "--fingerprint",
            f"--user={self.username}:{self.password}",
            f"--realm={self.realm}",
            f"--userdb={self.userdb}",
            f"--pidfile={tmp / 'turn.pid'}",
            f"--log-file={self.log_path}",
            "--simple-log",
            "--no-stdout-log",
            "--verbose",
        ]

    def start(self) -> None:
        self.process = subprocess.Popen(self._args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(
                lambda: "UDP listener opened" in self.log() or self.process.poll() is not None,
                "turnserver to listen",
                20,
                self.log,
            )
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited with {self.process.returncode}:\n{self.log()}")
        except RuntimeError:
            self.stop()
            raise

    def ice_servers(self, transport: str = "udp") -> list[dict]:
        """RTCIceServer dicts for this relay, reached over `transport` ("udp" or "tcp")."""
        return [
            {
                "urls": [f"turn:127.0.0.1:{self.port}?transport={transport}"],
                "username": self.username,
                "credential": self.password,
            }
        ]

    def set_user(self, username: str, password: str) -> None:
        """Add a user to the running relay, or change its password (coturn reads its user database
        at each request): the row `turnadmin -a` writes, the RFC 5389 long-term key MD5(user:realm:password)."""
        key = hashlib.md5(f"{username}:{self.realm}:{password}".encode()).hexdigest()
        with contextlib.closing(sqlite3.connect(self.userdb)) as db, db:
            row = (self.realm, username, key)
            db.execute("INSERT OR REPLACE INTO turnusers_lt (realm, name, hmackey) VALUES (?, ?, ?)", row)

    def allocations(self) -> set[str]:
        """Ids of the TURN sessions whose ALLOCATE request succeeded."""
        return set(
            re.findall(
                r"session (\d+): realm <[^>]*> user <[^>]*>: incoming packet ALLOCATE processed, success", self.log()
            )
        )

    def relayed(self) -> dict[str, tuple[int, int]]:
        """Per released allocation (coturn logs its counts then): bytes its relay address received
        from peers and sent to them."""
        return {
            sid: (int(rb), int(sb))
            for sid, rb, sb in re.findall(r"session (\d+): peer usage: .*?rb=(\d+), sp=\d+, sb=(\d+)", self.log())
        }

    def over_tcp(self) -> set[str]:
        """TURN sessions whose client came over TCP (coturn names TCP when such a session ends:
        "TCP socket closed remotely", "TCP socket error", "reason: TCP connection closed")."""
        return set(re.findall(r"session (\d+): .*\bTCP\b", self.log()))
