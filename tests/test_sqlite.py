"""SQLite shared by threads and processes: WAL, a busy timeout, the write lock only to write.

SQLite only (the PostgreSQL runs of the same sign-ins are in test_races and
test_instances), so these tests make their own database file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from flask import jsonify
from sqlalchemy.exc import OperationalError

from tests.conftest import CLIENT_ID, Served, serving

ADA = "amzn1.account.AEADALOVELACE00001"


@pytest.fixture
def sqlite_path(tmp_path: Any) -> str:
    return str(tmp_path / "app.sqlite3")


@pytest.fixture
def serve_sqlite_app(lwa_emulator: Any, sqlite_path: str) -> Iterator[Callable[..., Served]]:
    with serving(lwa_emulator, f"sqlite:///{sqlite_path}") as start:
        yield start


def _sign_in(app: Served, token: str) -> requests.Response:
    with requests.Session() as client:
        return client.post(f"{app.url}/client-token", data={"access_token": token}, timeout=60)


@contextmanager
def _write_lock_held(path: str) -> Iterator[None]:
    """Another process holding SQLite's write lock for the block."""
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        yield
        writer.execute("ROLLBACK")
    finally:
        writer.close()


def test_the_database_file_is_in_wal_mode_with_a_busy_timeout(serve_sqlite_app):
    app = serve_sqlite_app(TEST_SQLITE_BUSY_TIMEOUT=2.5)
    assert [tuple(r) for r in app.query("PRAGMA journal_mode")] == [("wal",)]
    assert [tuple(r) for r in app.query("PRAGMA busy_timeout")] == [(2500,)]


def test_a_long_reader_in_another_process_does_not_hold_up_first_sign_ins(
    serve_sqlite_app, sqlite_path, lwa_emulator
):
    # Another process (a report, a backup, the other app process) in the
    # middle of a read. With SQLite's rollback journal a writer cannot commit
    # while a reader holds the file: each first sign-in waited out the busy
    # timeout, then failed with "database is locked".
    app = serve_sqlite_app(TEST_SQLITE_BUSY_TIMEOUT=1.0)
    people = [f"amzn1.account.AEREADERWAITS{n:05d}" for n in range(8)]
    for n, person in enumerate(people):
        lwa_emulator.add_identity(person, f"Person {n}", f"person{n}@example.com")
    reader = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM users").fetchone() == (0,)
        with ThreadPoolExecutor(len(people)) as pool:
            answers = list(
                pool.map(lambda p: _sign_in(app, lwa_emulator.mint_token(CLIENT_ID, p)), people)
            )
        # The reader still sees the database as it was when it began.
        assert reader.execute("SELECT count(*) FROM users").fetchone() == (0,)
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert [a.status_code for a in answers] == [200] * len(people)
    assert sorted(uid for _user, uid in app.links()) == sorted(people)


def test_a_returning_user_takes_no_write_lock(serve_sqlite_app, sqlite_path, lwa_emulator):
    # Another writer holds SQLite's write lock for longer than the busy
    # timeout: a returning user, whose sign-in changes nothing, still signs in.
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    app = serve_sqlite_app(TEST_SQLITE_BUSY_TIMEOUT=0.5)
    first = _sign_in(app, lwa_emulator.mint_token(CLIENT_ID, ADA))
    assert first.status_code == 200
    with _write_lock_held(sqlite_path):
        returning = _sign_in(app, lwa_emulator.mint_token(CLIENT_ID, ADA))
    assert returning.status_code == 200
    assert returning.json()["id"] == first.json()["id"]


def test_still_busy_after_the_timeout_is_an_operational_error_and_writes_nothing(
    serve_sqlite_app, sqlite_path, lwa_emulator
):
    # The app maps SQLAlchemy's OperationalError to "database unavailable"
    # (503); the storage must let SQLite's "database is locked" through as one.
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    app = serve_sqlite_app(TEST_SQLITE_BUSY_TIMEOUT=0.2)
    seen: list[BaseException] = []

    @app.app.errorhandler(OperationalError)
    def unavailable(error: OperationalError) -> Any:
        seen.append(error)
        return jsonify(error="database_unavailable"), 503

    with _write_lock_held(sqlite_path):
        busy = _sign_in(app, lwa_emulator.mint_token(CLIENT_ID, ADA))
    assert busy.status_code == 503 and busy.json() == {"error": "database_unavailable"}
    assert "database is locked" in str(seen[0])
    assert app.query("SELECT id FROM users") == [] and app.links() == []
    # Once the lock is free, the same sign-in goes through.
    assert _sign_in(app, lwa_emulator.mint_token(CLIENT_ID, ADA)).status_code == 200
    assert [uid for _user, uid in app.links()] == [ADA]
