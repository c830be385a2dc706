"""Alembic operations that add this library's tables to an app's own migrations.

The tables reference the app's users table, whose revision only the app
knows, so they are not a separate Alembic branch: the app calls these from a
revision of its own, after its users table exists::

    from social_amazon_link.migrations import create_tables, drop_tables, upgrade_2

    def upgrade():
        create_tables(op, users_table="users", users_id="id")  # users_id_type=sa.Uuid...
        upgrade_2(op, users_table="users", users_id="id")

    def downgrade():
        drop_tables(op)

Each function is a frozen snapshot of one schema change; a later one comes
as a new function (``upgrade_3``...), never as an edit here. An app that ran
:func:`create_tables` in an earlier revision calls :func:`upgrade_2` (and
:func:`downgrade_2` to go back) from a new one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["SCHEMA_VERSION", "create_tables", "downgrade_2", "drop_tables", "upgrade_2"]

#: The schema version :func:`create_tables` and then each ``upgrade_N`` make.
SCHEMA_VERSION = 2

_TZ = sa.DateTime(timezone=True)


def create_tables(
    op: Any, *, users_table: str = "users", users_id: str = "id", users_id_type: Any = sa.Integer
) -> None:
    """Create schema version 1: social-core's five tables and the two linking tables.

    ``users_id_type`` is the type of the users table's primary key (``sa.Uuid``
    or ``sa.BigInteger``, say): the columns that reference it must have it too.
    """
    user_fk = f"{users_table}.{users_id}"
    op.create_table(
        "social_auth_usersocialauth",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("uid", sa.String(255), nullable=False),
        sa.Column("id_key", sa.String(64), nullable=False, server_default=""),
        sa.Column("extra_data", sa.JSON, nullable=False),
        sa.Column(
            "user_id", users_id_type, sa.ForeignKey(user_fk, ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created", _TZ, nullable=False),
        sa.Column("modified", _TZ, nullable=False),
        sa.UniqueConstraint("provider", "uid", name="social_auth_usersocialauth_provider_uid"),
    )
    op.create_index(
        "ix_social_auth_usersocialauth_user_id", "social_auth_usersocialauth", ["user_id"]
    )
    op.create_table(
        "social_auth_nonce",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("server_url", sa.String(255), nullable=False),
        sa.Column("timestamp", sa.Integer, nullable=False),
        sa.Column("salt", sa.String(65), nullable=False),
        sa.UniqueConstraint("server_url", "timestamp", "salt", name="social_auth_nonce_once"),
    )
    op.create_table(
        "social_auth_association",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("server_url", sa.String(255), nullable=False),
        sa.Column("handle", sa.String(255), nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("issued", sa.Integer, nullable=False),
        sa.Column("lifetime", sa.Integer, nullable=False),
        sa.Column("assoc_type", sa.String(64), nullable=False),
        sa.UniqueConstraint("server_url", "handle", name="social_auth_association_handle"),
    )
    op.create_table(
        "social_auth_code",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("timestamp", _TZ, nullable=False),
    )
    op.create_table(
        "social_auth_partial",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token", sa.String(32), nullable=False, unique=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("next_step", sa.Integer, nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("timestamp", _TZ, nullable=False),
    )
    _attempts_table(op, user_fk, users_id_type, scoped=False)
    op.create_table(
        "amazon_link_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", users_id_type, sa.ForeignKey(user_fk, ondelete="SET NULL")),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("amazon_user_id", sa.String(255)),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.Column("created", _TZ, nullable=False),
    )
    op.create_index("ix_amazon_link_events_user_id", "amazon_link_events", ["user_id"])


def upgrade_2(
    op: Any, *, users_table: str = "users", users_id: str = "id", users_id_type: Any = sa.Integer
) -> None:
    """Schema version 2: wrong-password counts per door, pending tries, repeated events.

    ``amazon_link_password_attempts`` is made again with ``scope`` in its key
    and a ``pending`` column: its rows (counts of the last
    ``LINK_LOCKOUT_SECONDS``) are dropped, so a lock in force ends at the
    upgrade. ``amazon_link_events`` gets ``repeats`` (0 for the rows it has).
    """
    op.drop_table("amazon_link_password_attempts")
    _attempts_table(op, f"{users_table}.{users_id}", users_id_type, scoped=True)
    op.add_column(
        "amazon_link_events",
        sa.Column("repeats", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade_2(
    op: Any, *, users_table: str = "users", users_id: str = "id", users_id_type: Any = sa.Integer
) -> None:
    """Back to schema version 1 (the counts are dropped again)."""
    with op.batch_alter_table("amazon_link_events") as batch:
        batch.drop_column("repeats")
    op.drop_table("amazon_link_password_attempts")
    _attempts_table(op, f"{users_table}.{users_id}", users_id_type, scoped=False)


def _attempts_table(op: Any, user_fk: str, users_id_type: Any, *, scoped: bool) -> None:
    """``amazon_link_password_attempts``: version 1's, or (``scoped``) version 2's."""
    user_id = sa.Column(
        "user_id",
        users_id_type,
        sa.ForeignKey(user_fk, ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    version_2 = [
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("pending", sa.Integer, nullable=False),
    ]
    op.create_table(
        "amazon_link_password_attempts",
        user_id,
        *(version_2 if scoped else []),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.Integer, nullable=False),
    )


def drop_tables(op: Any) -> None:
    """Drop what :func:`create_tables` created, in any version (their data goes with them)."""
    for table in (
        "amazon_link_events",
        "amazon_link_password_attempts",
        "social_auth_partial",
        "social_auth_code",
        "social_auth_association",
        "social_auth_nonce",
        "social_auth_usersocialauth",
    ):
        op.drop_table(table)
