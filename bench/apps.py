"""The apps under test: the test suite's sample app, with this library or with stock social-core.

Both sides are the same Flask app (``tests.sample_app``: its own users table,
Flask-Login, ``init_app``), the same strategy and the same SQLAlchemy storage
(``social_amazon_link.flask.storage``). They differ only in the backend and
the pipeline:

- ours: ``social_amazon_link.backend.AmazonOAuth2`` and
  ``social_amazon_link.pipelines.AMAZON_PIPELINE`` (what ``init_app`` selects),
  mobile sign-in through ``POST /api/amazon/token``;
- stock: social-core's ``AmazonOAuth2`` (:mod:`bench.stock`, aimed at the
  proxy) and ``DEFAULT_AUTH_PIPELINE``, mobile sign-in through the sample
  app's ``POST /client-token`` (``backend.do_auth(token)`` and ``login_user``
  in a request, which is what an app on stock social-core writes).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from social_core.backends import utils as backend_utils
from social_core.pipeline import DEFAULT_AUTH_PIPELINE
from sqlalchemy import Engine, create_engine, event, make_url, text

from tests import sample_app

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "BenchApp",
    "SQLCounter",
    "build",
    "databases",
    "settings",
]

CLIENT_ID = "amzn1.application-oa2-client.bench000000000000000000000000"
CLIENT_SECRET = "bench-client-secret"
SIDES = ("ours", "stock")
_WRITES = ("INSERT", "UPDATE", "DELETE")


def settings(api_url: str, ca_bundle: Path, *, side: str) -> dict[str, Any]:
    """Flask settings for one side (JSON-serialisable: the load test's workers read them)."""
    config: dict[str, Any] = {
        "SECRET_KEY": "bench-secret-key",
        "SOCIAL_AUTH_AMAZON_KEY": CLIENT_ID,
        "SOCIAL_AUTH_AMAZON_SECRET": CLIENT_SECRET,
        "SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL": f"{api_url}/ap/oa",
        "SOCIAL_AUTH_AMAZON_API_URL": api_url,
        "SOCIAL_AUTH_AMAZON_VERIFY_SSL": str(ca_bundle),
    }
    if side == "stock":
        config["SOCIAL_AUTH_AUTHENTICATION_BACKENDS"] = ["bench.stock.StockAmazonOAuth2"]
        config["SOCIAL_AUTH_AMAZON_PIPELINE"] = list(DEFAULT_AUTH_PIPELINE)
    return config


class SQLCounter:
    """Counts the SQL statements an engine sends (``before_cursor_execute``), and its writes."""

    def __init__(self, engine: Engine) -> None:
        self.statements = 0
        self.writes = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements += 1
        if statement.lstrip()[:6].upper() in _WRITES:
            self.writes += 1

    def snapshot(self) -> tuple[int, int]:
        return self.statements, self.writes


@dataclass
class BenchApp:
    side: str
    app: Flask
    engine: Engine
    sql: SQLCounter

    @property
    def token_path(self) -> str:
        return "/api/amazon/token" if self.side == "ours" else "/client-token"

    def activate(self) -> None:
        """Make the next sign-in load this side's backend.

        social-core caches backend classes by name for the whole process, and
        both sides' backends are named "amazon": whichever loaded first would
        serve both apps.
        """
        backend_utils.BACKENDSCACHE.clear()

    def token_request(self, token: str) -> dict[str, Any]:
        """The keyword arguments of a test-client POST that signs in with ``token``."""
        if self.side == "ours":
            return {"json": {"access_token": token}}
        return {"data": {"access_token": token}}

    def start_web(self, browser: Any) -> Any:
        """Press Login with Amazon (social-auth-app-flask's start answers a GET)."""
        return browser.get("/login/amazon/")

    def close(self) -> None:
        self.app.extensions["test_session"].remove()
        self.engine.dispose()


def build(database_url: str, config: dict[str, Any], *, side: str, pool_size: int = 16) -> BenchApp:
    """The sample app on ``database_url``, plus a trivial endpoint to subtract Flask's own cost.

    The sample app's engine has SQLAlchemy's default pool (5 connections, 10
    more opened and closed on demand). A server with more threads than that
    opens and closes a database connection on most requests under load,
    which on PostgreSQL (a process forked per connection) costs more than
    the sign-in itself; a deployment sizes its pool to its threads, and so
    does the bench.
    """
    app = sample_app.create_app(database_url, config)
    engine = create_engine(database_url, pool_size=pool_size, max_overflow=pool_size)
    app.extensions["test_session"].configure(bind=engine)
    app.extensions["test_engine"].dispose()
    app.extensions["test_engine"] = engine

    @app.post("/bench/ping")
    def ping() -> Any:
        # The same route shape, body and JSON answer as a sign-in, nothing else.
        return jsonify(status="ok")

    return BenchApp(side=side, app=app, engine=engine, sql=SQLCounter(engine))


@contextlib.contextmanager
def databases(kind: str, workdir: Path, postgres_url: str | None) -> Iterator[dict[str, str]]:
    """A fresh, empty database per side: SQLite files, or databases on the PostgreSQL server."""
    if kind == "sqlite":
        yield {side: f"sqlite:///{workdir / f'{side}.sqlite3'}" for side in SIDES}
        return
    assert postgres_url is not None
    server = make_url(postgres_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    names = {side: f"bench_{side}_{uuid.uuid4().hex[:10]}" for side in SIDES}
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield {
            side: server.set(database=name).render_as_string(hide_password=False)
            for side, name in names.items()
        }
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
