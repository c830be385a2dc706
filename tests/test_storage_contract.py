"""The storage contract: ``check_storage``, and the conformance suite on the SQLAlchemy storage.

Another storage runs the same suite by adding its own entry to ``HARNESSES``
(a function that yields a :class:`~tests.storage_conformance.ContractStorage`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from social_core.storage import BaseStorage, NonceMixin, UserMixin
from sqlalchemy import String, create_engine, make_url, text
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    scoped_session,
    sessionmaker,
)
from werkzeug.security import generate_password_hash

from social_amazon_link import sqlalchemy_storage
from social_amazon_link.sqlalchemy_storage import (
    SQLAlchemyCode,
    SQLAlchemyStorage,
    SQLAlchemyUserSocialAuth,
    bind_secret,
    bind_session,
    configure_sqlite,
    models_for,
    use_models,
)
from social_amazon_link.storage_contract import (
    Storage,
    StorageContractError,
    UserStorage,
    check_storage,
    missing_members,
)
from tests.storage_conformance import ContractStorage, StorageConformance

#: Every member of the contract, as ``missing_members`` names them.
CONTRACT = [
    "is_integrity_error",
    "database_unavailable",
    "end_transaction",
    "purge",
    "user.user_model",
    "user.username_max_length",
    "user.field_max_length",
    "user.clean_username",
    "user.get_username",
    "user.user_exists",
    "user.create_user",
    "user.get_user",
    "user.get_users_by_email",
    "user.changed",
    "user.lock_identity",
    "user.get_social_auth",
    "user.get_social_auth_for_user",
    "user.create_social_auth",
    "user.migrate_social_auth",
    "user.allowed_to_disconnect",
    "user.disconnect_entries",
    "user.disconnect",
    "nonce.use",
    "nonce.consume",
    "association.store",
    "association.get",
    "association.remove",
    "code.make_code",
    "code.get_code",
    "code.normal_code",
    "code.digest",
    "code.sent_since",
    "partial.prepare",
    "partial.store",
    "partial.load",
    "partial.destroy",
    "link_attempts.reserve",
    "link_attempts.fail",
    "link_attempts.clear",
    "link_attempts.release",
    "link_events.record",
    "link_events.record_repeat",
    "link_events.for_user",
]


# -- check_storage --------------------------------------------------------------


def test_the_sqlalchemy_storage_meets_the_contract():
    check_storage(SQLAlchemyStorage)
    assert missing_members(SQLAlchemyStorage) == []
    assert isinstance(SQLAlchemyStorage, Storage)
    assert isinstance(SQLAlchemyStorage.user, UserStorage)


def test_the_django_storage_meets_the_contract():
    from tests.django_support import setup_django

    setup_django()
    from social_amazon_link.django.storage import DjangoStorage

    check_storage(DjangoStorage)
    assert missing_members(DjangoStorage) == []
    assert isinstance(DjangoStorage, Storage)
    assert isinstance(DjangoStorage.user, UserStorage)


def test_an_object_with_nothing_lacks_every_member_of_the_contract():
    assert missing_members(object()) == CONTRACT


def test_social_cores_placeholders_count_as_missing():
    # BaseStorage's mixins have every social-core method, most of them only
    # raising NotImplementedError: those are named, the working ones are not.
    working = {"user.clean_username", "code.make_code", "partial.prepare", "partial.store"}
    assert missing_members(BaseStorage) == [m for m in CONTRACT if m not in working]


class _StockUser(SQLAlchemyUserSocialAuth):
    """Like a stock social-core storage's user part: none of this library's additions."""

    field_max_length = None
    disconnect_entries = None
    get_users_by_email = UserMixin.get_users_by_email  # still social-core's placeholder

    @classmethod
    def lock_identity(cls, provider: str, uid: str) -> None:  # no email
        pass


class _StockCode(SQLAlchemyCode):
    sent_since = None


class _StockStorage(SQLAlchemyStorage):
    user = _StockUser
    code = _StockCode
    nonce = NonceMixin
    link_attempts = None
    end_transaction = "not a method"


def test_check_storage_names_every_missing_member():
    with pytest.raises(StorageContractError) as refused:
        check_storage(_StockStorage)
    missing = [
        "end_transaction",
        "user.field_max_length",
        "user.get_users_by_email",
        "user.lock_identity",
        "user.disconnect_entries",
        "nonce.use",
        "nonce.consume",
        "code.sent_since",
        "link_attempts.reserve",
        "link_attempts.fail",
        "link_attempts.clear",
        "link_attempts.release",
    ]
    assert refused.value.missing == missing
    assert isinstance(refused.value, TypeError)
    message = str(refused.value)
    assert "_StockStorage" in message and "social_amazon_link.storage_contract" in message
    # Each with the arguments the contract passes it.
    assert "user.lock_identity(provider, uid, email=None), " in message
    assert "code.sent_since(email, since), " in message
    assert message.endswith(
        "link_attempts.reserve(user_id, *, max_attempts, lockout_seconds, now=None, "
        "scope='link', wait=0.0), link_attempts.fail(user_id, *, max_attempts, "
        "lockout_seconds, now=None, scope='link'), link_attempts.clear(user_id, *, "
        "scope='link'), link_attempts.release(user_id, *, scope='link')"
    )


def test_the_contract_loads_no_web_framework_and_no_sqlalchemy():
    code = (
        "import sys, social_amazon_link.storage_contract; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'flask', 'werkzeug', 'django', 'sqlalchemy', 'flask_login', 'social_flask'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert loaded.strip() == "[]"


# -- the conformance suite on the SQLAlchemy storage ----------------------------


class _Base(DeclarativeBase):
    pass


class _Member(_Base):
    """The accounts of an app the suite's storage is added to."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(30), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    name: Mapped[str | None] = mapped_column(String(40), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)


class _ContractSQLAlchemyStorage(SQLAlchemyStorage):
    pass


use_models(_ContractSQLAlchemyStorage, models_for(_Member))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raised(database_url: str, statement: str) -> BaseException:
    engine = create_engine(database_url, connect_args=_connect_args(database_url))
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    except Exception as error:
        return error
    finally:
        engine.dispose()
    raise AssertionError(f"{statement!r} on {database_url} raised nothing")


def _connect_args(database_url: str) -> dict[str, Any]:
    return {} if database_url.startswith("sqlite") else {"connect_timeout": 2}


@contextmanager
def sqlalchemy_harness(
    database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ContractStorage]:
    engine = create_engine(database_url)
    configure_sqlite(engine)
    _Base.metadata.create_all(engine)
    session = scoped_session(sessionmaker(bind=engine))
    # The storage finds its session and secret through module-wide bindings,
    # which the Flask tests' apps set too: put back whatever was bound before.
    for name in ("_session_provider", "_secret_provider"):
        monkeypatch.setattr(sqlalchemy_storage, name, getattr(sqlalchemy_storage, name))
    bind_session(lambda: session)
    bind_secret(lambda: "conformance-secret")

    def add_user(
        username: str, email: str | None, *, password: str | None = None, active: bool = True
    ) -> int:
        with Session(engine) as own:
            member = _Member(
                username=username,
                email=email,
                password_hash=generate_password_hash(password) if password else None,
                is_active=active,
            )
            own.add(member)
            own.commit()
            return int(member.id)

    if database_url.startswith("sqlite"):
        # A database file in a folder that does not exist: SQLite cannot open it.
        unreachable = f"sqlite:///{tmp_path / 'missing' / 'app.sqlite3'}"
    else:
        unreachable = make_url(database_url).set(port=_free_port()).render_as_string(False)
    try:
        yield ContractStorage(
            storage=_ContractSQLAlchemyStorage,
            add_user=add_user,
            done=session.remove,
            outage=lambda: _raised(unreachable, "SELECT 1"),
            wrong_sql=lambda: _raised(database_url, "SELECT * FROM no_such_table"),
            limits={"username": 30, "email": 254, "name": 40},
        )
    finally:
        session.remove()
        engine.dispose()


@contextmanager
def django_harness(
    database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ContractStorage]:
    from tests.django_support import django_database

    with django_database(database_url):
        from django.contrib.auth import get_user_model
        from django.db import connections

        from social_amazon_link.django.storage import DjangoStorage

        users = get_user_model().objects

        def add_user(
            username: str, email: str | None, *, password: str | None = None, active: bool = True
        ) -> int:
            return int(users.create_user(username, email, password, is_active=active).pk)

        def raised_on(entry: dict[str, Any], statement: str) -> BaseException:
            connections.settings["contract_probe"] = entry
            try:
                with connections["contract_probe"].cursor() as cursor:
                    cursor.execute(statement)
            except Exception as error:
                return error
            finally:
                connections["contract_probe"].close()
                del connections["contract_probe"]
                del connections.settings["contract_probe"]
            raise AssertionError(f"{statement!r} raised nothing")

        default = connections.settings["default"]
        unreachable = dict(default)
        if default["ENGINE"].endswith("sqlite3"):
            unreachable["NAME"] = str(tmp_path / "missing" / "app.sqlite3")
        else:
            unreachable["PORT"] = str(_free_port())
        yield ContractStorage(
            storage=DjangoStorage,
            add_user=add_user,
            done=connections.close_all,
            outage=lambda: raised_on(unreachable, "SELECT 1"),
            wrong_sql=lambda: raised_on(dict(default), "SELECT * FROM no_such_table"),
            limits=(
                # Django's own (test_django_storage runs the suite on it), which has no name.
                {"username": 150, "email": 254}
                if os.environ.get("SAL_TEST_AUTH_USER_MODEL") == "auth.User"
                else {"username": 80, "email": 254, "name": 120}
            ),
        )


#: The storages the suite runs on: name -> harness(database_url, tmp_path, monkeypatch).
HARNESSES: dict[str, Callable[..., AbstractContextManager[ContractStorage]]] = {
    "sqlalchemy": sqlalchemy_harness,
    "django": django_harness,
}


@pytest.fixture(params=sorted(HARNESSES))
def contract_storage(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Any, monkeypatch: Any
) -> Iterator[ContractStorage]:
    with HARNESSES[request.param](database_url, tmp_path, monkeypatch) as env:
        yield env


class TestStorageContract(StorageConformance):
    """The conformance suite, on every storage of ``HARNESSES`` and every database."""
