"""The Django storage beyond the conformance suite: Django's transactions, its tables, auth.User.

The conformance suite (tests/test_storage_contract.py) runs on
``DjangoStorage`` too; these tests cover what only Django has: the app's own
transaction (``ATOMIC_REQUESTS``) around the steps, the migrations, the
tables shared with the SQLAlchemy storage, and Django's own ``auth.User``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from tests.storage_conformance import HOLD_SECONDS, in_threads

ROOT = Path(__file__).resolve().parent.parent
LIMITS = {"max_attempts": 5, "lockout_seconds": 900}


class RolledBack(Exception):
    """What a view raises after the steps ran: the request's transaction rolls back."""


@pytest.fixture
def storage(django_db: str) -> Any:
    from social_amazon_link.django.storage import DjangoStorage

    return DjangoStorage


def add_user(username: str, email: str, password: str | None = None) -> int:
    from django.contrib.auth import get_user_model

    return int(get_user_model().objects.create_user(username, email, password).pk)


def rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the database through a connection of its own, as another process would."""
    with create_engine(database_url, poolclass=NullPool).connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def atomic_request(view: Any) -> Any:
    """``view`` as Django's handler runs it when ``ATOMIC_REQUESTS`` is on."""
    from django.core.handlers.base import BaseHandler
    from django.db import connections

    connections["default"].settings_dict["ATOMIC_REQUESTS"] = True
    return BaseHandler().make_view_atomic(view)


# -- the app's transaction (ATOMIC_REQUESTS) ----------------------------------------


def test_a_wrong_password_stays_counted_when_the_request_rolls_back(storage, django_db, db_kind):
    pk = add_user("ann", "ann@example.com", "right")

    def view(request: Any) -> None:
        storage.user.get_user(pk)  # the request reads first, as a view does
        assert storage.link_attempts.reserve(pk, **LIMITS).allowed
        assert storage.link_attempts.fail(pk, **LIMITS) == 1
        storage.link_events.record("wrong_password", user_id=pk, amazon_user_id=None)
        raise RolledBack

    with pytest.raises(RolledBack):
        atomic_request(view)(None)

    counted = rows(django_db, "SELECT failures, pending FROM amazon_link_password_attempts")
    events = rows(django_db, "SELECT event, user_id FROM amazon_link_events")
    if db_kind == "postgres":
        # Written through a second connection, committed before the rollback.
        assert counted == [(1, 0)]
        assert events == [("wrong_password", pk)]
        # Which the end of the request closes, as Django closes its own.
        from django.core.signals import request_finished
        from django.db import connections

        own = connections["default__amazon_link"]
        assert own.connection is not None
        request_finished.send(sender=None)
        assert own.connection is None
    else:
        # SQLite has one writer: a second connection would wait on the
        # request's own lock, so the counts go with the request (docs/storage.md).
        assert counted == []
        assert events == []


def test_an_event_for_an_account_the_request_made_commits_with_the_request(storage, django_db):
    # The second connection cannot see an account the request has not
    # committed (its foreign key): the event goes with the request instead.
    def view(request: Any) -> int:
        user = storage.user.create_user(username="ann", email="ann@example.com")
        storage.user.create_social_auth(user, "amzn1.account.ANN", "amazon", "user_id")
        storage.link_events.record("linked", user_id=user.pk, amazon_user_id="amzn1.account.ANN")
        return int(user.pk)

    pk = atomic_request(view)(None)
    assert rows(django_db, "SELECT event, user_id FROM amazon_link_events") == [("linked", pk)]
    assert rows(django_db, "SELECT user_id, uid FROM social_auth_usersocialauth") == [
        (pk, "amzn1.account.ANN")
    ]


def test_an_event_is_announced_only_once_committed(storage, django_db, db_kind):
    pk = add_user("ann", "ann@example.com", "right")
    announced: list[str] = []

    def refused(request: Any) -> None:
        storage.link_events.record("wrong_password", user_id=pk, amazon_user_id=None)
        storage.link_events.on_commit(lambda: announced.append("wrong_password"))
        raise RolledBack

    with pytest.raises(RolledBack):
        atomic_request(refused)(None)
    # Announced exactly when the event outlived the rollback (PostgreSQL's
    # second connection), never for a row that is gone (SQLite).
    kept = [event for (event,) in rows(django_db, "SELECT event FROM amazon_link_events")]
    assert announced == kept == (["wrong_password"] if db_kind == "postgres" else [])

    def linked(request: Any) -> list[str]:
        user = storage.user.create_user(username="bob", email="bob@example.com")
        storage.user.create_social_auth(user, "amzn1.account.BOB", "amazon")
        storage.link_events.record("linked", user_id=user.pk, amazon_user_id="amzn1.account.BOB")
        storage.link_events.on_commit(lambda: announced.append("linked"))
        return list(announced)

    # The new account's event goes with the request: announced once it commits.
    assert atomic_request(linked)(None) == kept
    assert announced == [*kept, "linked"]


def test_a_lock_the_request_holds_makes_the_second_connection_give_up_not_hang(
    storage, django_db, db_kind, monkeypatch
):
    from django.contrib.auth import get_user_model
    from django.db import connections

    from social_amazon_link.django import storage as django_storage

    monkeypatch.setattr(django_storage, "OWN_LOCK_TIMEOUT", 0.3)
    pk = add_user("ann", "ann@example.com", "right")

    def view(request: Any) -> None:
        # The app's own view holds the user's row for update, then the steps
        # record an event about that user.
        get_user_model().objects.select_for_update().get(pk=pk)
        storage.link_events.record("wrong_password", user_id=pk, amazon_user_id=None)

    def request(_: int) -> BaseException | None:
        try:
            atomic_request(view)(None)
        except Exception as error:
            return error
        return None

    started = time.monotonic()
    [raised] = in_threads(SimpleNamespace(done=connections.close_all), 1, request)
    assert time.monotonic() - started < 5
    if db_kind == "postgres":
        # The second connection's write waited for the row, then gave up: 503.
        unavailable = storage.database_unavailable(raised)
        assert unavailable is not None and unavailable.code == "database_unavailable"
        assert rows(django_db, "SELECT event FROM amazon_link_events") == []
    else:
        # SQLite: no second connection; the event went with the request.
        assert raised is None
        assert rows(django_db, "SELECT event FROM amazon_link_events") == [("wrong_password",)]


def test_inside_a_django_testcase_the_counts_stay_in_the_tests_transaction(storage, django_db):
    from django.contrib.auth import get_user_model
    from django.test import TestCase

    from social_amazon_link.django.models import PasswordAttempts

    class Case(TestCase):
        databases = {"default"}

    # What TestCase does around each test: a transaction, rolled back after.
    atomics = Case._enter_atomics()
    try:
        pk = add_user("ann", "ann@example.com", "right")  # the test's own account
        assert storage.link_attempts.reserve(pk, **LIMITS).allowed
        assert storage.link_attempts.fail(pk, **LIMITS) == 1
        storage.link_events.record("wrong_password", user_id=pk, amazon_user_id=None)
        assert PasswordAttempts.objects.get(user_id=pk).failures == 1
        assert [e.event for e in storage.link_events.for_user(pk)] == ["wrong_password"]
    finally:
        Case._rollback_atomics(atomics)
    # Nothing outlives the test.
    assert rows(django_db, "SELECT user_id FROM amazon_link_password_attempts") == []
    assert rows(django_db, "SELECT user_id FROM amazon_link_events") == []
    assert not get_user_model().objects.exists()


def test_the_identity_lock_inside_the_apps_transaction_is_held_until_it_commits(storage):
    from django.db import connections, transaction

    locked = threading.Event()
    seen: dict[str, Any] = {}

    def first() -> None:
        with transaction.atomic():  # the request's transaction
            storage.user.lock_identity("amazon", "amzn1.account.ANN", "ann@example.com")
            user = storage.user.create_user(username="ann", email="ann@example.com")
            storage.user.create_social_auth(user, "amzn1.account.ANN", "amazon")
            locked.set()
            time.sleep(HOLD_SECONDS)
            seen["committing"] = time.monotonic()

    def second() -> None:
        assert locked.wait(10)
        storage.user.lock_identity("amazon", "amzn1.account.ANN", "ann@example.com")
        seen["locked"] = time.monotonic()
        seen["link"] = storage.user.get_social_auth("amazon", "amzn1.account.ANN")
        storage.end_transaction()

    in_threads(SimpleNamespace(done=connections.close_all), 2, lambda i: (first, second)[i]())
    assert seen["locked"] >= seen["committing"]
    assert seen["link"] is not None and seen["link"].user.username == "ann"


def test_what_a_failed_request_left_open_is_rolled_back_when_it_ends(storage, django_db):
    from django.core.signals import request_finished
    from django.db import connections

    storage.user.lock_identity("amazon", "amzn1.account.ANN", "ann@example.com")
    storage.user.create_user(username="ann", email="ann@example.com")
    # The view raised here, before the link: Django ends the request.
    request_finished.send(sender=None)

    assert rows(django_db, "SELECT username FROM users") == []

    def lock(_: int) -> float:
        started = time.monotonic()
        storage.user.lock_identity("amazon", "amzn1.account.ANN", "ann@example.com")
        storage.end_transaction()
        return time.monotonic() - started

    [waited] = in_threads(SimpleNamespace(done=connections.close_all), 1, lock)
    assert waited < HOLD_SECONDS
    # This thread's next request works on a new connection.
    assert storage.user.get_users_by_email("ann@example.com") == []
    pk = add_user("ann", "ann@example.com")
    assert storage.user.get_user(pk).username == "ann"


# -- accounts and links -------------------------------------------------------------


def test_an_account_whose_link_fails_is_not_saved(storage, django_db):
    bob = storage.user.get_user(add_user("bob", "bob@example.com", "pw"))
    storage.user.create_social_auth(bob, "amzn1.account.ANN", "amazon")

    ann = storage.user.create_user(username="ann", email="ann@example.com")
    with pytest.raises(Exception) as refused:
        storage.user.create_social_auth(ann, "amzn1.account.ANN", "amazon")
    assert storage.is_integrity_error(refused.value)
    assert rows(django_db, "SELECT username FROM users ORDER BY id") == [("bob",)]

    # The storage goes on: the next account is saved with its link.
    eve = storage.user.create_user(username="eve", email="eve@example.com")
    storage.user.create_social_auth(eve, "amzn1.account.EVE", "amazon")
    assert rows(django_db, "SELECT username FROM users ORDER BY id") == [("bob",), ("eve",)]


def test_the_username_and_email_checks_go_beyond_stock_social_django(storage):
    from social_django.models import DjangoStorage as StockStorage

    add_user("Ülrich", "Ülrich@Example.com")
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="Ülrich").update(is_active=False)
    # Stock social_django: the database's comparison, active accounts only.
    assert not StockStorage.user.user_exists(username="ülrich")
    assert list(StockStorage.user.get_users_by_email("ülrich@example.com")) == []
    # This storage: any case, non-ASCII included, inactive accounts too.
    assert storage.user.user_exists(username="ülrich")
    assert [u.username for u in storage.user.get_users_by_email("ülrich@example.com")] == ["Ülrich"]
    # A deactivated account's session ends, as with Django's own backends.
    [user] = storage.user.get_users_by_email("ÜLRICH@example.com")
    assert storage.user.get_user(user.pk) is None
    assert storage.user.get_user("not a number") is None


def test_emailed_codes_are_stored_as_keyed_hashes_only(storage, django_db):
    sent = storage.code.make_code("ann@example.com")
    [(stored,)] = rows(django_db, "SELECT code FROM social_auth_code")
    assert stored != sent.code and sent.code not in stored
    assert stored == storage.code.digest(sent.code)
    assert len(stored) == 32


def test_djangos_connection_errors_are_database_unavailable(storage):
    from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError

    assert storage.database_unavailable(InterfaceError("connection already closed")).code == (
        "database_unavailable"
    )
    assert storage.database_unavailable(OperationalError("server closed the connection"))
    assert storage.database_unavailable(IntegrityError("duplicate key")) is None
    assert storage.database_unavailable(DatabaseError("something else")) is None


# -- tables and migrations ----------------------------------------------------------


def test_the_migrations_match_the_models(django_db):
    from django.core.management import call_command

    # Exits (SystemExit) when a model changed without its migration.
    call_command("makemigrations", "social_amazon_link", check=True, dry_run=True, verbosity=0)


def test_the_tables_are_the_sqlalchemy_storages(django_db, tmp_path):
    from social_amazon_link.sqlalchemy_storage import models_for
    from tests.sample_app import User

    models = models_for(User)
    django_tables = inspect(create_engine(django_db, poolclass=NullPool))
    for table in (models.link_attempts.__table__, models.link_events.__table__):
        columns = {c["name"]: c for c in django_tables.get_columns(table.name)}
        assert set(columns) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, column.name
        primary = django_tables.get_pk_constraint(table.name)["constrained_columns"]
        assert sorted(primary) == sorted(c.name for c in table.primary_key), table.name
        [foreign] = django_tables.get_foreign_keys(table.name)
        assert (foreign["constrained_columns"], foreign["referred_table"]) == (["user_id"], "users")


# -- Django's own auth.User ---------------------------------------------------------


def test_the_conformance_suite_passes_with_djangos_own_user_model(database_url, db_kind, request):
    # AUTH_USER_MODEL is fixed once Django is set up: another process runs it.
    env = {**os.environ, "SAL_TEST_AUTH_USER_MODEL": "auth.User"}
    if db_kind == "postgres":
        env["TEST_POSTGRES_URL"] = request.getfixturevalue("postgres_url")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "tests/test_storage_contract.py", "-k", "django"),
            *("--db", db_kind, "-p", "no:cacheprovider", "-q"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # Each test of the suite, on auth.User (username 150 characters, no name field).
    assert "\n26 passed, " in done.stdout
