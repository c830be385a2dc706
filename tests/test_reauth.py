"""Proof before connecting (LINK_REAUTH_SECONDS), over the sample app and the emulator.

A signed-in session links another Amazon account only soon after its sign-in;
an older one (or one restored from a remember-me cookie, which never signed
in) answers its own account's password (or an emailed code) first, on the
pages and through the JSON API, and cannot get around it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests import sample_app
from tests.conftest import CLIENT_ID, Served
from tests.flows import answer_prompt, consent, sign_in, start_sign_in
from tests.test_settings import GOOD, make_app, problems_of

ADA = "amzn1.account.AEADALOVELACE000001"
GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "ada-password-1815"
CODES = {"SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION": "tests.sample_app.send_code"}
REAUTH = "To connect another Amazon account, first confirm it is you"


@pytest.fixture
def identities(lwa_emulator: Any) -> Any:
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@amazon.example")
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@amazon.example")
    sample_app.OUTBOX.clear()
    return lwa_emulator


def remembered(app: Served, browser: requests.Session, username: str = "ada") -> None:
    """``browser`` holds only the remember-me cookie of an earlier sign-in:
    Flask-Login signs it in, yet it never signed in itself (a stale session)."""
    with requests.Session() as earlier:
        signed = earlier.post(
            f"{app.url}/test-login",
            data={"username": username, "password": PASSWORD, "remember": "yes"},
        )
        assert signed.status_code == 200
        browser.cookies.set("remember_token", earlier.cookies["remember_token"])
    assert browser.get(f"{app.url}/me").json()["username"] == username


def signed_in_stale(app: Served, browser: requests.Session) -> int:
    """Ada has a password and is signed in on ``browser`` from a remembered cookie."""
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    remembered(app, browser)
    return ada


def api(phone: requests.Session, app: Served, path: str, **body: Any) -> tuple[int, Any]:
    answer = phone.post(f"{app.url}/api/amazon/{path}", json=body)
    return answer.status_code, answer.json()


# -- the pages -----------------------------------------------------------------


def test_a_fresh_sign_in_links_without_a_prompt(serve_app, browser, identities):
    app = serve_app()
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    browser.post(f"{app.url}/test-login", data={"username": "ada", "password": PASSWORD})
    linked = sign_in(browser, app, GRACE)
    assert linked.url.endswith("/me") and linked.json()["id"] == ada
    assert app.links() == [(ada, GRACE)]
    assert app.events() == [("linked", ada, GRACE, "signed_in")]


def test_a_stale_session_gives_its_password_before_it_links(serve_app, browser, identities):
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS=1)
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    browser.post(f"{app.url}/test-login", data={"username": "ada", "password": PASSWORD})
    time.sleep(1.2)  # the sign-in is older than the window now
    prompt = sign_in(browser, app, GRACE)
    assert "/link/amazon/password" in prompt.url and REAUTH in prompt.text
    assert 'name="username"' not in prompt.text  # their own account: no choice
    assert app.links() == []

    wrong = answer_prompt(browser, prompt, password="not-it")
    assert wrong.status_code == 403 and 'data-error-code="wrong_password"' in wrong.text
    assert app.failures(ada) == 1 and app.links() == []
    done = answer_prompt(browser, prompt, password=PASSWORD)
    assert done.url.endswith("/me") and done.json()["id"] == ada
    assert app.links() == [(ada, GRACE)] and app.failures(ada) == 0
    assert app.events() == [
        ("wrong_password", ada, GRACE, "wrong_password"),
        ("linked", ada, GRACE, "signed_in"),
    ]


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_a_remembered_session_never_signed_in_so_it_is_asked(serve_app, browser, identities):
    app = serve_app()
    ada = signed_in_stale(app, browser)
    prompt = sign_in(browser, app, GRACE)
    assert REAUTH in prompt.text and app.links() == []
    assert answer_prompt(browser, prompt, password=PASSWORD).json()["id"] == ada
    assert app.links() == [(ada, GRACE)]
    # The password counted as a sign-in: the next link needs none for a while.
    app.query_write("DELETE FROM social_auth_usersocialauth")
    assert sign_in(browser, app, GRACE).json()["id"] == ada
    assert app.links() == [(ada, GRACE)]


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_zero_turns_the_check_off(serve_app, browser, identities):
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS=0)
    ada = signed_in_stale(app, browser)
    assert sign_in(browser, app, GRACE).json()["id"] == ada
    assert app.links() == [(ada, GRACE)]


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_an_amazon_account_linked_to_them_already_is_just_a_sign_in(serve_app, browser, identities):
    app = serve_app()
    ada = signed_in_stale(app, browser)
    app.link(ada, ADA)
    answer = sign_in(browser, app, ADA)
    assert answer.url.endswith("/me") and answer.json()["id"] == ada
    assert app.links() == [(ada, ADA)] and app.events() == []


def test_an_account_without_a_password_answers_a_code_sent_to_its_own_address(
    serve_app, browser, identities
):
    app = serve_app(**CODES, SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS=1)
    dorothy = app.add_user("dorothy", "dorothy@example.com")
    app.link(dorothy, ADA)
    assert sign_in(browser, app, ADA).json()["id"] == dorothy  # signs in with Amazon
    time.sleep(1.2)
    prompt = sign_in(browser, app, GRACE)
    assert REAUTH in prompt.text and 'name="code"' in prompt.text
    [(address, code, _token)] = sample_app.OUTBOX
    assert address == "dorothy@example.com"  # her own, never the Amazon account's
    wrong = answer_prompt(browser, prompt, code="WRONGCODE")
    assert 'data-error-code="wrong_code"' in wrong.text and app.failures(dorothy) == 1
    assert answer_prompt(browser, prompt, code=code).json()["id"] == dorothy
    assert sorted(app.links()) == sorted([(dorothy, ADA), (dorothy, GRACE)])


def test_without_a_password_or_a_code_sender_it_says_sign_in_again(serve_app, browser, identities):
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS=1)
    dorothy = app.add_user("dorothy", "dorothy@example.com")
    app.link(dorothy, ADA)
    sign_in(browser, app, ADA)
    time.sleep(1.2)
    refused = sign_in(browser, app, GRACE)
    assert refused.status_code == 403 and 'data-error-code="reauth_required"' in refused.text
    assert "please sign out and sign in again first" in refused.text
    assert app.links() == [(dorothy, ADA)]


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_wrong_passwords_on_the_prompt_lock_linking_as_any_others(serve_app, browser, identities):
    app = serve_app()
    ada = signed_in_stale(app, browser)
    prompt = sign_in(browser, app, GRACE)
    for n in range(5):
        assert answer_prompt(browser, prompt, password=f"guess-{n}").status_code == 403
    locked = answer_prompt(browser, prompt, password=PASSWORD)
    assert locked.status_code == 429 and 'data-error-code="too_many_attempts"' in locked.text
    assert app.links() == [] and app.failures(ada) == 5
    assert app.events()[-1] == ("locked_out", ada, GRACE, "")


# -- getting around it ------------------------------------------------------------


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_a_new_sign_in_or_a_second_tab_asks_again(serve_app, browser, identities):
    app = serve_app()
    ada = signed_in_stale(app, browser)
    first = sign_in(browser, app, GRACE)
    assert REAUTH in first.text
    # A second tab starts another sign-in: asked again, and the first prompt is over.
    second = sign_in(browser, app, GRACE)
    assert REAUTH in second.text
    stale_tab = answer_prompt(browser, first, password=PASSWORD)
    assert 'data-error-code="invalid_partial"' in stale_tab.text
    assert app.links() == []
    assert answer_prompt(browser, second, password=PASSWORD).json()["id"] == ada
    assert app.links() == [(ada, GRACE)]


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_replaying_the_callback_does_not_skip_the_prompt(serve_app, browser, identities):
    app = serve_app()
    signed_in_stale(app, browser)
    callback = consent(browser, start_sign_in(browser, app), GRACE, "allow")
    assert REAUTH in browser.get(callback).text
    replayed = browser.get(callback)
    assert REAUTH not in replayed.text and replayed.status_code == 400
    assert app.links() == []


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_the_callback_cannot_answer_the_prompt(serve_app, browser, identities):
    app = serve_app()
    signed_in_stale(app, browser)
    prompt = sign_in(browser, app, GRACE)
    token = prompt.url.split("partial_token=")[1]
    forged = browser.get(
        f"{app.url}/complete/amazon/", params={"partial_token": token, "password": PASSWORD}
    )
    assert 'data-error-code="invalid_partial"' in forged.text
    assert app.links() == []


# -- the JSON API ----------------------------------------------------------------


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_the_api_asks_a_stale_session_for_its_password(serve_app, browser, identities):
    app = serve_app()
    ada = signed_in_stale(app, browser)
    grace_token = identities.mint_token(CLIENT_ID, GRACE)
    status, asked = api(browser, app, "token", access_token=grace_token)
    assert status == 200
    assert asked == {
        "status": "password_required",
        "partial_token": asked["partial_token"],
        "email": "ada@example.com",
        "reauth": True,
    }
    # Sending the token again asks again: no way around it.
    status, again = api(browser, app, "token", access_token=grace_token)
    assert again["status"] == "password_required" and app.links() == []

    status, wrong = api(
        browser, app, "continue", partial_token=again["partial_token"], password="x"
    )
    assert (status, wrong) == (403, {"error": "wrong_password", "attempts_left": 4})
    status, done = api(
        browser, app, "continue", partial_token=again["partial_token"], password=PASSWORD
    )
    assert status == 200 and done["status"] == "authenticated" and done["user"]["id"] == ada
    assert app.links() == [(ada, GRACE)]


def test_the_api_links_for_a_fresh_session_without_a_prompt(serve_app, browser, identities):
    app = serve_app()
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    browser.post(f"{app.url}/test-login", data={"username": "ada", "password": PASSWORD})
    status, done = api(browser, app, "token", access_token=identities.mint_token(CLIENT_ID, GRACE))
    assert status == 200 and done["status"] == "authenticated" and done["user"]["id"] == ada
    assert app.links() == [(ada, GRACE)]


@pytest.mark.flask_only  # Flask-Login's remember-me cookie, or the Flask config
def test_the_api_answers_a_code_for_an_account_without_a_password(serve_app, browser, identities):
    app = serve_app(**CODES)
    dorothy = app.add_user("dorothy", "dorothy@example.com")  # signs in with Amazon
    app.link(dorothy, ADA)
    status, first = api(browser, app, "token", access_token=identities.mint_token(CLIENT_ID, ADA))
    assert first["status"] == "authenticated"
    app.app.config["SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS"] = 1
    time.sleep(1.2)
    status, asked = api(browser, app, "token", access_token=identities.mint_token(CLIENT_ID, GRACE))
    assert (status, asked["status"], asked["reauth"]) == (200, "code_required", True)
    [(address, code, _token)] = sample_app.OUTBOX
    assert address == "dorothy@example.com"
    status, done = api(browser, app, "continue", partial_token=asked["partial_token"], code=code)
    assert status == 200 and done["user"]["id"] == dorothy
    assert sorted(app.links()) == sorted([(dorothy, ADA), (dorothy, GRACE)])


# -- the setting -------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, "600", True, 1.5, None])
def test_a_window_that_is_not_whole_seconds_stops_the_start(value):
    problems = problems_of(**GOOD, SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS=value)
    assert list(problems) == ["SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS"]
    assert "0 turns the check off" in problems["SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS"]


@pytest.mark.parametrize("value", [0, 1, 600, 86400])
def test_a_whole_number_of_seconds_starts(value):
    assert "social" in make_app(**GOOD, SOCIAL_AUTH_AMAZON_LINK_REAUTH_SECONDS=value).blueprints
