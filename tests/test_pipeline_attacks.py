"""Attacks on a paused sign-in, over real HTTP, each ending on what the database holds.

A prompt is answered on its own page (CSRF-checked) or through the JSON API,
never through social-core's callback URL; a new sign-in ends a prompt left
waiting; an emailed code proves only what the pause that sent it asked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from social_amazon_link.pipelines import AMAZON_PIPELINE

from tests import sample_app
from tests.flows import answer_prompt, consent, sign_in, start_sign_in

GRACE = "amzn1.account.AEGRACEHOPPER00001"
MALLORY = "amzn1.account.AEMALLORYATTACKER1"
PASSWORD = "correct horse battery"
CODES = {"SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION": "tests.sample_app.send_code"}


@pytest.fixture
def grace(lwa_emulator: Any) -> str:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    return GRACE


def partials(app) -> int:
    return len(app.query("SELECT id FROM social_auth_partial"))


@pytest.mark.parametrize(
    "forged",
    [
        {"password": PASSWORD},
        {"password": PASSWORD, "partial_token": "from-the-page"},
    ],
)
def test_a_prompt_cannot_be_answered_through_the_callback_url(serve_app, browser, grace, forged):
    # Another site sends the person's browser to /complete/amazon/?password=...
    # (a top-level GET carries SameSite=Lax cookies): it must answer nothing.
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    prompt = sign_in(browser, app, grace)
    if "partial_token" in forged:
        forged = {**forged, "partial_token": prompt.url.split("partial_token=")[1]}
    page = browser.get(f"{app.url}/complete/amazon/", params=forged)
    assert page.status_code == 400
    assert 'data-error-code="invalid_partial"' in page.text
    assert app.links() == []
    assert browser.get(f"{app.url}/me").status_code == 401
    assert partials(app) == 0  # the waiting prompt is ended, not answered
    assert app.failures(user_id) == 0
    assert app.events() == []


def test_a_registration_prompt_cannot_be_answered_through_the_callback_url(
    serve_app, browser, lwa_emulator
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    app.add_user("GraceHopper", "someone@example.com", "pw-123456")  # the username is taken
    form = sign_in(browser, app, GRACE)
    assert "/link/amazon/register" in form.url
    page = browser.get(
        f"{app.url}/complete/amazon/",
        params={"username": "mallory", "email": "mallory@evil.example"},
    )
    assert page.status_code == 400
    assert [r.username for r in app.query("SELECT username FROM users")] == ["GraceHopper"]
    assert app.links() == []


def test_a_new_sign_in_ends_the_prompt_left_waiting(serve_app, browser, grace, lwa_emulator):
    ada = "amzn1.account.AEADALOVELACE00001"
    lwa_emulator.add_identity(ada, "Ada Lovelace", "ada@example.com")
    app = serve_app()
    app.add_user("grace", "grace@example.com", PASSWORD)
    assert "/link/amazon/password" in sign_in(browser, app, grace).url
    # The person gives up on linking and signs in with another Amazon account.
    me = sign_in(browser, app, ada).json()
    assert me["username"] == "AdaLovelace"
    assert partials(app) == 0
    assert [uid for _user, uid in app.links()] == [ada]


def test_restarting_a_sign_in_never_counts_a_wrong_code(serve_app, browser, grace):
    app = serve_app(**CODES)
    user_id = app.add_user("grace", "grace@example.com")
    sample_app.OUTBOX.clear()
    for _ in range(5):  # as many codes as one address may get in the lockout window
        prompt = sign_in(browser, app, grace)
        assert 'name="code"' in prompt.text
    assert app.failures(user_id) == 0
    assert partials(app) == 1  # the latest prompt only
    code = sample_app.OUTBOX[-1][1]
    assert answer_prompt(browser, prompt, code=code).json()["id"] == user_id
    assert app.links() == [(user_id, grace)]


def test_codes_to_one_address_are_limited(serve_app, browser, grace):
    # Anyone whose Amazon account carries the address could have it mailed a
    # code at every sign-in.
    app = serve_app(**CODES)
    user_id = app.add_user("grace", "grace@example.com")
    sample_app.OUTBOX.clear()
    for _ in range(5):
        assert 'name="code"' in sign_in(browser, app, grace).text
    page = sign_in(browser, app, grace)
    assert page.status_code == 429
    assert 'data-error-code="too_many_attempts"' in page.text
    assert "too many codes" in page.text
    assert len(sample_app.OUTBOX) == 5
    assert partials(app) == 0
    assert app.events()[-1] == ("locked_out", user_id, grace, "codes_sent")
    assert "sign in to it as you usually do, then link Amazon from your account page" in page.text

    # Two more sign-ins are refused too, and counted on that one row.
    for _ in range(2):
        assert sign_in(browser, app, grace).status_code == 429
    assert len(sample_app.OUTBOX) == 5
    rows = app.query("SELECT detail, repeats FROM amazon_link_events WHERE event = 'locked_out'")
    assert [tuple(row) for row in rows] == [("codes_sent", 2)]


def test_a_code_from_an_abandoned_sign_in_proves_nothing(serve_app, browser, grace, lwa_emulator):
    app = serve_app(**CODES)
    user_id = app.add_user("grace", "grace@example.com")
    sample_app.OUTBOX.clear()
    sign_in(browser, app, grace)  # Grace starts, and leaves
    [(_email, old_code, _token)] = sample_app.OUTBOX

    # Mallory's Amazon account carries Grace's address; a code Grace never
    # used must not link it.
    lwa_emulator.add_identity(MALLORY, "Mallory", "grace@example.com")
    import requests

    with requests.Session() as mallory:
        prompt = sign_in(mallory, app, MALLORY)
        answer = answer_prompt(mallory, prompt, code=old_code)
    assert answer.status_code == 403
    assert 'data-error-code="wrong_code"' in answer.text
    assert app.links() == []
    assert app.failures(user_id) == 1


def test_an_account_that_signs_in_with_another_amazon_account_gets_no_code(
    serve_app, browser, grace, lwa_emulator
):
    # Mallory made an account through her own Amazon account and typed
    # Grace's address into it; Grace's Amazon sign-in must not be offered a
    # code that would put Grace into Mallory's account.
    app = serve_app(**CODES)
    mallorys = app.add_user("mallory", "grace@example.com")
    app.link(mallorys, MALLORY)
    sample_app.OUTBOX.clear()
    page = sign_in(browser, app, grace)
    assert page.status_code == 409
    assert 'data-error-code="password_unavailable"' in page.text
    assert sample_app.OUTBOX == []
    assert app.links() == [(mallorys, MALLORY)]
    assert app.events() == [("link_refused", mallorys, grace, "other_sign_in")]


def failing_sender(strategy: Any, backend: Any, code: Any, partial_token: str | None) -> None:
    raise ConnectionError("the mail server is down")


def test_a_sender_that_fails_leaves_no_prompt_behind(serve_app, browser, grace):
    app = serve_app(SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION=f"{__name__}.failing_sender")
    user_id = app.add_user("grace", "grace@example.com")
    page = sign_in(browser, app, grace)
    assert page.status_code == 500
    assert partials(app) == 0
    # The next try starts afresh: no waiting prompt takes it over.
    callback = consent(browser, start_sign_in(browser, app), grace, "allow")
    assert browser.get(callback).status_code == 500
    assert (partials(app), app.failures(user_id), app.links()) == (0, 0, [])


TERMS = {
    "SOCIAL_AUTH_AMAZON_PIPELINE": (*AMAZON_PIPELINE, "tests.sample_app.accept_terms"),
}


def accept_terms(browser: Any, app: Any, terms: Any) -> Any:
    token = terms.url.split("partial_token=")[1]
    params = {"partial_token": token, "accept": "yes"}
    return browser.get(f"{app.url}/complete/amazon/", params=params)


def test_an_apps_own_later_pause_stores_no_password_and_resumes(serve_app, browser, grace):
    app = serve_app(**TERMS)
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    prompt = sign_in(browser, app, grace)
    terms = answer_prompt(browser, prompt, password=PASSWORD)
    assert "/terms?partial_token=" in terms.url
    [row] = app.query("SELECT data FROM social_auth_partial")
    stored = row.data if isinstance(row.data, str) else json.dumps(row.data)
    assert PASSWORD not in stored
    assert "amazon_link_answer" not in stored or '"amazon_link_answer": null' in stored
    # social-core resumes the app's own pause through the callback URL.
    token = terms.url.split("partial_token=")[1]
    done = browser.get(
        f"{app.url}/complete/amazon/", params={"partial_token": token, "accept": "yes"}
    )
    assert done.json()["id"] == user_id
    assert app.links() == [(user_id, grace)]


def test_a_new_sign_in_ends_an_apps_own_pause_left_waiting(serve_app, browser, lwa_emulator):
    # Ada stops on the app's terms page; the next person at that computer
    # signs in with their own Amazon account and must get their own account.
    ada = "amzn1.account.AEADALOVELACE00001"
    lwa_emulator.add_identity(ada, "Ada Lovelace", "ada@example.com")
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(**TERMS)
    assert "/terms?partial_token=" in sign_in(browser, app, ada).url
    terms = sign_in(browser, app, GRACE)
    token = terms.url.split("partial_token=")[1]
    done = browser.get(
        f"{app.url}/complete/amazon/", params={"partial_token": token, "accept": "yes"}
    )
    assert done.json()["username"] == "GraceHopper"
    assert partials(app) == 0
