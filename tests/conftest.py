from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, make_url, text
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from tests import sample_app
from tests.postgres import postgres_server

CLIENT_ID = "amzn1.application-oa2-client.0123456789abcdef"
CLIENT_SECRET = "test-client-secret-do-not-log"


class Served:
    """An app served over real loopback HTTP in a background thread (the Flask
    sample app; :class:`DjangoServed`, the Django one, has the same methods)."""

    framework = "flask"

    def __init__(
        self, app: Any, host: str = "127.0.0.1", *, tls: bool = False, threaded: bool = True
    ) -> None:
        """``host``: the address to listen on; ``tls``: over HTTPS, with a
        certificate made up on the spot (clients pass ``verify=False``);
        ``threaded=False``: one thread serves every request, one after another."""
        self.app = app
        ssl_context = "adhoc" if tls else None
        self.server = make_server(host, 0, app, threaded=threaded, ssl_context=ssl_context)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        engine = getattr(self.app, "extensions", {}).get("test_engine")
        if engine is not None:
            engine.dispose()

    @property
    def engine(self) -> Any:
        """A SQLAlchemy engine on the app's database, for tests that read or write it."""
        return self.app.extensions["test_engine"]

    def start_sign_in(
        self, browser: requests.Session, query: str = "", backend: str = "amazon", **headers: str
    ) -> requests.Response:
        """The person clicks "Login with Amazon" (a link to ``/login/amazon/`` here)."""
        url = f"{self.url}/login/{backend}/{query}"
        return browser.get(url, headers=headers, allow_redirects=False)

    def session_data(self, browser: requests.Session) -> dict[str, Any]:
        """The app's session for ``browser``, as its signed cookie holds it."""
        serializer = self.app.session_interface.get_signing_serializer(self.app)
        data: dict[str, Any] = serializer.loads(browser.cookies["session"])
        return data

    def purge_command(self) -> str:
        """What the purge command prints (``flask amazon-link purge``)."""
        result = self.app.test_cli_runner().invoke(args=["amazon-link", "purge"])
        assert result.exit_code == 0, result.output
        return str(result.output)

    @property
    def secret_key(self) -> str:
        """The app's ``SECRET_KEY``."""
        return str(self.app.secret_key)

    @contextmanager
    def storage(self) -> Iterator[Any]:
        """The app's storage class (``SOCIAL_AUTH_STORAGE``), bound to its database."""
        from social_amazon_link.flask.storage import FlaskStorage

        with self.app.app_context():
            yield FlaskStorage
            self.app.extensions["test_session"].remove()

    @contextmanager
    def backend(self) -> Iterator[Any]:
        """The app's Amazon backend, as a request of the app would load it."""
        from social_flask.utils import load_backend, load_strategy

        with self.app.test_request_context("/"):
            yield load_backend(load_strategy(), "amazon", redirect_uri="/complete/amazon/")

    def add_user(
        self, username: str, email: str | None, password: str | None = None, **fields: Any
    ) -> int:
        """A local account, as the app's own registration would create it."""
        session = self.app.extensions["test_session"]
        user = sample_app.User(
            username=username,
            email=email,
            password_hash=generate_password_hash(password) if password else None,
            **fields,
        )
        session.add(user)
        session.commit()
        user_id = int(user.id)
        session.remove()
        return user_id

    def link(self, user_id: int, amazon_user_id: str, **extra_data: Any) -> None:
        """An existing Amazon link, as an earlier sign-in would have written it."""
        from social_amazon_link.flask.storage import FlaskStorage

        with self.app.app_context():
            user = FlaskStorage.user.get_user(user_id)
            social = FlaskStorage.user.create_social_auth(user, amazon_user_id, "amazon", "user_id")
            if extra_data:
                social.set_extra_data(extra_data)
            self.app.extensions["test_session"].remove()

    def events(self) -> list[tuple[Any, ...]]:
        """The security events, oldest first: (event, user_id, amazon_user_id, detail)."""
        return [
            tuple(row)
            for row in self.query(
                "SELECT event, user_id, amazon_user_id, detail FROM amazon_link_events ORDER BY id"
            )
        ]

    def links(self) -> list[tuple[Any, ...]]:
        """The links, oldest first: (user_id, Amazon user_id)."""
        rows = self.query("SELECT user_id, uid FROM social_auth_usersocialauth ORDER BY id")
        return [tuple(row) for row in rows]

    def failures(self, user_id: int) -> int:
        """Wrong passwords (or codes) counted against a local account."""
        rows = self.query(
            "SELECT failures FROM amazon_link_password_attempts WHERE user_id = :u", u=user_id
        )
        return int(rows[0].failures) if rows else 0

    def query_write(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Read the app's database directly, as a test asserting state does."""
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))


class DjangoServed(Served):
    """The Django sample app (tests/django_app/) served over loopback HTTP.

    Django's settings are the process's: ``settings`` apply from start to
    :meth:`close` (``override_settings``; a None value removes a setting).
    """

    framework = "django"

    def __init__(self, database_url: str, settings: dict[str, Any], threaded: bool = True) -> None:
        from django.conf import settings as django_settings
        from django.core.handlers.wsgi import WSGIHandler
        from django.test.utils import override_settings

        self.overrides = override_settings(**{k: v for k, v in settings.items() if v is not None})
        self.overrides.enable()
        for name in [k for k, v in settings.items() if v is None]:
            if hasattr(django_settings, name):
                delattr(django_settings, name)
        self._engine = create_engine(database_url, pool_pre_ping=True)
        super().__init__(WSGIHandler(), threaded=threaded)

    def close(self) -> None:
        super().close()
        self._engine.dispose()
        self.overrides.disable()

    @property
    def engine(self) -> Any:
        return self._engine

    def start_sign_in(
        self, browser: requests.Session, query: str = "", backend: str = "amazon", **headers: str
    ) -> requests.Response:
        """social_django starts a sign-in on a POST with the CSRF token only: the
        form on the app's page posts it."""
        token = browser.get(f"{self.url}/csrf-token", headers=headers).json()["csrf_token"]
        return browser.post(
            f"{self.url}/login/{backend}/{query}",
            data={"csrf_token": token},
            headers=headers,
            allow_redirects=False,
        )

    def session_data(self, browser: requests.Session) -> dict[str, Any]:
        """The session the app keeps for ``browser``'s cookie (Django's database sessions)."""
        from django.contrib.sessions.backends.db import SessionStore

        return dict(SessionStore(session_key=browser.cookies["sessionid"]).load())

    def purge_command(self) -> str:
        """``manage.py amazon_link_purge``."""
        from django.core.management import call_command

        out = StringIO()
        call_command("amazon_link_purge", stdout=out)
        return out.getvalue()

    @property
    def secret_key(self) -> str:
        from django.conf import settings

        return str(settings.SECRET_KEY)

    @contextmanager
    def storage(self) -> Iterator[Any]:
        from social_amazon_link.django.storage import DjangoStorage

        yield DjangoStorage

    @contextmanager
    def backend(self) -> Iterator[Any]:
        from django.contrib.sessions.backends.db import SessionStore
        from django.test import RequestFactory
        from social_django.utils import load_strategy

        from social_amazon_link.flow.paused import load_backend

        request = RequestFactory().get("/")
        request.session = SessionStore()
        yield load_backend(load_strategy(request), "amazon")

    def add_user(
        self, username: str, email: str | None, password: str | None = None, **fields: Any
    ) -> int:
        from tests.django_app.models import User

        # No password: Django's unusable one, as a Django app marks an account
        # that signs in with Amazon only.
        user = User.objects.create_user(username, email, password, **fields)
        return int(user.pk)

    def link(self, user_id: int, amazon_user_id: str, **extra_data: Any) -> None:
        from social_amazon_link.django.storage import DjangoStorage

        user = DjangoStorage.user.get_user(user_id)
        social = DjangoStorage.user.create_social_auth(user, amazon_user_id, "amazon", "user_id")
        if extra_data:
            social.set_extra_data(extra_data)


FRAMEWORKS = ("flask", "django")


def frameworks(config: pytest.Config) -> list[str]:
    """The frameworks ``--framework`` names, refusing any other."""
    return _option_list(config, "--framework", FRAMEWORKS)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--framework",
        default="flask,django",
        help="web frameworks to run the HTTP-level tests on (comma-separated: flask, django)",
    )
    parser.addoption(
        "--db",
        default="sqlite,postgres",
        help="databases to run the database tests on (comma-separated: sqlite, postgres)",
    )


DATABASE_KINDS = ("sqlite", "postgres")


def database_kinds(config: pytest.Config) -> list[str]:
    """The databases ``--db`` names, refusing any other (a typo must not pick one)."""
    return _option_list(config, "--db", DATABASE_KINDS)


def _option_list(config: pytest.Config, option: str, known: tuple[str, ...]) -> list[str]:
    names = [name.strip() for name in config.getoption(option).split(",") if name.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise pytest.UsageError(
            f"{option} takes a comma-separated list of {', '.join(known)}, not {unknown}"
        )
    return names


def pytest_configure(config: pytest.Config) -> None:
    database_kinds(config)  # a wrong --db stops the run before anything starts
    frameworks(config)
    config.addinivalue_line(
        "markers", "flask_only: reaches into the Flask app itself; run on Flask alone"
    )
    config.addinivalue_line("markers", "django_only: what only the Django integration has")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that touches the app's database runs once per database.
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("db_kind", database_kinds(metafunc.config))
    # Every test of the served sample app runs once per web framework.
    if "framework" in metafunc.fixturenames:
        names = frameworks(metafunc.config)
        for marker in ("flask_only", "django_only"):
            if metafunc.definition.get_closest_marker(marker):
                names = [name for name in names if name == marker.split("_")[0]]
        metafunc.parametrize("framework", names)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def database_url(db_kind: str, tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.sqlite3'}"
        return
    server_url = make_url(request.getfixturevalue("postgres_url"))
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def django_db(database_url: str) -> Iterator[str]:
    """Django set up (once per process), its ``default`` database this test's fresh
    one, migrated; every connection closed after (:mod:`tests.django_support`)."""
    from tests.django_support import django_database

    with django_database(database_url) as url:
        yield url


def emulator_settings(lwa_emulator: Any) -> dict[str, Any]:
    """The Amazon settings of a sample app wired to the emulator."""
    return {
        "SOCIAL_AUTH_AMAZON_KEY": CLIENT_ID,
        "SOCIAL_AUTH_AMAZON_SECRET": CLIENT_SECRET,
        "SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL": f"{lwa_emulator.url}/ap/oa",
        "SOCIAL_AUTH_AMAZON_API_URL": lwa_emulator.url,
    }


@contextmanager
def serving(
    lwa_emulator: Any, database_url: str, framework: str = "flask"
) -> Iterator[Callable[..., Served]]:
    """``start(**settings)`` builds the sample app (Flask's, or Django's: Django
    set up by ``django_db``) wired to the emulator on ``database_url`` and
    serves it on loopback, until the block ends. A None setting is left unset."""
    served: list[Served] = []

    def start(**settings: Any) -> Served:
        config = {**emulator_settings(lwa_emulator), **settings}
        server: Served
        if framework == "django":
            server = DjangoServed(database_url, config)
        else:
            config = {k: v for k, v in config.items() if v is not None}
            server = Served(sample_app.create_app(database_url, config))
        served.append(server)
        lwa_emulator.add_client(
            CLIENT_ID, CLIENT_SECRET, redirect_uris=[f"{server.url}/complete/amazon/"]
        )
        return server

    try:
        yield start
    finally:
        for server in reversed(served):
            server.close()


@pytest.fixture
def serve_app(
    lwa_emulator: Any, database_url: str, framework: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Served]]:
    """Build the sample app (Flask's or Django's) wired to the emulator and serve it on loopback."""
    if framework == "django":
        request.getfixturevalue("django_db")
    with serving(lwa_emulator, database_url, framework) as start:
        yield start


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    """A cookie-keeping HTTP client standing in for the person's browser."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def site(
    database_url: str, framework: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The demo and its emulator, served as ``python -m demo`` serves them (:class:`DemoSite`)."""
    from tests.browser_support import DemoSite

    monkeypatch.chdir(tmp_path)  # the demo makes ./instance
    demo = DemoSite.start(database_url, framework)
    yield demo
    demo.close()
