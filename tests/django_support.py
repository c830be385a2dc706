"""Django for the test suite: set up once per process, each test on its own database.

Nothing here runs until a Django test asks for it (the ``django_db`` fixture
in ``conftest.py``), so a run of Flask tests alone never imports Django. Once
set up, Django stays for the process (its app registry is process-wide); it
changes nothing the Flask tests use: no environment variable is set
(``settings.configure`` from :mod:`tests.django_settings`), and the Flask
integration keeps its own storage bindings.

Each test gets the fresh database ``database_url`` gives (a SQLite file, or a
new PostgreSQL database), already migrated: the migrations run once per
process into a template (a SQLite file, copied; a PostgreSQL database, which
``CREATE DATABASE ... TEMPLATE`` clones), and Django's ``default`` connection
is pointed at the test's copy. After the test every connection to it is
closed, in whichever thread opened it.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

SETTINGS_MODULE = "tests.django_settings"

_setup_lock = threading.Lock()
_ready = False
#: Every Django connection opened in this process, to close after each test
#: (Django's connections are per thread: a test's worker threads open their own).
_opened: weakref.WeakSet[Any] = weakref.WeakSet()
#: The migrated template per database server ("sqlite", or the server's URL).
_templates: dict[str, str] = {}


def setup_django() -> None:
    """Configure Django from :mod:`tests.django_settings` and load its apps, once."""
    global _ready
    with _setup_lock:
        if _ready:
            return
        import django
        from django.conf import settings
        from django.db.backends.signals import connection_created

        if not settings.configured:
            module = importlib.import_module(SETTINGS_MODULE)
            settings.configure(
                **{name: getattr(module, name) for name in dir(module) if name.isupper()}
            )
        django.setup()
        connection_created.connect(_track, weak=False, dispatch_uid="tests.django_support")
        _ready = True


def _track(sender: Any, connection: Any, **kwargs: Any) -> None:
    _opened.add(connection)


def django_settings_for(database_url: str) -> dict[str, Any]:
    """Django's ``DATABASES`` entry for a SQLAlchemy URL of the suite (SQLite or PostgreSQL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": url.database,
            # As configure_sqlite does for the SQLAlchemy storage: WAL (readers
            # never wait for the writer). The wait for the write lock is longer
            # than its 5 s: a Django sign-in writes more (its sessions live in
            # the database), and SQLite's busy handler retries only every 100 ms
            # once a writer has waited 300 ms, so of fifty at once on a loaded
            # machine the oldest can lose to newer ones past 5 s (docs/django.md).
            "OPTIONS": {
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.database,
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.host or "",
        "PORT": str(url.port or ""),
        "OPTIONS": {"connect_timeout": 5},
    }


def point_default_at(database_url: str) -> None:
    """Make Django's ``default`` connection use this database (the storage's second
    connection follows: it is made again when ``default``'s settings change)."""
    from django.db import connections

    close_connections()
    entry = django_settings_for(database_url)
    connections.settings["default"] = connections.configure_settings({"default": entry})["default"]


def close_connections() -> None:
    """Close every Django connection of the process, whichever thread opened it."""
    from django.db import connections

    for alias in list(connections.settings):
        try:
            del connections[alias]  # this thread's wrapper: made anew on next use
        except AttributeError:
            pass
    for wrapper in list(_opened):
        raw = wrapper.connection
        wrapper.connection = None
        if raw is not None:
            try:
                raw.close()
            except Exception:  # already broken (the test stopped the server)
                pass
    _opened.clear()


def _migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    close_connections()


def _sqlite_template() -> str:
    path = _templates.get("sqlite")
    if path is None:
        folder = Path(tempfile.mkdtemp(prefix="sal-django-"))
        path = str(folder / "template.sqlite3")
        point_default_at(f"sqlite:///{path}")
        _migrate()
        # One file: the journal folded back in, so a copy is the whole database.
        import sqlite3

        with sqlite3.connect(path) as plain:
            plain.execute("PRAGMA journal_mode=DELETE")
        _templates["sqlite"] = path
    return path


def _postgres_template(database_url: str) -> str:
    server = make_url(database_url).set(database="postgres")
    key = server.render_as_string(hide_password=False)
    name = _templates.get(key)
    if name is None:
        name = f"django_template_{uuid.uuid4().hex[:12]}"
        _run_on_server(server, f'CREATE DATABASE "{name}"')
        point_default_at(server.set(database=name).render_as_string(hide_password=False))
        _migrate()
        _templates[key] = name
    return name


def _run_on_server(server: Any, statement: str) -> None:
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


def migrated_copy(database_url: str) -> None:
    """Fill the test's fresh, empty database with the migrated schema (from the template)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        shutil.copyfile(_sqlite_template(), str(url.database))
        return
    template = _postgres_template(database_url)
    server = url.set(database="postgres")
    # The test's database was made empty by the fixture: made again, as a clone.
    _run_on_server(server, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    _run_on_server(server, f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"')


def forget_server(database_url: str) -> None:
    """Forget the template made on ``database_url``'s server: a server a test
    owns and removes (a later one may get its port)."""
    _templates.pop(make_url(database_url).set(database="postgres").render_as_string(False), None)


@contextmanager
def django_database(database_url: str) -> Iterator[str]:
    """Django set up, its ``default`` database this test's own, migrated; closed after."""
    setup_django()
    migrated_copy(database_url)
    point_default_at(database_url)
    try:
        yield database_url
    finally:
        close_connections()
