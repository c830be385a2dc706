"""The mobile JSON API over real HTTP: a phone's cookie jar, the served app, the emulator.

Each test acts as a mobile app that got an access token from the LWA SDK
(``lwa_emulator.mint_token``) and talks to ``/api/amazon/`` with a plain
``requests.Session``; each asserts the JSON answer and what the database holds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import BadRequest, Conflict

from social_amazon_link.errors import TooManyAttempts
from social_amazon_link.flask import api as api_module
from social_amazon_link.flow.api import MAX_BODY_BYTES
from tests import sample_app
from tests.conftest import CLIENT_ID, Served

GRACE = "amzn1.account.AEGRACEHOPPER00001"
ADA = "amzn1.account.AEADALOVELACE00001"
PASSWORD = "correct horse battery"
OTHER_CLIENT_ID = "amzn1.application-oa2-client.50meb0dye15e5app"


@pytest.fixture
def phone() -> Iterator[requests.Session]:
    """The mobile app's HTTP client: it keeps cookies, as docs/mobile-api.md asks."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def identities(lwa_emulator: Any) -> None:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")


def api(phone: requests.Session, app: Served, path: str, body: Any) -> requests.Response:
    response = phone.post(f"{app.url}/api/amazon/{path}", json=body, timeout=10)
    assert response.headers["Content-Type"] == "application/json"
    return response


def sign_in(phone: requests.Session, app: Served, lwa: Any, user_id: str) -> requests.Response:
    return api(phone, app, "token", {"access_token": lwa.mint_token(CLIENT_ID, user_id)})


def users(app: Served) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in app.query("SELECT id, username, email FROM users ORDER BY id")]


def partials(app: Served) -> list[str]:
    return [r.token for r in app.query("SELECT token FROM social_auth_partial")]


def amazon_calls(lwa: Any) -> dict[str, int]:
    counts = lwa.stats()["requests"]
    return {"tokeninfo": counts["tokeninfo"], "profile": counts["profile"]}


def me(phone: requests.Session, app: Served) -> dict[str, Any]:
    result: dict[str, Any] = phone.get(f"{app.url}/me", timeout=10).json()
    return result


# -- signing in ---------------------------------------------------------------


def test_returning_user_signs_in(serve_app, phone, lwa_emulator, identities):
    app = serve_app()
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    app.link(grace, GRACE)
    before = users(app)
    token = lwa_emulator.mint_token(CLIENT_ID, GRACE)

    answer = api(phone, app, "token", {"access_token": token})
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "authenticated",
        "user": {"id": grace, "username": "grace", "email": "grace@example.com"},
        "new_user": False,
    }
    assert token not in answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert me(phone, app)["id"] == grace
    assert users(app) == before == [(grace, "grace", "grace@example.com")]
    assert app.links() == [(grace, GRACE)]
    assert app.events() == [] and partials(app) == []
    # Tokeninfo (the audience check) and the profile: once each, no more.
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 1, "profile": 1}


def test_new_identity_gets_an_account_then_is_a_returning_user(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app()
    first = sign_in(phone, app, lwa_emulator, ADA)
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "authenticated" and body["new_user"] is True
    assert body["user"]["username"] == "AdaLovelace"
    assert body["user"]["email"] == "ada@example.com"
    ada = body["user"]["id"]
    assert users(app) == [(ada, "AdaLovelace", "ada@example.com")]
    assert app.links() == [(ada, ADA)]
    assert app.events() == [("linked", ada, ADA, "new_account")]

    with requests.Session() as other_phone:
        again = sign_in(other_phone, app, lwa_emulator, ADA)
        assert again.json()["new_user"] is False
        assert again.json()["user"]["id"] == ada
        assert me(other_phone, app)["id"] == ada
    assert len(users(app)) == 1 and app.links() == [(ada, ADA)]
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 2, "profile": 2}


def test_same_email_asks_for_the_password_counts_wrong_ones_then_links(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app()
    grace = app.add_user("grace", "Grace@Example.com", PASSWORD)

    paused = sign_in(phone, app, lwa_emulator, GRACE)
    assert paused.status_code == 200
    body = paused.json()
    assert body == {
        "status": "password_required",
        "partial_token": body["partial_token"],
        "email": "grace@example.com",
    }
    token = body["partial_token"]
    assert partials(app) == [token]
    assert app.links() == [] and me(phone, app) == {"authenticated": False}

    wrong = api(phone, app, "continue", {"partial_token": token, "password": "nope"})
    assert (wrong.status_code, wrong.json()) == (
        403,
        {"error": "wrong_password", "attempts_left": 4},
    )
    wrong = api(phone, app, "continue", {"partial_token": token, "password": "nope again"})
    assert wrong.json() == {"error": "wrong_password", "attempts_left": 3}
    assert app.failures(grace) == 2
    assert partials(app) == [token]  # kept, so the person can try again
    [stored] = [str(r.data) for r in app.query("SELECT data FROM social_auth_partial")]
    assert "nope" not in stored and "Atza|" not in stored and "access_token" not in stored
    assert app.links() == []
    assert app.events() == [("wrong_password", grace, GRACE, "wrong_password")] * 2

    done = api(phone, app, "continue", {"partial_token": token, "password": PASSWORD})
    assert done.status_code == 200
    assert done.json() == {
        "status": "authenticated",
        "user": {"id": grace, "username": "grace", "email": "Grace@Example.com"},
        "new_user": False,
    }
    assert app.links() == [(grace, GRACE)]
    assert partials(app) == [] and app.failures(grace) == 0
    assert app.events()[-1] == ("linked", grace, GRACE, "password")
    assert me(phone, app) == {
        "authenticated": True,
        "id": grace,
        "username": "grace",
        "email": "Grace@Example.com",
    }
    # The whole exchange asked Amazon once: a resume never calls it again.
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 1, "profile": 1}


def test_locked_account_is_too_many_attempts(serve_app, phone, lwa_emulator, identities):
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_MAX_PASSWORD_ATTEMPTS=1)
    app.add_user("grace", "grace@example.com", PASSWORD)
    token = sign_in(phone, app, lwa_emulator, GRACE).json()["partial_token"]
    wrong = api(phone, app, "continue", {"partial_token": token, "password": "nope"})
    assert wrong.json() == {"error": "wrong_password", "attempts_left": 0}

    locked = api(phone, app, "continue", {"partial_token": token, "password": PASSWORD})
    assert locked.status_code == 429
    body = locked.json()
    assert body == {
        "error": "too_many_attempts",
        "retry_after": body["retry_after"],
        # The way that still works, which no lock of the linking flow touches.
        "message": TooManyAttempts.message,
    }
    assert "sign in with your password" in body["message"]
    assert "link Amazon from your account page" in body["message"]
    # LINK_LOCKOUT_SECONDS (kept in whole seconds, rounded up), counting down.
    assert 895 <= body["retry_after"] <= 901
    assert locked.headers["Retry-After"] == str(body["retry_after"])
    assert app.links() == []


def test_several_accounts_with_the_email_must_name_one(serve_app, phone, lwa_emulator, identities):
    app = serve_app()
    app.add_user("grace", "grace@example.com", PASSWORD)
    second = app.add_user("ghopper", "GRACE@example.com", "another password")
    body = sign_in(phone, app, lwa_emulator, GRACE).json()
    assert body["status"] == "password_required" and body["choose_account"] is True
    token = body["partial_token"]

    unnamed = api(phone, app, "continue", {"partial_token": token, "password": PASSWORD})
    assert unnamed.status_code == 400
    assert unnamed.json() == {
        "error": "invalid_request",
        "message": "Enter the username of the account to link.",
    }
    done = api(
        phone,
        app,
        "continue",
        {"partial_token": token, "username": "ghopper", "password": "another password"},
    )
    assert done.json()["user"]["id"] == second
    assert app.links() == [(second, GRACE)]


def test_a_username_without_the_email_answers_as_a_wrong_password(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app()
    first = app.add_user("grace", "grace@example.com", PASSWORD)
    second = app.add_user("ghopper", "GRACE@example.com", "another password")
    app.add_user("alan", "alan@example.com", "alan password")
    token = sign_in(phone, app, lwa_emulator, GRACE).json()["partial_token"]

    def guess(username: str) -> tuple[int, Any]:
        answer = {"partial_token": token, "username": username, "password": "a wrong guess"}
        reply = api(phone, app, "continue", answer)
        return reply.status_code, reply.json()

    # Another account's username, no account's, one with the email: one sequence.
    answers = [guess(name) for name in ("alan", "nobody", "ghopper", "alan", "grace")]
    assert answers == [
        (403, {"error": "wrong_password", "attempts_left": left}) for left in (4, 3, 2, 1, 0)
    ]
    assert (app.failures(first), app.failures(second)) == (5, 5)
    locked = api(
        phone,
        app,
        "continue",
        {"partial_token": token, "username": "ghopper", "password": "another password"},
    )
    assert locked.status_code == 429
    assert app.links() == []


def test_account_without_password_answers_with_an_emailed_code(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app(SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION="tests.sample_app.send_code")
    grace = app.add_user("grace", "grace@example.com")
    sample_app.OUTBOX.clear()
    body = sign_in(phone, app, lwa_emulator, GRACE).json()
    assert body == {
        "status": "code_required",
        "partial_token": body["partial_token"],
        "email": "grace@example.com",
    }
    [(email, code, sent_for)] = sample_app.OUTBOX
    assert (email, sent_for) == ("grace@example.com", body["partial_token"])

    answer = {"partial_token": body["partial_token"]}
    asked_password = api(phone, app, "continue", {**answer, "password": PASSWORD})
    assert asked_password.status_code == 400
    assert asked_password.json() == {
        "error": "invalid_request",
        "message": "This sign-in waits for code: 'password' cannot answer it (send 'code').",
    }
    wrong = api(phone, app, "continue", {**answer, "code": "0" * 32})
    assert (wrong.status_code, wrong.json()) == (403, {"error": "wrong_code", "attempts_left": 4})
    done = api(phone, app, "continue", {**answer, "code": code})
    assert done.json()["user"]["id"] == grace
    assert app.links() == [(grace, GRACE)]
    assert app.events()[-1] == ("linked", grace, GRACE, "email_code")


def test_taken_username_asks_for_registration_then_validates_the_form(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app()
    other = app.add_user("AdaLovelace", "someone@example.com", "pw-123456")

    body = sign_in(phone, app, lwa_emulator, ADA).json()
    assert body == {
        "status": "registration_required",
        "partial_token": body["partial_token"],
        "prefill": {"username": "AdaLovelace", "email": "ada@example.com", "name": "Ada Lovelace"},
        "required": ["username", "email"],
        "errors": {"username": "This username is taken."},
    }
    token = body["partial_token"]
    assert users(app) == [(other, "AdaLovelace", "someone@example.com")]

    invalid = api(
        phone, app, "continue", {"partial_token": token, "username": "a!", "email": "nope"}
    )
    assert invalid.status_code == 400
    assert invalid.json() == {
        "error": "invalid_request",
        "message": "Some fields need your attention.",
        "fields": {"username": "Use 3 to 80 characters.", "email": "Enter a valid email address."},
    }
    assert partials(app) == [token] and len(users(app)) == 1

    done = api(
        phone,
        app,
        "continue",
        {"partial_token": token, "username": "ada", "email": "ada@example.com", "name": "Ada"},
    )
    assert done.status_code == 200
    new = done.json()["user"]["id"]
    assert done.json() == {
        "status": "authenticated",
        "user": {"id": new, "username": "ada", "email": "ada@example.com"},
        "new_user": True,
    }
    assert users(app)[-1] == (new, "ada", "ada@example.com")
    assert app.links() == [(new, ADA)] and partials(app) == []
    assert me(phone, app)["id"] == new


def test_signed_in_user_connects_amazon(serve_app, phone, lwa_emulator, identities):
    app = serve_app()
    alan = app.add_user("alan", "alan@example.com", "alan password")
    phone.post(f"{app.url}/test-login", data={"username": "alan", "password": "alan password"})
    answer = sign_in(phone, app, lwa_emulator, GRACE)
    assert answer.json()["user"]["id"] == alan and answer.json()["new_user"] is False
    assert app.links() == [(alan, GRACE)]
    assert app.events() == [("linked", alan, GRACE, "signed_in")]


def test_identity_linked_to_another_account_is_identity_in_use(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app()
    owner = app.add_user("grace", "grace@example.com", PASSWORD)
    app.link(owner, GRACE)
    alan = app.add_user("alan", "alan@example.com", "alan password")
    phone.post(f"{app.url}/test-login", data={"username": "alan", "password": "alan password"})

    answer = sign_in(phone, app, lwa_emulator, GRACE)
    assert (answer.status_code, answer.json()) == (409, {"error": "identity_in_use"})
    assert app.links() == [(owner, GRACE)]
    assert app.events() == [("link_refused", alan, GRACE, "identity_in_use")]
    assert me(phone, app)["id"] == alan  # still signed in as before


def test_response_extra_hook_adds_the_apps_data(serve_app, phone, lwa_emulator, identities):
    app = serve_app(SOCIAL_AUTH_AMAZON_API_RESPONSE_EXTRA="tests.test_api.app_token_for")
    answer = sign_in(phone, app, lwa_emulator, ADA).json()
    user_id = answer["user"]["id"]
    assert answer["app_token"] == f"app-token-{user_id}"
    assert answer["status"] == "authenticated"  # the hook cannot override what we say


def app_token_for(user: Any) -> dict[str, Any]:
    """An app's ``API_RESPONSE_EXTRA`` hook: its own API token for the user."""
    return {"app_token": f"app-token-{user.id}", "status": "overridden"}


def test_response_extra_hook_json_cannot_send_leaves_no_session(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app(SOCIAL_AUTH_AMAZON_API_RESPONSE_EXTRA="tests.test_api.unsendable_extra")
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    app.link(grace, GRACE)
    answer = sign_in(phone, app, lwa_emulator, GRACE)
    assert (answer.status_code, answer.json()) == (500, {"error": "server_error"})
    # The app's bug, not a sign-in: the client was told so, and is not signed in.
    assert me(phone, app) == {"authenticated": False}
    assert app.links() == [(grace, GRACE)] and partials(app) == []


def unsendable_extra(user: Any) -> dict[str, Any]:
    """A buggy ``API_RESPONSE_EXTRA`` hook: a set is no JSON value."""
    return {"scopes": {"read", "write"}}


# -- tokens Amazon (or we) refuse ----------------------------------------------


def assert_nothing_written(app: Served) -> None:
    assert users(app) == [] and app.links() == [] and partials(app) == []
    assert app.events() == []


def test_token_of_another_app_is_wrong_audience(serve_app, phone, lwa_emulator, identities, caplog):
    caplog.set_level(logging.DEBUG)
    app = serve_app()
    token = lwa_emulator.mint_token(OTHER_CLIENT_ID, ADA)
    answer = api(phone, app, "token", {"access_token": token})
    assert (answer.status_code, answer.json()) == (403, {"error": "wrong_audience"})
    assert_nothing_written(app)
    assert me(phone, app) == {"authenticated": False}
    assert token not in caplog.text
    assert "wrong_audience (aud_mismatch" in caplog.text
    assert_next_sign_in_works(phone, app, lwa_emulator)


def test_expired_token_is_invalid_token(serve_app, phone, lwa_emulator, identities):
    app = serve_app()
    token = lwa_emulator.mint_token(CLIENT_ID, ADA, expires_in=0)
    answer = api(phone, app, "token", {"access_token": token})
    assert (answer.status_code, answer.json()) == (401, {"error": "invalid_token"})
    assert_nothing_written(app)
    assert me(phone, app) == {"authenticated": False}
    assert_next_sign_in_works(phone, app, lwa_emulator)


def assert_next_sign_in_works(phone: requests.Session, app: Served, lwa: Any) -> None:
    """A valid token after the refusal: a new account, linked, signed in."""
    answer = sign_in(phone, app, lwa, ADA)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "authenticated" and body["new_user"] is True
    ada = body["user"]["id"]
    assert users(app) == [(ada, "AdaLovelace", "ada@example.com")]
    assert app.links() == [(ada, ADA)] and partials(app) == []
    assert app.events() == [("linked", ada, ADA, "new_account")]
    assert me(phone, app)["id"] == ada


TIMEOUT = {"SOCIAL_AUTH_AMAZON_REQUESTS_TIMEOUT": 0.5}

# Each fault hits one request: tokeninfo and profile are separate endpoints of
# the emulator, both called once per sign-in, so a fault on one never touches
# the other, and the next sign-in meets none.
AMAZON_FAULTS = [
    pytest.param("profile", {"status": 500, "body": "oops"}, {}, id="profile-500"),
    pytest.param("profile", {"status": 503, "body": "down"}, {}, id="profile-503"),
    pytest.param("profile", {"status": 429, "body": {}}, {}, id="profile-429"),
    pytest.param("profile", {"delay_ms": 1500}, TIMEOUT, id="profile-timeout"),
    pytest.param("profile", {"drop": True}, {}, id="profile-dropped"),
    pytest.param(
        "profile", {"status": 200, "body": "<html>not json</html>"}, {}, id="profile-not-json"
    ),
    pytest.param("profile", {"status": 200, "body": {"name": "x"}}, {}, id="profile-no-user-id"),
    pytest.param(
        "profile",
        {"status": 200, "body": {"user_id": "garbled id"}},
        {},
        id="profile-garbled-user-id",
    ),
    pytest.param("tokeninfo", {"status": 500, "body": "oops"}, {}, id="tokeninfo-500"),
    pytest.param("tokeninfo", {"delay_ms": 1500}, TIMEOUT, id="tokeninfo-timeout"),
    pytest.param("tokeninfo", {"drop": True}, {}, id="tokeninfo-dropped"),
    pytest.param("tokeninfo", {"status": 200, "body": "[1, 2]"}, {}, id="tokeninfo-bad-shape"),
]


@pytest.mark.parametrize(("endpoint", "fault", "settings"), AMAZON_FAULTS)
def test_amazon_failing_is_amazon_unavailable(
    serve_app, phone, lwa_emulator, identities, caplog, endpoint, fault, settings
):
    caplog.set_level(logging.DEBUG)
    app = serve_app(**settings)
    token = lwa_emulator.mint_token(CLIENT_ID, ADA)
    lwa_emulator.fault(endpoint, times=1, **fault)
    answer = api(phone, app, "token", {"access_token": token})
    assert (answer.status_code, answer.json()) == (502, {"error": "amazon_unavailable"})
    assert_nothing_written(app)
    assert me(phone, app) == {"authenticated": False}
    assert token not in caplog.text and token not in answer.text
    # Both were asked once: the fault was used up by the request it was for.
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 1, "profile": 1}
    assert_next_sign_in_works(phone, app, lwa_emulator)


# -- paused sign-ins that may not be resumed -----------------------------------


@pytest.fixture
def paused_grace(serve_app, phone, lwa_emulator, identities) -> tuple[Served, str]:
    app = serve_app()
    app.add_user("grace", "grace@example.com", PASSWORD)
    body = sign_in(phone, app, lwa_emulator, GRACE).json()
    assert body["status"] == "password_required"
    return app, body["partial_token"]


def test_unknown_partial_token_is_invalid_partial(phone, paused_grace):
    app, token = paused_grace
    answer = api(phone, app, "continue", {"partial_token": "0" * 32, "password": PASSWORD})
    assert (answer.status_code, answer.json()) == (400, {"error": "invalid_partial"})
    assert partials(app) == [token]  # the real pause is untouched
    assert app.links() == []


def test_used_partial_token_is_invalid_partial(phone, paused_grace):
    app, token = paused_grace
    first = api(phone, app, "continue", {"partial_token": token, "password": PASSWORD})
    assert first.json()["status"] == "authenticated"
    again = api(phone, app, "continue", {"partial_token": token, "password": PASSWORD})
    assert (again.status_code, again.json()) == (400, {"error": "invalid_partial"})
    assert len(app.links()) == 1


def test_partial_token_from_another_cookie_jar_is_refused_and_removed(phone, paused_grace):
    app, token = paused_grace
    with requests.Session() as stranger:
        stolen = api(stranger, app, "continue", {"partial_token": token, "password": PASSWORD})
        assert (stolen.status_code, stolen.json()) == (400, {"error": "invalid_partial"})
        assert me(stranger, app) == {"authenticated": False}
    assert partials(app) == [] and app.links() == []
    # Removed, so the owner must start over too: a leaked token is worth nothing.
    owner = api(phone, app, "continue", {"partial_token": token, "password": PASSWORD})
    assert owner.json() == {"error": "invalid_partial"}


def test_a_new_sign_in_replaces_the_pending_pause(phone, paused_grace, lwa_emulator):
    app, old = paused_grace
    new = sign_in(phone, app, lwa_emulator, GRACE).json()["partial_token"]
    assert new != old and partials(app) == [new]


def test_expired_partial_token_is_invalid_partial_and_removed(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_PROMPT_MAX_AGE=1)
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    token = sign_in(phone, app, lwa_emulator, GRACE).json()["partial_token"]
    assert partials(app) == [token]
    time.sleep(1.5)

    late = api(phone, app, "continue", {"partial_token": token, "password": PASSWORD})
    assert (late.status_code, late.json()) == (400, {"error": "invalid_partial"})
    assert partials(app) == [] and app.links() == []
    assert app.failures(grace) == 0 and app.events() == []
    assert me(phone, app) == {"authenticated": False}


def test_password_with_nul_is_refused_before_an_attempt_is_counted(phone, paused_grace):
    app, token = paused_grace
    [(grace, _, _)] = users(app)
    for password in (PASSWORD + "\x00", PASSWORD + "\ud800"):
        refused = api(phone, app, "continue", {"partial_token": token, "password": password})
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_request"
        assert "'password'" in refused.json()["message"]
    assert app.failures(grace) == 0 and app.events() == []
    assert partials(app) == [token] and app.links() == []

    # Other control characters are the app's to judge: this one is only wrong.
    tab = api(phone, app, "continue", {"partial_token": token, "password": "correct\thorse"})
    assert (tab.status_code, tab.json()) == (403, {"error": "wrong_password", "attempts_left": 4})
    done = api(phone, app, "continue", {"partial_token": token, "password": PASSWORD})
    assert done.json()["status"] == "authenticated"


# -- bad input: refused before Amazon or the database is asked ------------------

TOKEN = "Atza|IwEBIexample"
JSON = "application/json"

BAD_INPUT = [
    pytest.param("token", b"", JSON, "The request has no body: send a JSON object.", id="no-body"),
    pytest.param(
        "token",
        b"{oops",
        JSON,
        "The body is not valid JSON: Expecting property name enclosed in double quotes "
        "(line 1, column 2).",
        id="not-json",
    ),
    pytest.param(
        "token",
        json.dumps({"access_token": TOKEN}).encode(),
        "text/plain",
        "Content-Type must be application/json.",
        id="text-plain",
    ),
    pytest.param(
        "token",
        b"access_token=Atza%7Cx",
        "application/x-www-form-urlencoded",
        "Content-Type must be application/json.",
        id="form-encoded",
    ),
    pytest.param(
        "token",
        b'["Atza|x"]',
        JSON,
        "The body must be a JSON object, not an array.",
        id="array",
    ),
    pytest.param(
        "token", b'"Atza|x"', JSON, "The body must be a JSON object, not a string.", id="string"
    ),
    pytest.param("token", b"\xff\xfe{}", JSON, "The body is not UTF-8.", id="not-utf8"),
    pytest.param(
        "token",
        b'{"access_token": ' + b"1" * 5000 + b"}",
        JSON,
        "The body has a number too long to read (5000 digits).",
        id="huge-number",
    ),
    pytest.param("token", b"{}", JSON, "'access_token' is required.", id="no-token"),
    pytest.param("token", b'{"access_token": ""}', JSON, "'access_token' is empty.", id="empty"),
    pytest.param(
        "token",
        b'{"access_token": 42}',
        JSON,
        "'access_token' must be a string, not a number.",
        id="number",
    ),
    pytest.param(
        "token",
        b'{"access_token": null}',
        JSON,
        "'access_token' must be a string, not null.",
        id="null",
    ),
    pytest.param(
        "token",
        b'{"access_token": {"value": "Atza|x"}}',
        JSON,
        "'access_token' must be a string, not an object.",
        id="object",
    ),
    pytest.param(
        "token",
        json.dumps({"access_token": "A" * 4097}).encode(),
        JSON,
        "'access_token' is longer than 4096 characters.",
        id="overlong",
    ),
    pytest.param(
        "token",
        b'{"access_token": "Atza|a b"}',
        JSON,
        "'access_token' may only hold printable ASCII characters, no spaces.",
        id="space",
    ),
    pytest.param(
        "token",
        b'{"access_token": "Atza|x", "access_token": "Atza|y"}',
        JSON,
        "Field 'access_token' appears more than once.",
        id="duplicate",
    ),
    pytest.param(
        "token",
        b'{"access_token": "Atza|x", "scope": "profile"}',
        JSON,
        "Unknown field: scope (this endpoint accepts 'access_token').",
        id="unknown-field",
    ),
    pytest.param(
        "continue", b'{"password": "x"}', JSON, "'partial_token' is required.", id="no-partial"
    ),
    pytest.param(
        "continue",
        b'{"partial_token": "abc", "password": 1}',
        JSON,
        "'password' must be a string, not a number.",
        id="password-number",
    ),
    pytest.param(
        "continue",
        b'{"partial_token": "abc", "user_id": "amzn1.account.X"}',
        JSON,
        "Unknown field: user_id (this endpoint accepts 'partial_token', 'password', "
        "'username', 'code', 'email', 'name').",
        id="continue-unknown-field",
    ),
]


@pytest.mark.parametrize(("path", "data", "content_type", "message"), BAD_INPUT)
def test_bad_input_is_invalid_request(
    serve_app, phone, lwa_emulator, path, data, content_type, message
):
    app = serve_app()
    answer = phone.post(
        f"{app.url}/api/amazon/{path}", data=data, headers={"Content-Type": content_type}
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_request", "message": message}
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 0, "profile": 0}
    assert_nothing_written(app)


NUL = "contains a NUL character."
SURROGATE = "is not valid Unicode (it holds a lone surrogate)."
CONTROL = "contains a control character."
PROBLEM_IDS = {NUL: "nul", SURROGATE: "surrogate", CONTROL: "control"}
# Valid JSON all (escapes), yet no database can store a NUL or a lone surrogate.
UNSTORABLE = [
    ("token", "access_token", "Atza|x\x00", NUL),
    ("token", "access_token", "Atza|\ud800", SURROGATE),
    ("continue", "partial_token", "abc\x00", NUL),
    ("continue", "partial_token", "\udfffabc", SURROGATE),
    ("continue", "partial_token", "abc\x1b", CONTROL),
    ("continue", "password", "pw\x00", NUL),
    ("continue", "password", "pw\ud800", SURROGATE),
    ("continue", "code", "12\x0034", NUL),
    ("continue", "code", "1234\x07", CONTROL),
    ("continue", "username", "\x00", NUL),
    ("continue", "username", "ada\nroot", CONTROL),
    ("continue", "email", "ada@example.com\udc80", SURROGATE),
    ("continue", "email", "ada@example.com\x7f", CONTROL),
    ("continue", "name", "Ada\x85", CONTROL),
    ("continue", "name", "Ada\x00", NUL),
]


@pytest.mark.parametrize(
    ("path", "field", "value", "problem"),
    UNSTORABLE,
    ids=[f"{field}-{PROBLEM_IDS[problem]}" for _, field, _, problem in UNSTORABLE],
)
def test_nul_surrogate_or_control_character_is_invalid_request(
    serve_app, phone, lwa_emulator, path, field, value, problem
):
    app = serve_app()
    body = {field: value} if path == "token" else {"partial_token": "abc", field: value}
    answer = phone.post(
        f"{app.url}/api/amazon/{path}",
        data=json.dumps(body).encode(),  # as JSON escapes: \u0000, \ud800
        headers={"Content-Type": JSON},
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_request", "message": f"'{field}' {problem}"}
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 0, "profile": 0}
    assert_nothing_written(app)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("username", "ada\x00", NUL), ("email", "ada@example.com\ud800", SURROGATE)],
    ids=["username-nul", "email-surrogate"],
)
def test_registration_answer_a_database_cannot_hold_is_refused_and_the_pause_kept(
    serve_app, phone, lwa_emulator, identities, field, value, problem
):
    app = serve_app()
    app.add_user("AdaLovelace", "someone@example.com", "pw-123456")
    before = users(app)
    token = sign_in(phone, app, lwa_emulator, ADA).json()["partial_token"]
    answer = {"partial_token": token, "username": "ada", "email": "ada@example.com"}
    refused = api(phone, app, "continue", {**answer, field: value})
    assert (refused.status_code, refused.json()) == (
        400,
        {"error": "invalid_request", "message": f"'{field}' {problem}"},
    )
    assert users(app) == before and app.links() == [] and partials(app) == [token]
    assert api(phone, app, "continue", answer).json()["status"] == "authenticated"


def test_unknown_field_names_are_shown_printable(serve_app, phone):
    app = serve_app()
    answer = phone.post(
        f"{app.url}/api/amazon/token",
        data=b'{"access_token": "Atza|x", "a\\u0000\\ud800b": 1}',
        headers={"Content-Type": JSON},
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "message": "Unknown field: a\ufffd\ufffdb (this endpoint accepts 'access_token').",
    }


def test_profile_fields_in_the_body_are_refused_and_never_trusted(
    serve_app, phone, lwa_emulator, identities
):
    app = serve_app()
    token = lwa_emulator.mint_token(CLIENT_ID, ADA)
    forged = {"access_token": token, "email": "grace@example.com", "user_id": GRACE}
    refused = api(phone, app, "token", forged)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_request",
        "message": "Unknown fields: email, user_id (this endpoint accepts 'access_token').",
    }
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 0, "profile": 0}
    assert_nothing_written(app)

    # The same token alone: the account is Ada's, as Amazon says, not the body.
    signed_in = api(phone, app, "token", {"access_token": token}).json()
    assert signed_in["user"]["email"] == "ada@example.com"
    assert app.links() == [(signed_in["user"]["id"], ADA)]


def test_body_over_64_kib_is_request_too_large(serve_app, phone, lwa_emulator):
    app = serve_app()
    padding = "x" * (MAX_BODY_BYTES + 1 - len('{"access_token": ""}'))
    data = json.dumps({"access_token": padding}).encode()
    assert len(data) == MAX_BODY_BYTES + 1
    answer = phone.post(
        f"{app.url}/api/amazon/token", data=data, headers={"Content-Type": "application/json"}
    )
    assert (answer.status_code, answer.json()) == (413, {"error": "request_too_large"})
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 0, "profile": 0}
    assert_nothing_written(app)


def test_chunked_body_over_64_kib_is_request_too_large(serve_app, phone, lwa_emulator):
    app = serve_app()

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        yield b'{"access_token": "'
        for _ in range(5):
            yield b"x" * 16384
        yield b'"}'

    answer = phone.post(
        f"{app.url}/api/amazon/token", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert (answer.status_code, answer.json()) == (413, {"error": "request_too_large"})
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 0, "profile": 0}
    assert_nothing_written(app)


def test_a_broken_chunked_body_is_invalid_request(serve_app, lwa_emulator):
    import socket
    from urllib.parse import urlsplit

    app = serve_app()
    host, port = urlsplit(app.url).hostname, urlsplit(app.url).port
    request_bytes = (
        f"POST /api/amazon/token HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"not-a-size\r\n{}\r\n0\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"400"
    assert json.loads(body)["error"] == "invalid_request"
    assert amazon_calls(lwa_emulator) == {"tokeninfo": 0, "profile": 0}
    assert_nothing_written(app)


def test_every_answer_is_json(serve_app, phone):
    app = serve_app()
    wrong_method = phone.get(f"{app.url}/api/amazon/token")
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    assert wrong_method.json()["error"] == "method_not_allowed"
    unknown = phone.post(f"{app.url}/api/amazon/tokens", json={})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PUT", "DELETE", "HEAD"])
@pytest.mark.parametrize("path", ["token", "continue"])
def test_any_method_but_post_is_json_method_not_allowed(serve_app, phone, method, path):
    app = serve_app()
    answer = phone.request(method, f"{app.url}/api/amazon/{path}", timeout=10)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert answer.headers["Content-Type"] == "application/json"
    if method != "HEAD":
        assert answer.json() == {"error": "method_not_allowed", "message": "Use POST."}
    unknown = phone.request(method, f"{app.url}/api/amazon/{path}s", timeout=10)
    assert (unknown.status_code, unknown.headers["Content-Type"]) == (404, "application/json")


@pytest.mark.parametrize(
    ("error", "body"),
    [
        (BadRequest(), {"error": "invalid_request"}),
        (BadRequest("The CSRF token is missing."), {"error": "invalid_request"}),
        (Conflict(), {"error": "http_409"}),
    ],
)
def test_http_errors_in_the_api_carry_a_message(error, body):
    app = Flask(__name__)
    app.register_blueprint(api_module.bp)
    with app.test_request_context("/api/amazon/token", method="POST"):
        answer = app.handle_user_exception(error)
    assert (answer.status_code, answer.mimetype) == (error.code, "application/json")
    assert answer.json == {**body, "message": error.description}


# -- an app protected by Flask-WTF's CSRFProtect ---------------------------------


@pytest.mark.flask_only  # Flask-WTF (Django's CsrfViewMiddleware is on in every Django test)
@pytest.mark.parametrize("order", ["before_init_app", "after_init_app"])
def test_api_is_exempt_from_the_apps_csrf_protection(
    serve_app, phone, lwa_emulator, identities, monkeypatch, order
):
    protect = CSRFProtect
    if order == "before_init_app":

        class ProtectedFlask(Flask):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                protect(self)

        monkeypatch.setattr(sample_app, "Flask", ProtectedFlask)
        app = serve_app()
    else:
        app = serve_app()
        protect(app.app)
    assert app.app.extensions["csrf"] is not None

    # A mobile client has no CSRF token: the API takes JSON only, which no
    # cross-site form can send, so it must not ask for one.
    answer = sign_in(phone, app, lwa_emulator, ADA)
    assert (answer.status_code, answer.json()["status"]) == (200, "authenticated")
    assert me(phone, app)["id"] == answer.json()["user"]["id"]
    # The rest of the app is still protected.
    own_form = phone.post(f"{app.url}/test-login", data={"username": "x", "password": "y"})
    assert own_form.status_code == 400
