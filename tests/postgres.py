"""A throwaway PostgreSQL server for the test suite.

Started once per test session on a loopback port in a temporary data
directory, as the ``postgres`` system user when the tests run as root
(PostgreSQL refuses to run as root), and removed afterwards. Set
``TEST_POSTGRES_URL`` to use a server of your own instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]


def _binary(name: str) -> str:
    for directory in BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A throwaway server in a temporary data directory, stopped and started at will."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sal-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        initdb = [
            _binary("initdb"),
            *("-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"),
            # UTF8, which the email match needs; the C locale, whose lower()
            # folds ASCII only: the library must not depend on the locale.
            *("-E", "UTF8", "--locale=C"),
        ]
        subprocess.run(_as_server_user(initdb), check=True, capture_output=True)

    def start(self) -> None:
        """Start it (again: same port, same data), and wait until it takes connections."""
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c fsync=off -c max_connections=200"
        )
        self._pg_ctl("-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop it; ``immediate``: as a crash would, every connection cut at once."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            _as_server_user([_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        command = [_binary("pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(_as_server_user(command), check=True, capture_output=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL (psycopg 3) of a fresh server's ``postgres`` database."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        yield url
        return
    server = PostgresServer()
    try:
        server.start()
        yield server.url
    finally:
        server.remove()
