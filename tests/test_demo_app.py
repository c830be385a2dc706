"""The demo's own pages, without a browser: what its forms accept, who may see them,
and how it is configured for the emulator or for real Amazon.

Each test runs on SQLite and on PostgreSQL: PostgreSQL refuses what SQLite lets
by (strings longer than their column, NUL characters), so a form that forgets
to check them fails there only. The form tests run on both frameworks: Flask's
test client, or HTTP to ``python -m demo --framework django`` (:class:`DjangoClient`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, render_template
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import Engine, text

from demo import DEMO_CLIENT_ID, EMULATOR_URL, amazon_settings, create_app
from demo.seed import seed
from tests.browser_support import DemoSite

CSRF = "test-csrf-token"
REGISTRATION = {"username": "hedy", "email": "hedy@example.com", "password": "hedy-password-1"}


def make_demo(database_url: str, settings: dict[str, Any]) -> Flask:
    return create_app(
        {
            **settings,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "demo-app-tests-secret-key",
        }
    )


@pytest.fixture
def demo(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.chdir(tmp_path)  # the demo makes ./instance
    app = make_demo(database_url, amazon_settings({}))
    seed(app)
    yield app
    app.extensions["demo_engine"].dispose()


class DjangoClient:
    """The Flask test client's ``get``/``post`` over HTTP to the Django demo.

    A form's ``csrf_token`` of :data:`CSRF` is sent as the session's real token
    (read from the sign-in page's form), as the Flask client's session holds
    :data:`CSRF` itself.
    """

    def __init__(self, site: DemoSite) -> None:
        self.site = site
        self.http = requests.Session()

    def get(self, path: str) -> Answer:
        return Answer(self.http.get(f"{self.site.url}{path}", allow_redirects=False))

    def post(self, path: str, data: dict[str, str]) -> Answer:
        if data.get("csrf_token") == CSRF:
            page = self.http.get(f"{self.site.url}/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            data = {**data, "csrf_token": token.group(1)}
        return Answer(self.http.post(f"{self.site.url}{path}", data=data, allow_redirects=False))


class Answer:
    """A ``requests`` answer, read as Flask's test client's answers are."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.text = response.text

    def get_data(self, as_text: bool = False) -> str:
        return self.text


@pytest.fixture
def client(framework: str, database_url: str, request: pytest.FixtureRequest) -> Any:
    if framework == "django":
        return DjangoClient(request.getfixturevalue("site"))
    client = request.getfixturevalue("demo").test_client()
    with client.session_transaction() as session:
        session["_csrf"] = CSRF  # what the page's hidden csrf_token field would carry
    return client


@pytest.fixture
def demo_db(framework: str, database_url: str, request: pytest.FixtureRequest) -> Engine:
    """The demo's database, whichever framework serves it."""
    if framework == "django":
        return request.getfixturevalue("site").engine
    engine: Engine = request.getfixturevalue("demo").extensions["demo_engine"]
    return engine


def usernames(db: Engine) -> list[str]:
    with db.connect() as conn:
        return sorted(conn.execute(text("SELECT username FROM users")).scalars())


def signed_in_as(client: Any) -> str | None:
    """Whose account page the client's session opens (None: sent to sign in)."""
    page = client.get("/account")
    if page.status_code != 200:
        return None
    found = re.search(r'id="account-username">([^<]*)<', page.text)
    return found.group(1) if found else None


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-field-error="(\w+)">([^<]*)<', html))


def input_value(html: str, name: str) -> str:
    found = re.search(rf'<input [^>]*name="{name}" value="([^"]*)"', html)
    assert found is not None, f"no {name} field"
    return found.group(1)


def register(client: Any, **fields: str) -> Any:
    return client.post("/register", data={**REGISTRATION, **fields, "csrf_token": CSRF})


def sign_in(client: Any, username: str, password: str) -> Any:
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": CSRF}
    )


# -- registration and sign-in forms ------------------------------------------------


def test_register_creates_the_account(client: Any, demo_db: Engine) -> None:
    response = register(client, name=" Hedy Lamarr ", postal_code="A-1010")
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    with demo_db.connect() as conn:
        query = "SELECT email, name, postal_code, password_hash FROM users WHERE username = 'hedy'"
        email, name, postal_code, password_hash = conn.execute(text(query)).one()
    assert (email, name, postal_code) == ("hedy@example.com", "Hedy Lamarr", "A-1010")
    assert "hedy-password-1" not in password_hash  # a hash (Werkzeug's or Django's scrypt)
    assert password_hash.startswith(("scrypt:", "scrypt$"))

    page = client.get("/account").text
    assert '<dd id="account-postal-code">A-1010</dd>' in page
    # The hash is the password's: signed out, the new account signs in with it.
    client.post("/logout", data={"csrf_token": CSRF})
    assert signed_in_as(client) is None
    assert sign_in(client, "hedy", "hedy-password-1").headers["Location"] == "/account"
    assert signed_in_as(client) == "hedy"


@pytest.mark.parametrize("postal_code", ["<b>1010</b>", "-1010", "1" * 21])
def test_register_refuses_what_is_no_postal_code(
    client: Any, demo_db: Engine, postal_code: str
) -> None:
    before = usernames(demo_db)
    response = register(client, postal_code=postal_code)
    assert response.status_code == 200
    assert field_errors(response.text) == {
        "postal_code": "Letters, digits, spaces or dashes, at most 20."
    }
    assert input_value(response.text, "postal_code") == escape(postal_code)
    assert usernames(demo_db) == before


@pytest.mark.parametrize("email", ["hedy@example.com.", "hedy@example..com", "hedy.@example.com"])
def test_register_refuses_an_address_not_in_canonical_spelling(
    client: Any, demo_db: Engine, email: str
) -> None:
    # hedy@example.com. is hedy@example.com's mailbox, and would count as another address.
    before = usernames(demo_db)
    response = register(client, email=email)
    assert response.status_code == 200
    assert field_errors(response.text) == {"email": "Enter an email address."}
    assert usernames(demo_db) == before


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("username", "h" * 500, "3 to 40 letters, digits, dots, dashes or underscores."),
        ("email", "h" * 290 + "@example.com", "At most 254 characters."),
        ("name", "Hedy " * 100, "At most 120 characters."),
    ],
)
def test_register_refuses_values_longer_than_their_column(
    client: Any, demo_db: Engine, field: str, value: str, error: str
) -> None:
    before = usernames(demo_db)
    response = register(client, **{field: value})
    assert response.status_code == 200
    assert field_errors(response.text) == {field: error}
    assert input_value(response.text, field) == value.strip()  # kept for correcting
    assert usernames(demo_db) == before


@pytest.mark.parametrize("field", ["username", "email", "name", "postal_code", "password"])
@pytest.mark.parametrize("control", ["\x00", "\x07", "\x85"])
def test_register_refuses_control_characters(
    client: Any, demo_db: Engine, field: str, control: str
) -> None:
    before = usernames(demo_db)
    value = {"name": "Hedy Lamarr", "postal_code": "A-1010", **REGISTRATION}[field]
    response = register(client, **{field: value[:2] + control + value[2:]})
    assert response.status_code == 200
    errors = field_errors(response.text)
    assert list(errors) == [field]
    if field != "username":  # the username's own rule already leaves them out
        assert errors[field] == "Remove the control characters."
    assert "hedy-password-1" not in response.text  # a password is never sent back
    assert usernames(demo_db) == before


@pytest.mark.parametrize("username", ["gr\x00ace", "grace\x00", "g" * 500])
def test_sign_in_with_an_impossible_username_is_wrong_credentials(
    client: Any, username: str
) -> None:
    response = sign_in(client, username, "grace-password-1")
    assert response.status_code == 200
    assert "Wrong username or password." in response.text
    assert signed_in_as(client) is None


@pytest.mark.flask_only  # counts Werkzeug's hash checks in the Flask demo's process
@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("grace", "not-grace-password"),  # an account, a wrong password
        ("nobody-has-this-name", "whatever-1"),  # no such account
        ("dorothy", "whatever-1"),  # an account with no password (Amazon only)
    ],
)
def test_every_failed_sign_in_checks_one_password_hash(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, username: str, password: str
) -> None:
    """So that how long the answer takes does not tell which usernames exist."""
    from werkzeug import security

    from demo import accounts, models

    checked: list[str] = []

    def counting(pwhash: str, password: str) -> bool:
        checked.append(pwhash)
        return security.check_password_hash(pwhash, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting)
    monkeypatch.setattr(models, "check_password_hash", counting)
    answer = sign_in(client, username, password)
    assert "Wrong username or password." in answer.get_data(as_text=True)
    assert len(checked) == 1


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_signed_in_visitors_of_sign_in_and_registration_go_to_their_account(
    client: Any, demo_db: Engine, path: str
) -> None:
    assert sign_in(client, "grace", "grace-password-1").headers["Location"] == "/account"

    assert client.get(path).headers["Location"] == "/account"
    # A form posted from a page opened before signing in changes nothing either.
    posted = client.post(path, data={**REGISTRATION, "csrf_token": CSRF})
    assert posted.headers["Location"] == "/account"
    assert "hedy" not in usernames(demo_db)
    assert signed_in_as(client) == "grace"


# -- the error page ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "stage", "signed_in", "heading"),
    [
        ("disconnect_disallowed", "disconnect", True, "Amazon is still linked"),
        ("amazon_unavailable", "disconnect", True, "Unlink did not complete"),
        ("identity_in_use", "pipeline", True, "Amazon was not linked"),
        ("access_denied", "callback", False, "Sign-in did not complete"),
    ],
)
def test_error_page_heading_says_what_did_not_complete(
    demo: Flask, code: str, stage: str, signed_in: bool, heading: str
) -> None:
    with demo.test_request_context("/"):
        page = render_template(
            "social_amazon_link/error.html",
            code=code,
            message="Something went wrong.",
            stage=stage,
            signed_in=signed_in,
            back_url="/",
        )
    assert re.findall(r"<h1>([^<]*)</h1>", page) == [heading]
    assert f"<title>{heading} · Acme Books</title>" in page


# -- emulator or real Amazon -------------------------------------------------------

REAL = {"AMAZON_CLIENT_ID": "amzn1.application-oa2-client.real", "AMAZON_CLIENT_SECRET": "s3"}


def test_settings_pick_real_amazon_when_its_credentials_are_set() -> None:
    settings = amazon_settings({**REAL, "AMAZON_REGION": "EU"})
    assert settings["DEMO_MODE"] is False
    assert settings["SOCIAL_AUTH_AMAZON_KEY"] == REAL["AMAZON_CLIENT_ID"]
    assert settings["SOCIAL_AUTH_AMAZON_SECRET"] == REAL["AMAZON_CLIENT_SECRET"]
    assert settings["SOCIAL_AUTH_AMAZON_REGION"] == "EU"
    # Amazon's own hosts, no code "emailed" to an outbox.
    assert "SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL" not in settings
    assert "SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION" not in settings


@pytest.mark.parametrize("region", [{}, {"AMAZON_REGION": ""}])
def test_region_defaults_to_north_america(region: dict[str, str]) -> None:
    assert amazon_settings({**REAL, **region})["SOCIAL_AUTH_AMAZON_REGION"] == "NA"


@pytest.mark.parametrize(
    "env", [{}, {"AMAZON_CLIENT_ID": REAL["AMAZON_CLIENT_ID"]}, {"AMAZON_CLIENT_SECRET": "s3"}]
)
def test_settings_pick_the_emulator_without_both_credentials(env: dict[str, str]) -> None:
    settings = amazon_settings(env)
    assert settings["DEMO_MODE"] is True
    assert settings["SOCIAL_AUTH_AMAZON_KEY"] == DEMO_CLIENT_ID
    assert settings["SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL"] == f"{EMULATOR_URL}/ap/oa"
    assert settings["SOCIAL_AUTH_AMAZON_API_URL"] == EMULATOR_URL
    assert settings["SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION"] == "demo.outbox.send_code"
    other = amazon_settings({**env, "LWA_EMULATOR_URL": "http://127.0.0.1:6001"})
    assert other["SOCIAL_AUTH_AMAZON_API_URL"] == "http://127.0.0.1:6001"


def test_demo_mode_shows_the_hint_and_the_outbox(client: Any) -> None:
    login = client.get("/login").text
    assert 'id="demo-hint"' in login
    assert 'href="/demo/outbox"' in login
    outbox = client.get("/demo/outbox")
    assert outbox.status_code == 200
    assert "No messages sent yet." in outbox.text


def test_real_amazon_mode_has_no_demo_hint_and_no_outbox(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_demo(database_url, amazon_settings(REAL))
    try:
        client = app.test_client()
        login = client.get("/login")
        assert login.status_code == 200
        assert "Login with Amazon" in login.text
        assert 'id="demo-hint"' not in login.text
        assert "/demo/outbox" not in login.text
        assert client.get("/demo/outbox").status_code == 404
    finally:
        app.extensions["demo_engine"].dispose()
