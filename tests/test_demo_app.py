"""The demo's own pages, without a browser: what its forms accept, who may see them,
and how it is configured for the emulator or for real Amazon.

Each test runs on SQLite and on PostgreSQL: PostgreSQL refuses what SQLite lets
by (strings longer than their column, NUL characters), so a form that forgets
to check them fails there only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import text
from werkzeug.security import check_password_hash

from demo import DEMO_CLIENT_ID, EMULATOR_URL, amazon_settings, create_app
from demo.seed import seed

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


@pytest.fixture
def client(demo: Flask) -> FlaskClient:
    client = demo.test_client()
    with client.session_transaction() as session:
        session["_csrf"] = CSRF  # what the page's hidden csrf_token field would carry
    return client


def usernames(app: Flask) -> list[str]:
    with app.extensions["demo_engine"].connect() as conn:
        return sorted(conn.execute(text("SELECT username FROM users")).scalars())


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-field-error="(\w+)">([^<]*)<', html))


def input_value(html: str, name: str) -> str:
    found = re.search(rf'<input [^>]*name="{name}" value="([^"]*)"', html)
    assert found is not None, f"no {name} field"
    return found.group(1)


def register(client: FlaskClient, **fields: str) -> Any:
    return client.post("/register", data={**REGISTRATION, **fields, "csrf_token": CSRF})


def sign_in(client: FlaskClient, username: str, password: str) -> Any:
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": CSRF}
    )


# -- registration and sign-in forms ------------------------------------------------


def test_register_creates_the_account(client: FlaskClient, demo: Flask) -> None:
    response = register(client, name=" Hedy Lamarr ", postal_code="A-1010")
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    with demo.extensions["demo_engine"].connect() as conn:
        query = "SELECT email, name, postal_code, password_hash FROM users WHERE username = 'hedy'"
        email, name, postal_code, password_hash = conn.execute(text(query)).one()
    assert (email, name, postal_code) == ("hedy@example.com", "Hedy Lamarr", "A-1010")
    assert check_password_hash(password_hash, "hedy-password-1")

    page = client.get("/account").text
    assert '<dd id="account-postal-code">A-1010</dd>' in page


@pytest.mark.parametrize("postal_code", ["<b>1010</b>", "-1010", "1" * 21])
def test_register_refuses_what_is_no_postal_code(
    client: FlaskClient, demo: Flask, postal_code: str
) -> None:
    before = usernames(demo)
    response = register(client, postal_code=postal_code)
    assert response.status_code == 200
    assert field_errors(response.text) == {
        "postal_code": "Letters, digits, spaces or dashes, at most 20."
    }
    assert input_value(response.text, "postal_code") == escape(postal_code)
    assert usernames(demo) == before


@pytest.mark.parametrize("email", ["hedy@example.com.", "hedy@example..com", "hedy.@example.com"])
def test_register_refuses_an_address_not_in_canonical_spelling(
    client: FlaskClient, demo: Flask, email: str
) -> None:
    # hedy@example.com. is hedy@example.com's mailbox, and would count as another address.
    before = usernames(demo)
    response = register(client, email=email)
    assert response.status_code == 200
    assert field_errors(response.text) == {"email": "Enter an email address."}
    assert usernames(demo) == before


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("username", "h" * 500, "3 to 40 letters, digits, dots, dashes or underscores."),
        ("email", "h" * 290 + "@example.com", "At most 254 characters."),
        ("name", "Hedy " * 100, "At most 120 characters."),
    ],
)
def test_register_refuses_values_longer_than_their_column(
    client: FlaskClient, demo: Flask, field: str, value: str, error: str
) -> None:
    before = usernames(demo)
    response = register(client, **{field: value})
    assert response.status_code == 200
    assert field_errors(response.text) == {field: error}
    assert input_value(response.text, field) == value.strip()  # kept for correcting
    assert usernames(demo) == before


@pytest.mark.parametrize("field", ["username", "email", "name", "postal_code", "password"])
@pytest.mark.parametrize("control", ["\x00", "\x07", "\x85"])
def test_register_refuses_control_characters(
    client: FlaskClient, demo: Flask, field: str, control: str
) -> None:
    before = usernames(demo)
    value = {"name": "Hedy Lamarr", "postal_code": "A-1010", **REGISTRATION}[field]
    response = register(client, **{field: value[:2] + control + value[2:]})
    assert response.status_code == 200
    errors = field_errors(response.text)
    assert list(errors) == [field]
    if field != "username":  # the username's own rule already leaves them out
        assert errors[field] == "Remove the control characters."
    assert "hedy-password-1" not in response.text  # a password is never sent back
    assert usernames(demo) == before


@pytest.mark.parametrize("username", ["gr\x00ace", "grace\x00", "g" * 500])
def test_sign_in_with_an_impossible_username_is_wrong_credentials(
    client: FlaskClient, username: str
) -> None:
    response = sign_in(client, username, "grace-password-1")
    assert response.status_code == 200
    assert "Wrong username or password." in response.text
    with client.session_transaction() as session:
        assert "_user_id" not in session


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
    client: FlaskClient, demo: Flask, path: str
) -> None:
    assert sign_in(client, "grace", "grace-password-1").headers["Location"] == "/account"

    assert client.get(path).headers["Location"] == "/account"
    # A form posted from a page opened before signing in changes nothing either.
    posted = client.post(path, data={**REGISTRATION, "csrf_token": CSRF})
    assert posted.headers["Location"] == "/account"
    assert "hedy" not in usernames(demo)
    with client.session_transaction() as session:
        assert session["_user_id"] == str(user_id(demo, "grace"))


def user_id(app: Flask, username: str) -> int:
    with app.extensions["demo_engine"].connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM users WHERE username = :u"), {"u": username}
            ).scalar_one()
        )


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


def test_demo_mode_shows_the_hint_and_the_outbox(client: FlaskClient) -> None:
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
