"""What a person reads when a sign-in fails: plain words and the stable code, never
social-core's developer wording ("The authentication session is unavailable").

Each error is reached over HTTP, as a person reaches it, on the sample app (the
library's own error page); the demo's wording of the same pages is in
``tests/test_demo_app.py``.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
import requests
from social_core import exceptions as core
from social_core.exceptions import REASONS, SocialAuthBaseException

from social_amazon_link.errors import PLAIN_MESSAGES, AccessDenied, InvalidPartial, plain_message
from tests.flows import answer_prompt, consent, sign_in, start_sign_in

GRACE = "amzn1.account.AE7GRACEHOPPER0002"

#: What a signed-in person reads when the sign-in they are back on is over.
SIGNED_IN_OVER = {
    "session_context_missing": (
        "That sign-in already finished (or was started in another browser or window), "
        "so nothing was changed just now."
    ),
    "invalid_partial": (
        "That sign-in is no longer waiting: it already finished, was cancelled or expired, "
        "so nothing was changed just now."
    ),
}


@pytest.fixture
def grace(lwa_emulator: Any) -> str:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    return GRACE


def error_code(page: requests.Response) -> str:
    """The code on the error page (the attribute, whichever way it is written)."""
    found = re.search(r'data-error-code(?:="([^"]+)"[^>]*>|>)([^<]*)<', page.text)
    assert found is not None, f"no error code on the page: {page.text[:300]}"
    return found.group(1) or found.group(2)


def assert_plain(page: requests.Response, status: int, code: str, message: str) -> None:
    """The page answers ``status`` with ``code`` and ``message``, and no developer text."""
    assert (page.status_code, error_code(page)) == (status, code)
    # Each template engine escapes an apostrophe its own way (&#39;, &#x27;).
    text = html.unescape(page.text)
    assert message in text
    for developer_text, _source, _recovery in REASONS.values():
        assert developer_text not in text


def callback(browser: requests.Session, app: Any, user_id: str) -> str:
    return consent(browser, start_sign_in(browser, app), user_id, "allow")


def test_callback_without_its_state_is_missing_parameter(serve_app, browser):
    app = serve_app()
    page = browser.get(f"{app.url}/complete/amazon/", params={"code": "a-code"})
    assert_plain(page, 400, "missing_parameter", PLAIN_MESSAGES["missing_parameter"])


def test_callback_in_another_browser_is_session_context_missing(serve_app, browser, grace):
    app = serve_app()
    url = callback(browser, app, grace)
    with requests.Session() as other:
        page = other.get(url)
    assert_plain(page, 400, "session_context_missing", PLAIN_MESSAGES["session_context_missing"])
    assert app.query("SELECT id FROM users") == []


def test_used_callback_while_signed_in_says_that_sign_in_already_finished(
    serve_app, browser, grace
):
    app = serve_app()
    url = callback(browser, app, grace)
    assert browser.get(url).json()["authenticated"] is True
    again = browser.get(url)
    assert_plain(again, 400, "session_context_missing", SIGNED_IN_OVER["session_context_missing"])
    assert "not linked" not in again.text and "expired" not in again.text
    assert len(app.query("SELECT id FROM social_auth_usersocialauth")) == 1


def test_answer_from_amazon_after_the_state_lifetime_is_state_mismatch(serve_app, browser, grace):
    app = serve_app(SOCIAL_AUTH_AMAZON_STATE_LIFETIME=1)
    url = callback(browser, app, grace)
    time.sleep(2.1)
    page = browser.get(url)
    assert_plain(page, 400, "state_mismatch", PLAIN_MESSAGES["state_mismatch"])
    assert app.query("SELECT id FROM users") == []


def test_cancelling_on_amazon_is_access_denied(serve_app, browser, grace):
    app = serve_app()
    page = sign_in(browser, app, grace, decision="deny")
    assert_plain(page, 403, "access_denied", AccessDenied.message)


def test_unlinking_the_only_way_to_sign_in_says_why_and_what_to_do(serve_app, browser, grace):
    app = serve_app()
    sign_in(browser, app, grace)
    token = browser.get(f"{app.url}/csrf-token").json()["csrf_token"]
    page = browser.post(f"{app.url}/disconnect/amazon/", data={"csrf_token": token})
    assert_plain(page, 409, "disconnect_disallowed", PLAIN_MESSAGES["disconnect_disallowed"])
    assert len(app.query("SELECT id FROM social_auth_usersocialauth")) == 1


def test_an_email_domain_the_app_does_not_allow_is_authentication_disallowed(
    serve_app, browser, grace
):
    app = serve_app(SOCIAL_AUTH_AMAZON_WHITELISTED_DOMAINS=["acme.example"])
    page = sign_in(browser, app, grace)
    assert_plain(
        page, 403, "authentication_disallowed", PLAIN_MESSAGES["authentication_disallowed"]
    )
    assert app.query("SELECT id FROM users") == []


def test_a_sign_in_method_the_app_does_not_have_is_backend_missing(serve_app, browser):
    app = serve_app()
    page = app.start_sign_in(browser, backend="facebook")
    assert_plain(page, 404, "backend_missing", PLAIN_MESSAGES["backend_missing"])


def test_back_to_the_password_prompt_after_linking_says_nothing_changed(serve_app, browser, grace):
    app = serve_app()
    app.add_user("grace", "grace@example.com", password="grace-password-1")
    prompt = browser.get(callback(browser, app, grace))
    assert "/link/amazon/password" in prompt.url
    linked = answer_prompt(browser, prompt, password="grace-password-1")
    assert linked.json()["username"] == "grace"

    back = browser.get(prompt.url)  # the browser's Back button
    assert_plain(back, 400, "invalid_partial", SIGNED_IN_OVER["invalid_partial"])
    with requests.Session() as other:  # not signed in: start again
        anonymous = other.get(prompt.url)
    assert_plain(anonymous, 400, "invalid_partial", InvalidPartial.message)
    assert len(app.query("SELECT id FROM social_auth_usersocialauth")) == 1


@pytest.mark.parametrize("code", sorted(REASONS))
def test_every_social_core_code_has_plain_words(code):
    developer_text = REASONS[code][0]
    for signed_in in (False, True):
        message = plain_message(SocialAuthBaseException(code=code), signed_in=signed_in)
        assert message and message != developer_text


#: social-core 7's error categories, each a catch boundary an error may fall in.
CATEGORIES = [
    core.AuthAssociationError,
    core.AuthCanceled,
    core.AuthConfigurationError,
    core.AuthCredentialError,
    core.AuthException,
    core.AuthInputError,
    core.AuthPolicyError,
    core.AuthProviderError,
    core.AuthResponseError,
    core.AuthSessionError,
    core.AuthUnknownError,
]


@pytest.mark.parametrize("category", CATEGORIES)
def test_an_unknown_code_gets_its_categorys_plain_words(category):
    error = category(code="a_code_from_a_future_social_core")
    message = plain_message(error)
    assert message not in {text for text, _source, _recovery in REASONS.values()}
    assert "a_code_from" not in message
