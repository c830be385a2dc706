"""What only the Django integration has: system checks, the purge command,
error reports without the typed password, social_django's middleware kept
from the library's pages, the app's own sign-in and sign-out ending a
waiting prompt (Django's signals)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest

from tests.flows import answer_prompt, sign_in

GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "correct horse battery"
TYPED = "hunter2-typed-by-grace"


@pytest.fixture
def django_settings() -> Iterator[Any]:
    """Django set up (no database needed), its settings restored after the test."""
    from tests.django_support import setup_django

    setup_django()
    from django.conf import settings
    from django.test.utils import override_settings

    with override_settings(
        SOCIAL_AUTH_AMAZON_KEY="amzn1.application-oa2-client.checks",
        SOCIAL_AUTH_AMAZON_SECRET="checks-secret",
    ):
        yield settings


def amazon_checks() -> list[tuple[str, str]]:
    from django.core import checks

    return [
        (message.id, message.msg)
        for message in checks.run_checks(tags=["social_amazon_link"])
        if message.id and message.id.startswith("social_amazon_link.")
    ]


def ids(found: list[tuple[str, str]]) -> list[str]:
    return sorted(check_id for check_id, _ in found)


def test_the_test_settings_pass_the_checks(django_settings):
    from django.core.management import call_command

    assert amazon_checks() == []
    out = StringIO()
    call_command("check", stdout=out)
    assert "System check identified no issues" in out.getvalue()


def test_no_amazon_backend_is_a_check_error(django_settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError
    from django.test.utils import override_settings

    with override_settings(AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"]):
        assert ids(amazon_checks()) == ["social_amazon_link.E001"]
        # manage.py check stops on it.
        with pytest.raises(SystemCheckError, match="AmazonOAuth2 is not in AUTHENTICATION"):
            call_command("check", stdout=StringIO(), stderr=StringIO())


def test_missing_key_and_secret_and_a_bad_region_are_check_errors(django_settings):
    from django.test.utils import override_settings

    with override_settings(SOCIAL_AUTH_AMAZON_REGION="MARS"):
        del django_settings.SOCIAL_AUTH_AMAZON_KEY
        django_settings.SOCIAL_AUTH_AMAZON_SECRET = " "
        found = amazon_checks()
    assert ids(found) == [
        "social_amazon_link.E002",
        "social_amazon_link.E002",
        "social_amazon_link.E003",
    ]
    text = "\n".join(message for _, message in found)
    assert "SOCIAL_AUTH_AMAZON_KEY: missing or empty" in text
    assert "SOCIAL_AUTH_AMAZON_SECRET: missing or empty" in text
    assert "'MARS' is not a region: use one of NA, EU, FE." in text
    assert "checks-secret" not in text


def test_every_other_bad_setting_is_a_check_error(django_settings):
    from django.test.utils import override_settings

    with override_settings(
        SOCIAL_AUTH_AMAZON_SCOPE=["profile", "email"],
        SOCIAL_AUTH_AMAZON_BEHIND_TLS_PROXY="false",
    ):
        found = amazon_checks()
    assert ids(found) == ["social_amazon_link.E004", "social_amazon_link.E004"]
    assert {message.split(":")[0] for _, message in found} == {
        "SOCIAL_AUTH_AMAZON_SCOPE",
        "SOCIAL_AUTH_AMAZON_BEHIND_TLS_PROXY",
    }


def test_a_storage_short_of_the_contract_is_a_check_error(django_settings):
    from django.test.utils import override_settings

    # social_django's own storage: no identity lock, no attempt counters.
    with override_settings(SOCIAL_AUTH_STORAGE="social_django.models.DjangoStorage"):
        found = amazon_checks()
    assert ids(found) == ["social_amazon_link.E005"]
    assert "user.lock_identity" in found[0][1]
    assert "link_attempts.reserve" in found[0][1]


def test_social_djangos_middleware_without_ours_after_it_is_a_check_warning(django_settings):
    from django.test.utils import override_settings

    ours = "social_amazon_link.django.middleware.AmazonLinkMiddleware"
    social = "social_django.middleware.SocialAuthExceptionMiddleware"
    others = [name for name in django_settings.MIDDLEWARE if name not in (ours, social)]
    for middleware in ([*others, social], [*others, ours, social]):
        with override_settings(MIDDLEWARE=middleware):
            assert ids(amazon_checks()) == ["social_amazon_link.W001"]
    for middleware in ([*others, social, ours], others):
        with override_settings(MIDDLEWARE=middleware):
            assert amazon_checks() == []


def test_social_djangos_own_strategy_is_a_check_error(django_settings):
    from django.test.utils import override_settings

    with override_settings(SOCIAL_AUTH_STRATEGY="social_django.strategy.DjangoStrategy"):
        assert ids(amazon_checks()) == ["social_amazon_link.E006"]


# -- served: the command, error reports, the middleware, the signals -----------


@pytest.mark.django_only
def test_amazon_link_purge_deletes_what_is_too_old(serve_app, lwa_emulator, browser):
    from django.core.management import call_command

    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    app.add_user("grace", "grace@example.com", PASSWORD)
    assert "/link/amazon/password" in sign_in(browser, app, GRACE).url
    out = StringIO()
    call_command("amazon_link_purge", stdout=out)
    assert out.getvalue().startswith("purged 0 OAuth2 states, 0 paused sign-ins")
    assert len(app.query("SELECT id FROM social_auth_partial")) == 1

    app.query_write("UPDATE social_auth_partial SET timestamp = :old", old=_long_ago())
    out = StringIO()
    call_command("amazon_link_purge", stdout=out)
    assert "0 OAuth2 states, 1 paused sign-ins" in out.getvalue()
    assert app.query("SELECT id FROM social_auth_partial") == []


def _long_ago() -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time.time() - 7 * 24 * 3600, UTC)


def broken_checker(user: Any, password: str) -> bool:
    """An app's password checker with a bug: the typed password is in its frame."""
    raise RuntimeError("the password service is down")


class _Reports(logging.Handler):
    """What Django would mail the admins (``AdminEmailHandler``'s report), kept."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from django.views.debug import ExceptionReporter

        assert record.exc_info is not None
        request = getattr(record, "request", None)
        reporter = ExceptionReporter(request, *record.exc_info, is_email=True)
        self.texts += [reporter.get_traceback_text(), reporter.get_traceback_html()]


@pytest.mark.django_only
def test_a_typed_password_never_reaches_djangos_error_report(serve_app, lwa_emulator, browser):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_PASSWORD_CHECKER=f"{__name__}.broken_checker")
    app.add_user("grace", "grace@example.com", PASSWORD)
    prompt = sign_in(browser, app, GRACE)
    reports = _Reports()
    logger = logging.getLogger("django.request")
    logger.addHandler(reports)
    try:
        failed = answer_prompt(browser, prompt, password=TYPED)
    finally:
        logger.removeHandler(reports)
    assert failed.status_code == 500
    assert len(reports.texts) == 2
    text, html = reports.texts
    # The report is there, with the request and the frames' variables...
    assert "the password service is down" in text
    assert "broken_checker" in text
    assert "password" in html and "********************" in html
    # ...and the password nowhere in it.
    assert TYPED not in text
    assert TYPED not in html


@pytest.mark.django_only
def test_social_djangos_middleware_keeps_the_librarys_409_and_429(serve_app, lwa_emulator, browser):
    from django.conf import settings

    assert "social_django.middleware.SocialAuthExceptionMiddleware" in settings.MIDDLEWARE
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_MAX_PASSWORD_ATTEMPTS=1)
    app.add_user("grace", "grace@example.com", PASSWORD)
    prompt = sign_in(browser, app, GRACE)
    locked = answer_prompt(browser, prompt, password="wrong")
    assert locked.status_code == 403
    again = answer_prompt(browser, locked, password=PASSWORD)
    assert again.status_code == 429
    assert 'data-error-code="too_many_attempts"' in again.text
    assert "Try again in 15 minutes." in again.text

    other = app.add_user("alan", "alan@example.com", "pw-alan-123")
    app.link(other, GRACE)
    browser.cookies.clear()
    browser.post(f"{app.url}/test-login", data={"username": "grace", "password": PASSWORD})
    in_use = sign_in(browser, app, GRACE)
    assert in_use.status_code == 409
    assert 'data-error-code="identity_in_use"' in in_use.text
    assert app.links() == [(other, GRACE)]


@pytest.mark.parametrize("how", ["sign-in", "sign-out"])
def test_the_apps_own_sign_in_or_out_ends_a_waiting_prompt(serve_app, lwa_emulator, browser, how):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    app.add_user("grace", "grace@example.com", PASSWORD)
    app.add_user("alan", "alan@example.com", "pw-alan-123")
    prompt = sign_in(browser, app, GRACE)
    assert len(app.query("SELECT id FROM social_auth_partial")) == 1
    signed_in = browser.post(
        f"{app.url}/test-login", data={"username": "alan", "password": "pw-alan-123"}
    )
    assert signed_in.json()["authenticated"] is True
    if how == "sign-out":
        browser.post(f"{app.url}/test-logout")
        assert browser.get(f"{app.url}/me").status_code == 401
    assert app.query("SELECT id FROM social_auth_partial") == []
    answer = answer_prompt(browser, prompt, password=PASSWORD)
    assert answer.status_code == 400
    assert 'data-error-code="invalid_partial"' in answer.text or "invalid_request" in answer.text
    assert app.links() == []


@pytest.mark.django_only
def test_a_sign_in_starts_on_a_post_with_the_csrf_token_only(serve_app, browser):
    app = serve_app()
    # social_django 8: a GET (a link, an <img> on another site) starts nothing.
    assert browser.get(f"{app.url}/login/amazon/", allow_redirects=False).status_code == 405
    refused = browser.post(f"{app.url}/login/amazon/", data={}, allow_redirects=False)
    assert refused.status_code == 400
    assert 'data-error-code="invalid_request"' in refused.text
    assert "The form expired. Please reload the page and try again." in refused.text
    assert app.query("SELECT id FROM social_auth_nonce") == []
    started = app.start_sign_in(browser)
    assert started.status_code == 302 and "/ap/oa?" in started.headers["Location"]


@pytest.mark.django_only
def test_the_api_needs_no_csrf_token_but_takes_json_only(serve_app, browser, lwa_emulator):
    from django.conf import settings

    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    token = lwa_emulator.mint_token("amzn1.application-oa2-client.0123456789abcdef", GRACE)
    # What a cross-site form can send: refused before anything is read.
    form = browser.post(f"{app.url}/api/amazon/token", data={"access_token": token})
    assert (form.status_code, form.json()) == (
        400,
        {"error": "invalid_request", "message": "Content-Type must be application/json."},
    )
    assert app.query("SELECT id FROM users") == []
    # A phone's JSON, without any CSRF cookie or token: signed in.
    answer = browser.post(f"{app.url}/api/amazon/token", json={"access_token": token})
    assert (answer.status_code, answer.json()["status"]) == (200, "authenticated")
    assert browser.get(f"{app.url}/me").json()["username"] == "GraceHopper"


@pytest.mark.django_only
@pytest.mark.parametrize("how", ["web", "api"])
def test_max_session_length_applies_to_a_sign_in_with_amazon(serve_app, browser, lwa_emulator, how):
    # As social_django's own login sets it: the app's setting holds for Amazon too.
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(SOCIAL_AUTH_MAX_SESSION_LENGTH=120)
    if how == "web":
        assert sign_in(browser, app, GRACE).json()["username"] == "GraceHopper"
    else:
        token = lwa_emulator.mint_token("amzn1.application-oa2-client.0123456789abcdef", GRACE)
        answer = browser.post(f"{app.url}/api/amazon/token", json={"access_token": token})
        assert answer.json()["status"] == "authenticated"
    cookie = next(c for c in browser.cookies if c.name == "sessionid")
    assert cookie.expires is not None and 100 <= cookie.expires - time.time() <= 125
    assert browser.get(f"{app.url}/me").json()["username"] == "GraceHopper"


_WITHOUT_FLASK = """
import importlib, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed")
        return None

BLOCKED = {"flask", "flask_login", "flask_wtf", "social_flask", "sqlalchemy", "werkzeug", "alembic"}
sys.meta_path.insert(0, Refuse())
import django
from django.conf import settings
module = importlib.import_module("tests.django_settings")
settings.configure(
    **{name: getattr(module, name) for name in dir(module) if name.isupper()},
    SOCIAL_AUTH_AMAZON_KEY="amzn1.application-oa2-client.0123456789abcdef",
    SOCIAL_AUTH_AMAZON_SECRET="a-secret",
)
django.setup()
for name in (
    "social_amazon_link.django.urls",
    "social_amazon_link.django.middleware",
    "social_amazon_link.django.management.commands.amazon_link_purge",
):
    importlib.import_module(name)
from django.core.management import call_command
call_command("check")
print("imported:", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_the_django_integration_needs_neither_flask_nor_sqlalchemy(tmp_path):
    # What `pip install social-amazon-link[django]` installs: no Flask, no SQLAlchemy.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FLASK],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported: []" in done.stdout
    assert "System check identified no issues" in done.stdout
