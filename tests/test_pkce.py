"""PKCE on the web flow (setting ``PKCE``), over loopback HTTP: the sample app and the emulator.

The authorize redirect carries an S256 ``code_challenge``; the token request
its ``code_verifier``, which the emulator checks as Amazon does. The verifier
lives in the sign-in's transaction in the session only: never in the
database, never in a log, and gone when the app signs someone in or out.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import inspect

from social_amazon_link.backend import AmazonOAuth2
from social_amazon_link.settings import AmazonSettingsError, check_settings
from tests.conftest import Served
from tests.flows import consent, start_sign_in
from tests.test_shared_browser import local_sign_in

GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "correct horse battery"
VERIFIER_CHARS = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.fixture
def grace(lwa_emulator: Any) -> None:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The form of every token request the backend sends, as it sends it."""
    sent: list[dict[str, Any]] = []
    original = AmazonOAuth2.request_access_token

    def recording(self: AmazonOAuth2, url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        sent.append(dict(kwargs.get("data") or {}))
        return original(self, url, *args, **kwargs)

    monkeypatch.setattr(AmazonOAuth2, "request_access_token", recording)
    return sent


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def session_of(browser: requests.Session, app: Served) -> dict[str, Any]:
    """The app's session as its signed cookie holds it."""
    return app.session_data(browser)


def verifier_of(browser: requests.Session, app: Served, state: str) -> str:
    """The verifier social-core keeps in the sign-in's transaction."""
    verifier: str = session_of(browser, app)[f"amazon_oauth2_state_{state}"]["code_verifier"]
    return verifier


def database_text(app: Served) -> str:
    """Every row of every table, as text: to look for what must never be stored."""
    engine = app.engine
    rows = [
        repr(list(row))
        for table in inspect(engine).get_table_names()
        for row in app.query(f'SELECT * FROM "{table}"')
    ]
    return "\n".join(rows)


def me(browser: requests.Session, app: Served) -> dict[str, Any]:
    answer: dict[str, Any] = browser.get(f"{app.url}/me").json()
    return answer


def test_the_authorize_redirect_carries_an_s256_challenge_of_the_sessions_verifier(
    serve_app, browser, grace
):
    app = serve_app()

    query = query_of(start_sign_in(browser, app))

    assert query["code_challenge_method"] == ["S256"]
    verifier = verifier_of(browser, app, query["state"][0])
    assert VERIFIER_CHARS.fullmatch(verifier)
    assert query["code_challenge"] == [s256(verifier)]
    # Two sign-ins, two verifiers.
    again = query_of(start_sign_in(browser, app))
    assert again["code_challenge"] != query["code_challenge"]


def test_a_web_sign_in_with_pkce_completes_and_stores_the_verifier_nowhere(
    serve_app, browser, grace, lwa_emulator, caplog
):
    caplog.set_level(logging.DEBUG)
    app = serve_app()
    authorize = start_sign_in(browser, app)
    verifier = verifier_of(browser, app, query_of(authorize)["state"][0])

    final = browser.get(consent(browser, authorize, GRACE, "allow"))

    assert final.status_code == 200
    user = me(browser, app)
    assert (user["authenticated"], user["email"]) == (True, "grace@example.com")
    assert app.links() == [(user["id"], GRACE)]
    assert lwa_emulator.stats()["requests"].get("token") == 1
    assert verifier not in database_text(app)
    assert verifier not in caplog.text
    # The transaction (and its verifier) ended with the callback.
    assert not [key for key in session_of(browser, app) if key.startswith("amazon_oauth2_state_")]


def test_the_sign_in_fails_if_the_library_stops_sending_the_verifier(
    serve_app, browser, grace, lwa_emulator, monkeypatch
):
    # What test_a_web_sign_in_with_pkce_completes guards: the emulator, as
    # Amazon, refuses a code whose challenge has no verifier with it.
    original = AmazonOAuth2.auth_complete_params

    def without_verifier(self: AmazonOAuth2, state: Any = None) -> dict[str, Any]:
        params = dict(original(self, state))
        params.pop("code_verifier")
        return params

    monkeypatch.setattr(AmazonOAuth2, "auth_complete_params", without_verifier)
    app = serve_app()

    page = browser.get(consent(browser, start_sign_in(browser, app), GRACE, "allow"))

    assert page.status_code == 400
    assert 'data-error-code="invalid_grant"' in page.text
    assert app.query("SELECT id FROM users") == []
    assert app.links() == []
    assert me(browser, app)["authenticated"] is False
    assert lwa_emulator.stats()["requests"].get("token") == 1


def test_a_wrong_verifier_is_refused_too(serve_app, browser, grace, lwa_emulator, monkeypatch):
    original = AmazonOAuth2.auth_complete_params

    def wrong_verifier(self: AmazonOAuth2, state: Any = None) -> dict[str, Any]:
        return {**original(self, state), "code_verifier": "x" * 64}

    monkeypatch.setattr(AmazonOAuth2, "auth_complete_params", wrong_verifier)
    app = serve_app()

    page = browser.get(consent(browser, start_sign_in(browser, app), GRACE, "allow"))

    assert 'data-error-code="invalid_grant"' in page.text
    assert app.query("SELECT id FROM users") == []
    assert app.links() == []


def test_pkce_false_sends_no_challenge_and_no_verifier(serve_app, browser, grace, sent):
    app = serve_app(SOCIAL_AUTH_AMAZON_PKCE=False)
    authorize = start_sign_in(browser, app)
    query = query_of(authorize)
    assert "code_challenge" not in query
    assert "code_challenge_method" not in query
    transaction = session_of(browser, app)[f"amazon_oauth2_state_{query['state'][0]}"]
    assert "code_verifier" not in transaction

    final = browser.get(consent(browser, authorize, GRACE, "allow"))

    assert final.status_code == 200
    assert me(browser, app)["authenticated"] is True
    assert [sorted(data) for data in sent] == [
        ["client_id", "client_secret", "code", "grant_type", "redirect_uri"]
    ]


def test_pkce_true_sends_the_verifier_of_the_challenge(serve_app, browser, grace, sent):
    app = serve_app()
    authorize = start_sign_in(browser, app)

    browser.get(consent(browser, authorize, GRACE, "allow"))

    assert [s256(data["code_verifier"]) for data in sent] == query_of(authorize)["code_challenge"]


def test_signing_in_locally_ends_a_started_sign_in_and_its_verifier(
    serve_app, browser, grace, lwa_emulator
):
    app = serve_app()
    app.add_user("alan", "alan@example.com", PASSWORD)
    authorize = start_sign_in(browser, app)
    state = query_of(authorize)["state"][0]
    assert verifier_of(browser, app, state)

    local_sign_in(browser, app, "alan", PASSWORD)

    held = session_of(browser, app)
    assert not [key for key in held if key.startswith("amazon_oauth2_")]
    assert "amazon_code_verifier" not in held
    # Amazon's answer to that sign-in now finds nothing to finish.
    page = browser.get(consent(browser, authorize, GRACE, "allow"))
    assert page.status_code == 400
    assert app.links() == []
    assert lwa_emulator.stats()["requests"].get("token", 0) == 0


@pytest.mark.parametrize("value", ["false", 0, "True"])
def test_pkce_takes_only_a_boolean(value):
    settings = {"KEY": "id", "SECRET": "secret", "PKCE": value}
    with pytest.raises(AmazonSettingsError) as error:
        check_settings(lambda name, default: settings.get(name, default))
    assert list(error.value.problems) == ["SOCIAL_AUTH_AMAZON_PKCE"]
