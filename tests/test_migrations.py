"""The Alembic operations create exactly the tables the storage maps, on both databases."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import String, Uuid, create_engine, inspect, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from social_amazon_link.migrations import create_tables, downgrade_2, drop_tables, upgrade_2
from social_amazon_link.sqlalchemy_storage import models_for
from tests import sample_app

SOCIAL_TABLES = {
    "social_auth_usersocialauth",
    "social_auth_nonce",
    "social_auth_association",
    "social_auth_code",
    "social_auth_partial",
    "amazon_link_password_attempts",
    "amazon_link_events",
}


class UuidBase(DeclarativeBase):
    pass


class UuidUser(UuidBase):
    """An app whose users have UUIDs for ids, not integers."""

    __tablename__ = "accounts"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(80), unique=True)


def _server_defaults_differ(
    context, inspected_column, metadata_column, inspected, metadata_default, rendered
) -> bool | None:
    """Alembic's comparison, except that SQLite reflects the default ``''`` as ``('')``."""
    if context.dialect.name == "sqlite" and inspected is not None and rendered is not None:
        literal = inspected.removeprefix("(").removesuffix(")")
        return literal != f"'{rendered}'"
    return None  # Alembic compares


@pytest.mark.parametrize(
    ("user_model", "options"),
    [
        (sample_app.User, {}),
        (UuidUser, {"users_table": "accounts", "users_id_type": Uuid}),
    ],
    ids=["integer-ids", "uuid-ids"],
)
def test_create_tables_matches_the_mapped_models(database_url, user_model, options):
    models_for(user_model)  # the social tables join the app's MetaData
    metadata = user_model.metadata
    users_table = user_model.__tablename__
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            metadata.tables[users_table].create(conn)  # the app's own first migration
            operations = Operations(MigrationContext.configure(conn))
            create_tables(operations, **options)
            upgrade_2(operations, **options)
        with engine.connect() as conn:
            opts = {"compare_type": True, "compare_server_default": _server_defaults_differ}
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
            assert diff == []
            assert SOCIAL_TABLES <= set(inspect(conn).get_table_names())
        with engine.begin() as conn:
            drop_tables(Operations(MigrationContext.configure(conn)))
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {users_table}
    finally:
        engine.dispose()


def test_upgrade_2_keeps_the_events_and_downgrade_2_goes_back(database_url):
    models_for(sample_app.User)
    metadata = sample_app.User.metadata
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            metadata.tables["users"].create(conn)
            create_tables(Operations(MigrationContext.configure(conn)))  # an app on version 1
            conn.execute(text("INSERT INTO users (id, username) VALUES (1, 'grace')"))
            conn.execute(
                text(
                    "INSERT INTO amazon_link_events (user_id, event, detail, created)"
                    " VALUES (1, 'linked', 'password', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO amazon_link_password_attempts"
                    " (user_id, failures, last_failure_at, locked_until) VALUES (1, 2, 0, 0)"
                )
            )
        with engine.begin() as conn:
            upgrade_2(Operations(MigrationContext.configure(conn)))
        with engine.connect() as conn:
            events = conn.execute(text("SELECT event, repeats FROM amazon_link_events"))
            assert [tuple(row) for row in events] == [("linked", 0)]
            attempts = conn.execute(text("SELECT * FROM amazon_link_password_attempts"))
            assert list(attempts) == []  # counts in progress are dropped
            columns = {
                c["name"] for c in inspect(conn).get_columns("amazon_link_password_attempts")
            }
            assert {"scope", "pending"} <= columns
        with engine.begin() as conn:
            downgrade_2(Operations(MigrationContext.configure(conn)))
        with engine.connect() as conn:
            events = conn.execute(text("SELECT event, detail FROM amazon_link_events"))
            assert [tuple(row) for row in events] == [("linked", "password")]
            columns = {
                c["name"] for c in inspect(conn).get_columns("amazon_link_password_attempts")
            }
            assert "scope" not in columns and "pending" not in columns
            assert "repeats" not in {
                c["name"] for c in inspect(conn).get_columns("amazon_link_events")
            }
        with engine.begin() as conn:
            drop_tables(Operations(MigrationContext.configure(conn)))
    finally:
        engine.dispose()
