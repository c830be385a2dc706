"""No database transaction stays open while the app waits on Amazon.

A signed-in person's request loads its user first (Flask-Login), which opens
a transaction; the sign-in then calls Amazon, which can take seconds. Each
test slows one of Amazon's endpoints in the emulator and, while the app
waits on it, asks the app's engine which of its connections are inside a
transaction, and on PostgreSQL the server itself ("idle in transaction").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from sqlalchemy import event

from tests.conftest import CLIENT_ID, Served
from tests.flows import consent, start_sign_in

GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "alan password"
#: How long the emulator holds each slowed answer: long enough to look inside.
DELAY_MS = 800


@pytest.fixture
def alan(serve_app: Callable[..., Served], lwa_emulator: Any) -> tuple[Served, int]:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    return app, app.add_user("alan", "alan@example.com", PASSWORD)


pytestmark = pytest.mark.flask_only  # the SQLAlchemy session's transactions


@contextmanager
def transactions(app: Served) -> Iterator[set[int]]:
    """The app's connections that are inside a transaction, kept up to date."""
    engine = app.app.extensions["test_engine"]
    inside: set[int] = set()
    lock = threading.Lock()

    def began(conn: Any) -> None:
        with lock:
            inside.add(id(conn))

    def ended(conn: Any) -> None:
        with lock:
            inside.discard(id(conn))

    listeners = (("begin", began), ("commit", ended), ("rollback", ended))
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield inside
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def idle_in_transaction(app: Served, db_kind: str) -> int:
    """PostgreSQL's own view: the app's sessions idle inside a transaction."""
    if db_kind != "postgres":
        return 0
    [row] = app.query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
    )
    return int(row.n)


def wait_for_call(lwa: Any, endpoint: str, before: int) -> None:
    """Until the app's call to ``endpoint`` has reached the emulator (and waits there)."""
    deadline = time.monotonic() + 5
    while lwa.stats()["requests"][endpoint] <= before:
        assert time.monotonic() < deadline, f"the app never called {endpoint}"
        time.sleep(0.01)
    time.sleep(0.05)  # the app is now blocked reading the answer


def in_background(call: Callable[[], requests.Response]) -> Callable[[], requests.Response]:
    """Start ``call`` in a thread; the returned function waits for its answer."""
    answers: list[requests.Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()

    def result() -> requests.Response:
        thread.join(timeout=15)
        return answers[0]

    return result


def open_during(
    app: Served, db_kind: str, lwa: Any, endpoints: tuple[str, ...], inside: set[int]
) -> dict[str, tuple[int, int]]:
    """For each slowed endpoint in turn: (open transactions, idle in transaction)."""
    seen = {}
    for endpoint in endpoints:
        wait_for_call(lwa, endpoint, 0)
        seen[endpoint] = (len(inside), idle_in_transaction(app, db_kind))
    return seen


def test_signed_in_web_link_holds_no_transaction_while_amazon_answers(
    alan, browser, lwa_emulator, db_kind
):
    app, user_id = alan
    browser.post(f"{app.url}/test-login", data={"username": "alan", "password": PASSWORD})
    callback = consent(browser, start_sign_in(browser, app), GRACE, "allow")
    for endpoint in ("token", "profile"):
        lwa_emulator.fault(endpoint, delay_ms=DELAY_MS, times=1)

    with transactions(app) as inside:
        answer = in_background(lambda: browser.get(callback, timeout=15))
        seen = open_during(app, db_kind, lwa_emulator, ("token", "profile"), inside)
        assert answer().json()["id"] == user_id
    assert seen == {"token": (0, 0), "profile": (0, 0)}
    assert app.links() == [(user_id, GRACE)]


def test_signed_in_api_link_holds_no_transaction_while_amazon_answers(
    alan, browser, lwa_emulator, db_kind
):
    app, user_id = alan
    browser.post(f"{app.url}/test-login", data={"username": "alan", "password": PASSWORD})
    token = lwa_emulator.mint_token(CLIENT_ID, GRACE)
    for endpoint in ("tokeninfo", "profile"):
        lwa_emulator.fault(endpoint, delay_ms=DELAY_MS, times=1)

    with transactions(app) as inside:
        answer = in_background(
            lambda: browser.post(
                f"{app.url}/api/amazon/token", json={"access_token": token}, timeout=15
            )
        )
        seen = open_during(app, db_kind, lwa_emulator, ("tokeninfo", "profile"), inside)
        assert answer().json()["user"]["id"] == user_id
    assert seen == {"tokeninfo": (0, 0), "profile": (0, 0)}
    assert app.links() == [(user_id, GRACE)]
