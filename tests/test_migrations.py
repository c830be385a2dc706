"""The Alembic operations create exactly the tables the storage maps, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, inspect

from social_amazon_link.migrations import create_tables, drop_tables
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


def test_create_tables_matches_the_mapped_models(database_url):
    models_for(sample_app.User)  # the social tables join the sample app's MetaData
    metadata = sample_app.Base.metadata
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            metadata.tables["users"].create(conn)  # the app's own first migration
            create_tables(Operations(MigrationContext.configure(conn)), users_table="users")
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
            assert diff == []
            assert SOCIAL_TABLES <= set(inspect(conn).get_table_names())
        with engine.begin() as conn:
            drop_tables(Operations(MigrationContext.configure(conn)))
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"users"}
    finally:
        engine.dispose()
