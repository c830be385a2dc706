"""Paused sign-ins: only the session that paused may resume, and only for a while."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.flows import answer_prompt, sign_in
from tests.forms import first_form

GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "correct horse battery"


@pytest.fixture
def paused(serve_app, browser, lwa_emulator):
    """Grace's sign-in, paused on the password prompt."""

    def make(**settings: Any):
        lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
        app = serve_app(**settings)
        app.add_user("grace", "grace@example.com", PASSWORD)
        prompt = sign_in(browser, app, GRACE)
        assert "/link/amazon/password" in prompt.url
        return app, prompt

    return make


def partials(app) -> int:
    return len(app.query("SELECT id FROM social_auth_partial"))


def links(app) -> int:
    return len(app.query("SELECT id FROM social_auth_usersocialauth"))


def test_unknown_or_tampered_token_is_invalid_partial(paused, browser):
    app, prompt = paused()
    page = browser.get(f"{app.url}/link/amazon/password?partial_token=0123456789abcdef")
    assert page.status_code == 400
    assert 'data-error-code="invalid_partial"' in page.text
    token = prompt.url.split("partial_token=")[1]
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    action, values, _ = first_form(prompt.text, prompt.url)
    answer = browser.post(action, data={**values, "partial_token": tampered, "password": PASSWORD})
    assert answer.status_code == 400
    assert 'data-error-code="invalid_partial"' in answer.text
    assert links(app) == 0
    assert partials(app) == 1  # the real pause is untouched


@pytest.mark.parametrize("token", ["%00", "ab%00cd", "%ED%A0%80", "x" * 5000])
def test_a_token_no_pause_could_have_is_invalid_partial(paused, browser, token):
    app, prompt = paused()
    page = browser.get(f"{app.url}/link/amazon/password?partial_token={token}")
    assert page.status_code == 400
    assert 'data-error-code="invalid_partial"' in page.text
    action, values, _ = first_form(prompt.text, prompt.url)
    answer = browser.post(
        action,
        data=f"partial_token={token}&csrf_token={values['csrf_token']}&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400
    assert 'data-error-code="invalid_partial"' in answer.text
    assert (links(app), partials(app)) == (0, 1)


def test_resume_from_another_session_is_refused_and_removed(paused, browser):
    app, prompt = paused()
    with requests.Session() as stranger:
        stolen = stranger.get(prompt.url)
        assert stolen.status_code == 400
        assert 'data-error-code="invalid_partial"' in stolen.text
    assert partials(app) == 0
    again = answer_prompt(browser, prompt, password=PASSWORD)
    assert again.status_code == 400
    assert links(app) == 0


def test_expired_pause_is_refused_and_removed(paused, browser):
    app, prompt = paused(SOCIAL_AUTH_AMAZON_LINK_PROMPT_MAX_AGE=1)
    time.sleep(2.1)
    answer = answer_prompt(browser, prompt, password=PASSWORD)
    assert answer.status_code == 400
    assert 'data-error-code="invalid_partial"' in answer.text
    assert partials(app) == 0
    assert links(app) == 0


def test_form_without_csrf_token_is_refused(paused, browser):
    app, prompt = paused()
    action, values, _ = first_form(prompt.text, prompt.url)
    del values["csrf_token"]
    answer = browser.post(action, data={**values, "password": PASSWORD})
    assert answer.status_code == 400
    assert 'data-error-code="invalid_request"' in answer.text
    assert links(app) == 0
    assert partials(app) == 1
