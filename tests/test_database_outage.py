"""The database goes down and comes back: a real PostgreSQL server, stopped and started.

While it is down, every request of the integration answers ``503
database_unavailable`` (JSON with ``Retry-After`` on the API, a page with the
code on the web), logs one line and no traceback, and writes nothing half;
once it is back, the first requests all succeed, without a restart of the app.
The test owns its server (``pg_ctl stop -m immediate``: every connection cut at
once, as in a crash), apart from the one the rest of the suite shares.

On Flask and on Django. Django's own middleware reads nothing before our
views (its session and ``request.user`` are lazy: the first read is ours,
inside the view) and saves no session on a 5xx answer; what fails before
our views (``CSRF_USE_SESSIONS``, a middleware of the app's reading
``request.user``) is the app's 500, as its own pages' failures are.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
import requests
from flask import Flask
from social_amazon_link.pipelines import AMAZON_PIPELINE
from sqlalchemy import create_engine, exc, make_url, text

from demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, amazon_settings
from demo import create_app as create_demo
from demo.seed import KATHERINE_ID, seed
from social_amazon_link.errors import error_status
from social_amazon_link.sqlalchemy_storage import SQLAlchemyStorage
from tests import sample_app
from tests.conftest import CLIENT_ID, CLIENT_SECRET, DjangoServed, Served, emulator_settings
from tests.flows import consent, start_sign_in
from tests.postgres import PostgresServer

GRACE = "amzn1.account.AEGRACEHOPPER00001"
ADA = "amzn1.account.AEADALOVELACE00001"
PASSWORD = "alan password"
UNAVAILABLE_PAGE = 'data-error-code="database_unavailable"'


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, to stop and start."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def start_app(
    framework: str, postgres: PostgresServer, lwa_emulator: Any
) -> Iterator[Callable[..., Served]]:
    """``start(**settings)``: the sample app on that server, Flask's with the
    engine settings docs/database.md asks for, or Django's on a migrated
    database of the server; closed after the test."""
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    with ExitStack() as cleanup:

        def start(*, threaded: bool = True, **settings: Any) -> Served:
            config = {**emulator_settings(lwa_emulator), **settings}
            served: Served
            if framework == "django":
                url = cleanup.enter_context(outage_django_database(postgres))
                served = DjangoServed(url, config, threaded)
            else:
                options = {"pool_pre_ping": True}
                app = sample_app.create_app(postgres.url, config, options)
                served = Served(app, threaded=threaded)
            cleanup.callback(served.close)
            lwa_emulator.add_client(
                CLIENT_ID, CLIENT_SECRET, redirect_uris=[f"{served.url}/complete/amazon/"]
            )
            return served

        yield start


@pytest.fixture
def app(start_app: Callable[..., Served]) -> Served:
    return start_app()


@contextmanager
def outage_django_database(postgres: PostgresServer) -> Iterator[str]:
    """Django's ``default`` database a migrated one of its own on the test's server."""
    from tests.django_support import django_database, forget_server

    url = make_url(postgres.url).set(database="app").render_as_string(hide_password=False)
    try:
        with django_database(url):
            yield url
    finally:
        forget_server(url)


def signed_in(app: Served, username: str, email: str) -> requests.Session:
    """A browser signed in to a new local account (the user loader queries on each request)."""
    app.add_user(username, email, PASSWORD)
    browser = requests.Session()
    answer = browser.post(
        f"{app.url}/test-login", data={"username": username, "password": PASSWORD}
    )
    assert answer.ok
    return browser


def token_sign_in(phone: requests.Session, app: Served, lwa: Any, user_id: str) -> Any:
    token = lwa.mint_token(CLIENT_ID, user_id)
    return phone.post(f"{app.url}/api/amazon/token", json={"access_token": token}, timeout=15)


def assert_api_unavailable(answer: requests.Response) -> None:
    assert (answer.status_code, answer.json()) == (503, {"error": "database_unavailable"})
    assert answer.headers["Retry-After"] == "5"


def assert_page_unavailable(answer: requests.Response) -> None:
    assert answer.status_code == 503, answer.text[:500]
    assert UNAVAILABLE_PAGE in answer.text
    assert "We cannot reach our database right now." in answer.text
    assert answer.headers["Retry-After"] == "5"


def state(app: Served) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a sign-in can write."""
    tables = {
        "users": "SELECT username, email FROM users",
        "links": "SELECT user_id, uid FROM social_auth_usersocialauth",
        "partials": "SELECT token FROM social_auth_partial",
        "events": "SELECT event, user_id, amazon_user_id FROM amazon_link_events",
        "attempts": "SELECT user_id, failures FROM amazon_link_password_attempts",
    }
    if app.framework == "django":
        # Django's sessions live in the database too (the signed-in user's):
        # no request of the outage writes one.
        tables["sessions"] = "SELECT session_key, session_data FROM django_session"
    return {name: sorted(tuple(row) for row in app.query(sql)) for name, sql in tables.items()}


def warnings_and_worse(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def library_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the library logged (its logger, ``social_amazon_link``), warnings and worse."""
    return [r for r in warnings_and_worse(caplog) if r.name == "social_amazon_link"]


def test_while_the_database_is_down_every_request_answers_503_and_nothing_is_half_written(
    app, postgres, lwa_emulator, caplog
):
    grace_id = app.add_user("grace", "grace@example.com", PASSWORD)
    app.link(grace_id, GRACE)
    alan = signed_in(app, "alan", "alan@example.com")
    phone = requests.Session()
    assert token_sign_in(phone, app, lwa_emulator, GRACE).json()["status"] == "authenticated"
    anonymous = requests.Session()
    callback = consent(anonymous, start_sign_in(anonymous, app), GRACE, "allow")
    unlink_form = {"csrf_token": alan.get(f"{app.url}/csrf-token").json()["csrf_token"]}
    before = state(app)

    # A first sign-in in flight when the database stops: Amazon is still
    # answering its profile, and the account is written after.
    lwa_emulator.fault("profile", delay_ms=1000, times=1)
    in_flight: list[requests.Response] = []
    first = threading.Thread(
        target=lambda: in_flight.append(token_sign_in(requests.Session(), app, lwa_emulator, ADA))
    )
    first.start()
    deadline = time.monotonic() + 5
    while lwa_emulator.stats()["requests"]["profile"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    caplog.clear()
    caplog.set_level(logging.INFO)
    postgres.stop("immediate")

    first.join(timeout=15)
    assert_api_unavailable(in_flight[0])
    # The JSON API: a returning user, and a signed-in one (whose user
    # loader fails before the view runs).
    assert_api_unavailable(token_sign_in(phone, app, lwa_emulator, GRACE))
    assert_api_unavailable(token_sign_in(alan, app, lwa_emulator, GRACE))
    # The web: a sign-in's start (its OAuth2 state is stored; on Django a
    # POST with the CSRF token), Amazon's redirect back (social-core's
    # pipeline), a signed-in start of a link (the user loader; on Django,
    # the session and the user read inside the view, and not again by the
    # error page), an unlink, the password prompt.
    assert_page_unavailable(app.start_sign_in(requests.Session()))
    assert_page_unavailable(anonymous.get(callback))
    assert_page_unavailable(app.start_sign_in(alan))
    assert_page_unavailable(alan.post(f"{app.url}/disconnect/amazon/", data=unlink_form))
    assert_page_unavailable(alan.get(f"{app.url}/link/amazon/password?partial_token=abc"))
    failures = 8

    # The library's own lines: Django's ``django.request`` logger adds one
    # line of its own for every 5xx response ("Service Unavailable: /path",
    # no traceback), whoever answered it.
    logged = library_lines(caplog)
    assert [r.getMessage() for r in logged if "database_unavailable" not in r.getMessage()] == []
    assert len(logged) == failures
    assert all("\n" not in r.getMessage() for r in logged)
    # No traceback, from any logger (Werkzeug's own writes its into the message).
    assert [r for r in caplog.records if r.exc_info] == []
    assert "Traceback" not in caplog.text
    text_logged = caplog.text
    for secret in (CLIENT_SECRET, PASSWORD, "Atza|", "SELECT", "postgres@"):
        assert secret not in text_logged

    postgres.start()
    # Back, with no restart of the app: the first requests all succeed.
    answers = [token_sign_in(phone, app, lwa_emulator, GRACE) for _ in range(4)]
    answers += [alan.get(f"{app.url}/me") for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 8
    # Nothing of the failed requests was written, the one in flight included.
    assert state(app) == before
    assert token_sign_in(requests.Session(), app, lwa_emulator, ADA).json()["new_user"] is True


def test_one_worker_thread_serves_the_next_requests_after_an_outage(
    start_app, framework, postgres, lwa_emulator
):
    # One worker thread serves one request after another, as a sync worker
    # does: on Flask on the same scoped session, on Django on the same
    # persistent connection (CONN_MAX_AGE, with the CONN_HEALTH_CHECKS
    # docs/database.md asks for). After a failure it must not be left
    # mid-transaction or broken; after a quiet restart, the stale connection
    # is replaced before a request uses it.
    app = start_app(threaded=False)
    if framework == "django":
        from django.db import connections

        connections.settings["default"].update(CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)
    grace_id = app.add_user("grace", "grace@example.com", PASSWORD)
    app.link(grace_id, GRACE)
    alan = signed_in(app, "alan", "alan@example.com")
    postgres.stop("immediate")
    assert_page_unavailable(app.start_sign_in(alan))
    postgres.start()
    assert alan.get(f"{app.url}/me").json()["username"] == "alan"
    assert token_sign_in(alan, app, lwa_emulator, GRACE).status_code == 409  # linked to grace
    postgres.stop("immediate")
    postgres.start()  # no request in between
    assert alan.get(f"{app.url}/me").json()["username"] == "alan"
    assert token_sign_in(alan, app, lwa_emulator, GRACE).status_code == 409


#: The server :func:`crash_the_database` stops, when a test arms it.
_CRASHING: list[PostgresServer] = []


def crash_the_database(*args: Any, **kwargs: Any) -> None:
    """A pipeline step of the test's: the database server crashes here."""
    if _CRASHING:
        _CRASHING.pop().stop("immediate")


def crashing_pipeline() -> tuple[str, ...]:
    """The pipeline, the server crashing right after the identity lock of a
    first sign-in (no account has the email: match_by_email_require_password
    opened the storage's transaction and locked)."""
    steps = list(AMAZON_PIPELINE)
    after = steps.index("social_amazon_link.pipelines.match_by_email_require_password")
    steps.insert(after + 1, f"{__name__}.crash_the_database")
    return tuple(steps)


def test_a_crash_while_a_first_sign_in_holds_the_identity_lock_writes_nothing(
    start_app, postgres, lwa_emulator, caplog
):
    # The next query after the crash (the new account's username check)
    # fails outside any write of the storage's, its transaction still open.
    app = start_app(SOCIAL_AUTH_AMAZON_PIPELINE=crashing_pipeline())
    before = state(app)
    _CRASHING.append(postgres)
    caplog.set_level(logging.INFO)
    assert_api_unavailable(token_sign_in(requests.Session(), app, lwa_emulator, ADA))
    assert _CRASHING == []  # the step ran
    (logged,) = library_lines(caplog)  # the reason: the driver's error class
    assert logged.getMessage().startswith("Login with Amazon (API) failed: database_unavailable (")
    assert [r for r in caplog.records if r.exc_info] == []
    assert "Traceback" not in caplog.text

    postgres.start()
    assert state(app) == before
    assert token_sign_in(requests.Session(), app, lwa_emulator, ADA).json()["new_user"] is True
    assert [row[1] for row in app.links()] == [ADA]


@pytest.mark.django_only
def test_a_crash_under_atomic_requests_rolls_back_the_requests_transaction(
    start_app, postgres, lwa_emulator, caplog
):
    # ATOMIC_REQUESTS: Django runs each view in a transaction, opened before
    # the view (with the database gone already, that is Django's own 500, the
    # app's: none of our code runs) and ended once the view answers. The
    # server crashing during our view, our 503 ends that transaction first,
    # closing its connection: Django's commit on the dead connection (or its
    # rollback, then a reconnect) would make the answer its own 500.
    from django.db import connections

    app = start_app(SOCIAL_AUTH_AMAZON_PIPELINE=crashing_pipeline())
    connections.settings["default"]["ATOMIC_REQUESTS"] = True
    browser = requests.Session()
    callback = consent(browser, start_sign_in(browser, app), ADA, "allow")
    before = state(app)
    caplog.set_level(logging.INFO)
    _CRASHING.append(postgres)
    assert_page_unavailable(browser.get(callback))
    postgres.start()
    _CRASHING.append(postgres)
    assert_api_unavailable(token_sign_in(requests.Session(), app, lwa_emulator, ADA))
    assert _CRASHING == []
    assert len(library_lines(caplog)) == 2
    assert [r for r in caplog.records if r.exc_info] == []
    assert "Traceback" not in caplog.text

    postgres.start()
    assert state(app) == before
    assert token_sign_in(requests.Session(), app, lwa_emulator, ADA).json()["new_user"] is True


# -- the demo ------------------------------------------------------------------
# The Flask demo, in this process. The Django demo runs in a process of its
# own (python -m demo --framework django), on Django's default CONN_MAX_AGE=0
# (no pooled connection to go stale: the persistent-connection case is
# test_one_worker_thread_serves_the_next_requests_after_an_outage), and its
# own pages have no outage page of their own to check.


def make_demo(postgres: PostgresServer, lwa: Any) -> Served:
    settings = amazon_settings({"LWA_EMULATOR_URL": lwa.url})
    settings.update(DATABASE_URL=postgres.url, SECRET_KEY="outage-tests-secret-key")
    demo: Flask = create_demo(settings)
    served = Served(demo)
    lwa.add_client(
        DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, redirect_uris=[f"{served.url}/complete/amazon/"]
    )
    return served


def test_demo_after_a_restart_with_no_traffic_answers_its_first_requests(
    postgres, lwa_emulator, tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)  # the demo makes ./instance
    demo = make_demo(postgres, lwa_emulator)
    try:
        seed(demo.app)  # katherine is linked to her Amazon account
        lwa_emulator.add_identity(KATHERINE_ID, "Katherine Johnson", "katherine@example.com")
        phones = [requests.Session() for _ in range(4)]

        def sign_in_all() -> list[int]:
            # At once: each holds a pooled connection of its own.
            statuses: list[int] = [0] * len(phones)

            def one(i: int) -> None:
                token = lwa_emulator.mint_token(DEMO_CLIENT_ID, KATHERINE_ID)
                answer = phones[i].post(
                    f"{demo.url}/api/amazon/token", json={"access_token": token}, timeout=15
                )
                statuses[i] = answer.status_code

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(phones))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=15)
            return statuses

        assert sign_in_all() == [200] * 4  # the pool now holds several connections
        postgres.stop("immediate")
        postgres.start()  # no request in between: the pooled connections are stale
        assert sign_in_all() == [200] * 4
        account = phones[0].get(f"{demo.url}/account")
        assert account.status_code == 200 and KATHERINE_ID in account.text

        # Down: the demo's own account page answers as the integration's do.
        postgres.stop("immediate")
        caplog.set_level(logging.INFO)
        assert_page_unavailable(phones[0].get(f"{demo.url}/account"))
        # (its pre-ping found the connection dead, and no new one came)
        assert [r.getMessage() for r in warnings_and_worse(caplog)] == [
            "Demo page failed: database_unavailable (operational)"
        ]
        postgres.start()
        assert phones[0].get(f"{demo.url}/account").status_code == 200
    finally:
        demo.close()
        demo.app.extensions["demo_engine"].dispose()


# -- SQLite: busy is "not now", a wrong query is a bug ------------------------------


def test_sqlite_held_busy_answers_503_then_the_sign_in_goes_through(tmp_path, lwa_emulator, caplog):
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    path = tmp_path / "app.sqlite3"
    config = {
        "SOCIAL_AUTH_AMAZON_KEY": CLIENT_ID,
        "SOCIAL_AUTH_AMAZON_SECRET": CLIENT_SECRET,
        "SOCIAL_AUTH_AMAZON_API_URL": lwa_emulator.url,
    }
    # SQLite waits this long for another process's lock, then gives up.
    options = {"connect_args": {"timeout": 0.2}}
    app = Served(sample_app.create_app(f"sqlite:///{path}", config, options))
    phone = requests.Session()
    other_process = sqlite3.connect(path, isolation_level=None)
    try:
        other_process.execute("BEGIN EXCLUSIVE")  # a long write elsewhere
        caplog.set_level(logging.INFO)
        assert_api_unavailable(token_sign_in(phone, app, lwa_emulator, ADA))
        other_process.execute("COMMIT")
        assert [r.getMessage() for r in warnings_and_worse(caplog)] == [
            "Login with Amazon (API) failed: database_unavailable (sqlite_busy, stage unknown)"
        ]
        assert token_sign_in(phone, app, lwa_emulator, ADA).json()["new_user"] is True
        assert len(app.query("SELECT id FROM users")) == 1
    finally:
        other_process.close()
        app.close()
        app.app.extensions["test_engine"].dispose()


def test_only_errors_of_reach_map_to_database_unavailable(tmp_path):
    path = tmp_path / "db.sqlite3"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with engine.connect() as conn:
            with pytest.raises(exc.OperationalError) as wrong_sql:
                conn.execute(text("SELECT * FROM no_such_table"))
        holder.execute("BEGIN EXCLUSIVE")
        with engine.connect() as conn:
            with pytest.raises(exc.OperationalError) as busy:
                conn.execute(text("CREATE TABLE t (id INTEGER)"))
    finally:
        holder.close()
        engine.dispose()
    assert SQLAlchemyStorage.database_unavailable(wrong_sql.value) is None
    unavailable = SQLAlchemyStorage.database_unavailable(busy.value)
    assert unavailable is not None
    assert (unavailable.code, unavailable.reason, error_status(unavailable)) == (
        "database_unavailable",
        "sqlite_busy",
        503,
    )
    # Neither the statement nor the driver's message reaches the error's text.
    assert "CREATE" not in str(unavailable) and "locked" not in str(unavailable)
    assert SQLAlchemyStorage.database_unavailable(ValueError("database is locked")) is None
