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


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL (psycopg 3) of a fresh server's ``postgres`` database."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="sal-pg-"))
    data = root / "data"
    port = _free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    run = {"check": True, "capture_output": True}
    subprocess.run(
        _as_server_user(
            # UTF8, which the email match needs; the C locale, whose lower()
            # folds ASCII only: the library must not depend on the locale.
            [
                _binary("initdb"),
                *("-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"),
                *("-E", "UTF8", "--locale=C"),
            ]
        ),
        **run,
    )
    options = f"-h 127.0.0.1 -p {port} -k {root} -F -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_server_user(
            [
                _binary("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ]
        ),
        **run,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
