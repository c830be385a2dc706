"""The Django sides: the suite's Django user model on social_django, with this library or stock.

Both sides are the same Django project (``tests.django_app``'s users table,
Django's sessions and CSRF middleware, social_django's models) on the same kind
of database. They differ in what an app on social_django selects:

- ours: ``social_amazon_link.django`` (its strategy, storage and URLs),
  ``social_amazon_link.backend.AmazonOAuth2`` and ``AMAZON_PIPELINE``; mobile
  sign-in through ``POST /api/amazon/token``;
- stock: social_django's own strategy, storage and URLs, social-core's
  ``AmazonOAuth2`` (:mod:`bench.stock`) and ``DEFAULT_AUTH_PIPELINE``; mobile
  sign-in through ``POST /client-token``, a view that calls
  ``backend.do_auth(token)`` and ``django.contrib.auth.login``.

Django is configured once per process, so each side runs in a process of its
own: :mod:`bench.django_side` (latencies, CPU) and the load test's workers
(:mod:`bench.worker`).
"""

from __future__ import annotations

from typing import Any

from social_amazon_link.pipelines import AMAZON_PIPELINE
from social_core.backends import utils as backend_utils
from social_core.pipeline import DEFAULT_AUTH_PIPELINE

__all__ = ["DjangoBenchApp", "configure"]

_WRITES = ("INSERT", "UPDATE", "DELETE")
OURS_BACKEND = "social_amazon_link.backend.AmazonOAuth2"
STOCK_BACKEND = "bench.stock.StockAmazonOAuth2"


def configure(database_url: str, config: dict[str, Any], *, side: str) -> None:
    """Configure and set up Django for one side (``config``: :func:`bench.apps.settings`)."""
    import django
    from django.conf import settings

    from tests.django_support import django_settings_for

    ours = side == "ours"
    amazon = {name: value for name, value in config.items() if name.startswith("SOCIAL_AUTH_")}
    amazon.pop("SOCIAL_AUTH_AUTHENTICATION_BACKENDS", None)
    amazon["SOCIAL_AUTH_AMAZON_PIPELINE"] = list(AMAZON_PIPELINE if ours else DEFAULT_AUTH_PIPELINE)
    database = {**django_settings_for(database_url), "CONN_MAX_AGE": None}
    settings.configure(
        SECRET_KEY="bench-secret-key",
        DEBUG=False,
        ALLOWED_HOSTS=["localhost", "127.0.0.1"],
        USE_TZ=True,
        ROOT_URLCONF="bench.django_urls",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "social_django",
            *(["social_amazon_link.django"] if ours else []),
            "tests.django_app",
        ],
        AUTH_USER_MODEL="django_app.User",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        # Sessions in a signed cookie, as the Flask sides' (Flask's default):
        # Django's database sessions would add their own writes to every
        # sign-in, both sides alike, and measure Django rather than the sign-in.
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        # As in a new project's settings.py (CommonMiddleware sets Content-Length:
        # the load test's clients keep their connections alive).
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        # One connection per thread, kept (a deployment's CONN_MAX_AGE, the
        # Flask sides' pool sized to the threads).
        DATABASES={"default": database},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        AUTHENTICATION_BACKENDS=[
            OURS_BACKEND if ours else STOCK_BACKEND,
            "django.contrib.auth.backends.ModelBackend",
        ],
        SOCIAL_AUTH_STRATEGY=(
            "social_amazon_link.django.strategy.DjangoStrategy"
            if ours
            else "social_django.strategy.DjangoStrategy"
        ),
        SOCIAL_AUTH_STORAGE=(
            "social_amazon_link.django.storage.DjangoStorage"
            if ours
            else "social_django.models.DjangoStorage"
        ),
        SOCIAL_AUTH_JSONFIELD_ENABLED=True,
        SOCIAL_AUTH_LOGIN_REDIRECT_URL="/me",
        SOCIAL_AUTH_LOGIN_URL="/login",
        BENCH_SIDE=side,
        LOGGING_CONFIG=None,
        **amazon,
    )
    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class SQLCounter:
    """Counts the SQL statements this thread's Django connection sends, and its writes."""

    def __init__(self) -> None:
        from django.db import connection

        self.statements = 0
        self.writes = 0
        connection.execute_wrappers.append(self._count)

    def _count(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.statements += 1
        if sql.lstrip()[:6].upper() in _WRITES:
            self.writes += 1
        return execute(sql, params, many, context)

    def snapshot(self) -> tuple[int, int]:
        return self.statements, self.writes


class _WSGIApp:
    """What :mod:`bench.signins` asks of an app: ``test_client`` (Werkzeug's, over WSGI)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    def test_client(self, use_cookies: bool = True) -> Any:
        from werkzeug.test import Client

        class LoopbackClient(Client):
            """From loopback, as Flask's test client is (rule 1 takes plain HTTP from it)."""

            def open(self, *args: Any, **kwargs: Any) -> Any:
                environ = {"REMOTE_ADDR": "127.0.0.1", **(kwargs.pop("environ_base", None) or {})}
                return super().open(*args, environ_base=environ, **kwargs)

        return LoopbackClient(self.handler, use_cookies=use_cookies)


class DjangoBenchApp:
    """A :class:`bench.apps.BenchApp` for a configured Django side, in this process."""

    def __init__(self, side: str) -> None:
        from django.core.wsgi import get_wsgi_application

        self.side = side
        self.app = _WSGIApp(get_wsgi_application())
        self.sql = SQLCounter()

    @property
    def token_path(self) -> str:
        return "/api/amazon/token" if self.side == "ours" else "/client-token"

    def token_request(self, token: str) -> dict[str, Any]:
        if self.side == "ours":
            return {"json": {"access_token": token}}
        return {"data": {"access_token": token}}

    def activate(self) -> None:
        backend_utils.BACKENDSCACHE.clear()

    def start_web(self, browser: Any) -> Any:
        """Press Login with Amazon: social_django starts a sign-in on a POST with its token."""
        token = browser.get("/bench/csrf").get_json()["csrf_token"]
        return browser.post("/login/amazon/", data={"csrfmiddlewaretoken": token})

    def close(self) -> None:
        from django.db import connections

        connections.close_all()
