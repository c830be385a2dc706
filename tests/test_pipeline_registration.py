"""Rule 5 over real HTTP: a new account, directly or through the prefilled form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.flows import answer_prompt, sign_in
from tests.forms import first_form

ADA = "amzn1.account.AEADALOVELACE00001"


@pytest.fixture
def ada(lwa_emulator: Any) -> str:
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    return ADA


def users(app) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in app.query("SELECT username, email, name FROM users ORDER BY id")]


def test_new_account_is_created_directly_from_the_profile(serve_app, browser, ada):
    app = serve_app()
    me = sign_in(browser, app, ada).json()
    assert (me["username"], me["email"]) == ("AdaLovelace", "ada@example.com")
    assert app.events() == [("linked", me["id"], ada, "new_account")]


def test_taken_username_shows_the_prefilled_form_then_creates(serve_app, browser, ada):
    app = serve_app()
    app.add_user("AdaLovelace", "someone@example.com", "pw-123456")

    form = sign_in(browser, app, ada)
    assert form.url.startswith(f"{app.url}/link/amazon/register?partial_token=")
    _action, values, _ = first_form(form.text, form.url)
    assert (values["username"], values["email"], values["name"]) == (
        "AdaLovelace",
        "ada@example.com",
        "Ada Lovelace",
    )
    assert 'name="password"' not in form.text  # this account will sign in with Amazon
    assert 'data-field-error="username"' in form.text
    assert len(users(app)) == 1

    bad = answer_prompt(browser, form, username="a!", email="not-an-email")
    assert bad.status_code == 400
    assert 'data-field-error="username"' in bad.text and 'data-field-error="email"' in bad.text
    assert 'value="a!"' in bad.text  # the form keeps what was typed
    assert len(users(app)) == 1

    taken_email = answer_prompt(browser, bad, username="ada", email="SOMEONE@example.com")
    assert taken_email.status_code == 400
    assert "already uses this email" in taken_email.text

    done = answer_prompt(browser, taken_email, username="ada", email="ada@example.com")
    assert done.url == f"{app.url}/me"
    assert done.json()["username"] == "ada"
    assert users(app)[1] == ("ada", "ada@example.com", None)
    [(link_user, uid)] = app.query("SELECT user_id, uid FROM social_auth_usersocialauth")
    assert (link_user, uid) == (done.json()["id"], ada)
    assert app.query("SELECT id FROM social_auth_partial") == []


def test_profile_without_email_asks_for_one(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity("amzn1.account.AENOEMAIL000001", "Nomail Person", "x@example.com")
    app = serve_app(SOCIAL_AUTH_AMAZON_SCOPE=["profile:user_id"])
    form = sign_in(browser, app, "amzn1.account.AENOEMAIL000001")
    assert form.url.startswith(f"{app.url}/link/amazon/register")
    _action, values, _ = first_form(form.text, form.url)
    assert values["email"] == "" and values["username"] == ""
    done = answer_prompt(browser, form, username="nomail", email="typed@example.com")
    assert done.json()["email"] == "typed@example.com"


def test_required_name_is_stored_when_the_profile_has_it(serve_app, browser, ada):
    app = serve_app(
        SOCIAL_AUTH_AMAZON_LINK_REQUIRED_FIELDS=["username", "email", "name"],
        SOCIAL_AUTH_USER_FIELDS=["username", "email", "name"],
    )
    sign_in(browser, app, ada)
    assert users(app) == [("AdaLovelace", "ada@example.com", "Ada Lovelace")]


@pytest.mark.parametrize(
    ("scope", "stored"), [(["profile", "postal_code"], "98101"), (["profile"], None)]
)
def test_postal_code_is_stored_only_when_its_scope_was_asked_for(
    serve_app, browser, lwa_emulator, scope, stored
):
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com", postal_code="98101")
    app = serve_app(
        SOCIAL_AUTH_AMAZON_SCOPE=scope,
        SOCIAL_AUTH_USER_FIELDS=["username", "email", "postal_code"],
    )
    sign_in(browser, app, ADA)
    rows = app.query("SELECT username, postal_code FROM users")
    assert [tuple(row) for row in rows] == [("AdaLovelace", stored)]
    (link,) = app.query("SELECT extra_data FROM social_auth_usersocialauth")
    extra = json.loads(link.extra_data) if isinstance(link.extra_data, str) else link.extra_data
    assert extra.get("postal_code") == stored


def test_a_postal_code_longer_than_its_column_is_left_out(serve_app, browser, lwa_emulator):
    # Amazon's can be longer than the app's column (String(20) here).
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com", postal_code="1" * 25)
    app = serve_app(
        SOCIAL_AUTH_AMAZON_SCOPE=["profile", "postal_code"],
        SOCIAL_AUTH_USER_FIELDS=["username", "email", "postal_code"],
    )
    me = sign_in(browser, app, ADA).json()
    assert me["authenticated"] is True
    rows = app.query("SELECT username, postal_code FROM users")
    assert [tuple(row) for row in rows] == [("AdaLovelace", None)]
    assert app.links() == [(me["id"], ADA)]


def test_cancel_removes_the_paused_sign_in(serve_app, browser, ada):
    app = serve_app()
    app.add_user("AdaLovelace", "someone@example.com", "pw-123456")
    form = sign_in(browser, app, ada)
    action, values, _ = first_form(form.text, form.url)
    back = browser.post(action, data={**values, "action": "cancel"})
    assert back.url == f"{app.url}/login" or back.history[0].headers["Location"] == "/login"
    assert app.query("SELECT id FROM social_auth_partial") == []
    assert len(users(app)) == 1


@pytest.mark.parametrize(
    ("typed", "field"),
    [
        ({"name": "A" * 121}, "name"),  # the sample app's name column holds 120
        ({"name": "Ada\x00Lovelace"}, "name"),  # PostgreSQL cannot even compare a NUL
        ({"email": "ada\x00@example.com"}, "email"),
        ({"email": "ada\u202e@example.com"}, "email"),  # reads backwards on a page
        ({"username": "ada\x07"}, "username"),
        ({"username": "ADALOVELACE"}, "username"),  # "AdaLovelace" is taken, whatever the case
    ],
)
def test_what_no_account_can_hold_is_a_field_error_not_a_crash(
    serve_app, browser, ada, typed, field
):
    app = serve_app(SOCIAL_AUTH_USER_FIELDS=["username", "email", "name"])
    app.add_user("AdaLovelace", "someone@example.com", "pw-123456")
    form = sign_in(browser, app, ada)
    answer = answer_prompt(browser, form, **{"username": "ada", "name": "Ada", **typed})
    assert answer.status_code == 400
    assert f'data-field-error="{field}"' in answer.text
    assert len(users(app)) == 1
    assert app.query("SELECT id FROM social_auth_usersocialauth") == []
    # The pause is still there to correct the form.
    done = answer_prompt(browser, answer, username="ada", email="ada@example.com", name="Ada")
    assert done.json()["username"] == "ada"


def test_an_odd_profile_is_cleaned_before_it_is_used(serve_app, browser, lwa_emulator):
    uid = "amzn1.account.AEODDPROFILE00001"
    name = "Ada\x00 \n Lovelace " + "x" * 200
    lwa_emulator.add_identity(uid, name, "a" * 250 + "@example.com")  # too long to be one
    app = serve_app(SOCIAL_AUTH_USER_FIELDS=["username", "email", "name"])
    form = sign_in(browser, app, uid)
    # No usable email: nothing is matched on it, and the form asks for one.
    assert form.url.startswith(f"{app.url}/link/amazon/register")
    _action, values, _ = first_form(form.text, form.url)
    assert values["email"] == ""
    assert values["name"] == ("Ada Lovelace " + "x" * 200)[:120]
    done = answer_prompt(browser, form, email="ada@example.com")
    assert done.json()["email"] == "ada@example.com"
    assert users(app) == [(values["username"], "ada@example.com", values["name"])]
