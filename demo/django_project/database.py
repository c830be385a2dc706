"""``DATABASE_URL`` (an SQLAlchemy URL, as the Flask demo takes) as Django's ``DATABASES`` entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url


def django_database(url: str) -> dict[str, Any]:
    """``sqlite:///path`` or ``postgresql[+psycopg]://user:password@host:port/name``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # WAL and a busy timeout, as docs/django.md ("On SQLite") advises.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": parsed.database,
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
        }
    if parsed.get_backend_name() == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.database,
            "USER": parsed.username or "",
            "PASSWORD": parsed.password or "",
            "HOST": parsed.host or "",
            "PORT": str(parsed.port or ""),
        }
    raise ValueError(f"the Django demo runs on SQLite or PostgreSQL, not {parsed.drivername}")
