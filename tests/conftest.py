from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import create_engine, make_url, text
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from tests import sample_app
from tests.postgres import postgres_server

CLIENT_ID = "amzn1.application-oa2-client.0123456789abcdef"
CLIENT_SECRET = "test-client-secret-do-not-log"


class Served:
    """An app served over real loopback HTTP in a background thread."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", *, tls: bool = False) -> None:
        """``host``: the address to listen on; ``tls``: over HTTPS, with a
        certificate made up on the spot (clients pass ``verify=False``)."""
        self.app = app
        self.server = make_server(host, 0, app, threaded=True, ssl_context="adhoc" if tls else None)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_user(
        self, username: str, email: str | None, password: str | None = None, **fields: Any
    ) -> int:
        """A local account, as the app's own registration would create it."""
        session = self.app.extensions["test_session"]
        user = sample_app.User(
            username=username,
            email=email,
            password_hash=generate_password_hash(password) if password else None,
            **fields,
        )
        session.add(user)
        session.commit()
        user_id = int(user.id)
        session.remove()
        return user_id

    def link(self, user_id: int, amazon_user_id: str, **extra_data: Any) -> None:
        """An existing Amazon link, as an earlier sign-in would have written it."""
        from social_amazon_link.flask.storage import FlaskStorage

        with self.app.app_context():
            user = FlaskStorage.user.get_user(user_id)
            social = FlaskStorage.user.create_social_auth(user, amazon_user_id, "amazon", "user_id")
            if extra_data:
                social.set_extra_data(extra_data)
            self.app.extensions["test_session"].remove()

    def events(self) -> list[tuple[Any, ...]]:
        """The security events, oldest first: (event, user_id, amazon_user_id, detail)."""
        return [
            tuple(row)
            for row in self.query(
                "SELECT event, user_id, amazon_user_id, detail FROM amazon_link_events ORDER BY id"
            )
        ]

    def links(self) -> list[tuple[Any, ...]]:
        """The links, oldest first: (user_id, Amazon user_id)."""
        rows = self.query("SELECT user_id, uid FROM social_auth_usersocialauth ORDER BY id")
        return [tuple(row) for row in rows]

    def failures(self, user_id: int) -> int:
        """Wrong passwords (or codes) counted against a local account."""
        rows = self.query(
            "SELECT failures FROM amazon_link_password_attempts WHERE user_id = :u", u=user_id
        )
        return int(rows[0].failures) if rows else 0

    def query_write(self, sql: str, **params: Any) -> None:
        with self.app.extensions["test_engine"].begin() as conn:
            conn.execute(text(sql), params)

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Read the app's database directly, as a test asserting state does."""
        with self.app.extensions["test_engine"].connect() as conn:
            return list(conn.execute(text(sql), params))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default="sqlite,postgres",
        help="databases to run the database tests on (comma-separated: sqlite, postgres)",
    )


DATABASE_KINDS = ("sqlite", "postgres")


def database_kinds(config: pytest.Config) -> list[str]:
    """The databases ``--db`` names, refusing any other (a typo must not pick one)."""
    kinds = [kind.strip() for kind in config.getoption("--db").split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(DATABASE_KINDS))
    if unknown or not kinds:
        raise pytest.UsageError(
            f"--db takes a comma-separated list of {', '.join(DATABASE_KINDS)}, not {unknown}"
        )
    return kinds


def pytest_configure(config: pytest.Config) -> None:
    database_kinds(config)  # a wrong --db stops the run before anything starts


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that touches the app's database runs once per database.
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("db_kind", database_kinds(metafunc.config))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def database_url(db_kind: str, tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.sqlite3'}"
        return
    server_url = make_url(request.getfixturevalue("postgres_url"))
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def django_db(database_url: str) -> Iterator[str]:
    """Django set up (once per process), its ``default`` database this test's fresh
    one, migrated; every connection closed after (:mod:`tests.django_support`)."""
    from tests.django_support import django_database

    with django_database(database_url) as url:
        yield url


@contextmanager
def serving(lwa_emulator: Any, database_url: str) -> Iterator[Callable[..., Served]]:
    """``start(**settings)`` builds the sample app wired to the emulator on
    ``database_url`` and serves it on loopback, until the block ends."""
    served: list[Served] = []

    def start(**settings: Any) -> Served:
        config = {
            "SOCIAL_AUTH_AMAZON_KEY": CLIENT_ID,
            "SOCIAL_AUTH_AMAZON_SECRET": CLIENT_SECRET,
            "SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL": f"{lwa_emulator.url}/ap/oa",
            "SOCIAL_AUTH_AMAZON_API_URL": lwa_emulator.url,
        }
        config.update(settings)
        config = {k: v for k, v in config.items() if v is not None}
        app = sample_app.create_app(database_url, config)
        server = Served(app)
        served.append(server)
        lwa_emulator.add_client(
            CLIENT_ID, CLIENT_SECRET, redirect_uris=[f"{server.url}/complete/amazon/"]
        )
        return server

    try:
        yield start
    finally:
        for server in served:
            server.close()
            server.app.extensions["test_engine"].dispose()


@pytest.fixture
def serve_app(lwa_emulator: Any, database_url: str) -> Iterator[Callable[..., Served]]:
    """Build the sample app wired to the emulator and serve it on loopback."""
    with serving(lwa_emulator, database_url) as start:
        yield start


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    """A cookie-keeping HTTP client standing in for the person's browser."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def site(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The demo and its emulator, served as ``python -m demo`` serves them (:class:`DemoSite`)."""
    from tests.browser_support import DemoSite

    monkeypatch.chdir(tmp_path)  # the demo makes ./instance
    demo = DemoSite.start(database_url)
    yield demo
    demo.close()
