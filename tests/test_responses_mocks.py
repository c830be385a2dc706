"""Amazon mocked with ``responses``, as social-core's users test their sign-ins.

No emulator here: the app talks to Amazon's real URLs, and ``responses``
answers for Amazon. ``assert_all_requests_are_fired`` fails a test whose
registered call was never made, and ``responses`` answers a call it does not
know with a ``ConnectionError``: a call to Amazon that went around
``requests`` would reach the real Amazon (or fail offline) and end the sign-in
in ``amazon_unavailable``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
import responses
from responses import matchers

from social_amazon_link.lwa import REGIONS
from tests.conftest import CLIENT_ID, CLIENT_SECRET, Served
from tests.flows import answer_prompt, start_sign_in

API = REGIONS["NA"].api_url
TOKEN_URL = f"{API}/auth/o2/token"
PROFILE_URL = f"{API}/user/profile"
TOKENINFO_URL = f"{API}/auth/o2/tokeninfo"

GRACE = "amzn1.account.AEGRACEHOPPER00001"
ACCESS_TOKEN = "Atza|IwEBIA-a-fake-token-for-the-mocks"
CODE = "ANcodeFromAmazonsRedirect"
PASSWORD = "correct horse battery"
PROFILE = {"user_id": GRACE, "name": "Grace Hopper", "email": "grace@example.com"}


@pytest.fixture
def amazon() -> Iterator[responses.RequestsMock]:
    """Amazon's endpoints, mocked; calls to the served app (loopback) pass through."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add_passthru("http://127.0.0.1")
        yield mock


@pytest.fixture
def app(serve_app) -> Served:
    """The sample app with no emulator override: Amazon's real (NA) URLs."""
    return serve_app(
        SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL=None,
        SOCIAL_AUTH_AMAZON_API_URL=None,
    )


def mock_token_exchange(amazon: responses.RequestsMock, app: Served, challenge: str) -> None:
    """Amazon's token endpoint, for our code and the verifier of ``challenge`` (PKCE S256)."""
    expected = {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": f"{app.url}/complete/amazon/",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }

    def pkce_form(request: requests.PreparedRequest) -> tuple[bool, str]:
        form = dict(parse_qsl(str(request.body or "")))
        verifier = form.pop("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        sent = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        if form != expected or sent != challenge:
            return False, f"token request {sorted(form)} without the challenge's verifier"
        return True, ""

    amazon.post(
        TOKEN_URL,
        match=[pkce_form],
        json={
            "access_token": ACCESS_TOKEN,
            "refresh_token": "Atzr|IwEBIA-a-fake-refresh-token",
            "token_type": "bearer",
            "expires_in": 3600,
        },
    )


def mock_profile(amazon: responses.RequestsMock, **answer: object) -> None:
    amazon.get(
        PROFILE_URL,
        match=[matchers.header_matcher({"Authorization": f"Bearer {ACCESS_TOKEN}"})],
        **(answer or {"json": PROFILE}),
    )


def mock_tokeninfo(amazon: responses.RequestsMock) -> None:
    amazon.get(
        TOKENINFO_URL,
        match=[matchers.query_param_matcher({"access_token": ACCESS_TOKEN})],
        json={"aud": CLIENT_ID, "user_id": GRACE, "iss": "https://www.amazon.com", "exp": 3600},
    )


def web_sign_in(
    browser: requests.Session, app: Served, amazon: responses.RequestsMock
) -> requests.Response:
    """Login with Amazon, then Amazon's redirect back with a code (the consent page is Amazon's).

    Amazon's token endpoint is mocked once the authorize URL gives the PKCE challenge.
    """
    authorize = start_sign_in(browser, app)
    assert authorize.startswith(REGIONS["NA"].authorization_url + "?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["redirect_uri"] == [f"{app.url}/complete/amazon/"]
    assert query["code_challenge_method"] == ["S256"]
    mock_token_exchange(amazon, app, query["code_challenge"][0])
    return browser.get(query["redirect_uri"][0], params={"code": CODE, "state": query["state"][0]})


def calls(amazon: responses.RequestsMock) -> list[str]:
    """The Amazon endpoints called, in order (passed-through loopback calls left out)."""
    return [
        urlsplit(str(call.request.url)).path
        for call in amazon.calls
        if str(call.request.url).startswith(API)
    ]


def test_new_user_web_sign_in(amazon, app, browser):
    mock_profile(amazon)

    final = web_sign_in(browser, app, amazon)

    assert (final.status_code, final.url) == (200, f"{app.url}/me")
    me = final.json()
    assert (me["authenticated"], me["email"]) == (True, "grace@example.com")
    assert [tuple(row) for row in app.query("SELECT id, email FROM users")] == [
        (me["id"], "grace@example.com")
    ]
    assert app.links() == [(me["id"], GRACE)]
    assert calls(amazon) == ["/auth/o2/token", "/user/profile"]


def test_web_sign_in_paused_on_the_password_of_the_account_with_that_email(amazon, app, browser):
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    mock_profile(amazon)

    prompt = web_sign_in(browser, app, amazon)

    assert prompt.status_code == 200
    assert prompt.url.startswith(f"{app.url}/link/amazon/password?partial_token=")
    assert "grace@example.com" in prompt.text
    assert app.links() == []
    assert browser.get(f"{app.url}/me").status_code == 401
    done = answer_prompt(browser, prompt, password=PASSWORD)
    assert (done.status_code, done.json()["id"]) == (200, grace)
    assert app.links() == [(grace, GRACE)]
    # Resuming asked Amazon nothing more.
    assert calls(amazon) == ["/auth/o2/token", "/user/profile"]


def test_mobile_sign_in_checks_the_token_with_tokeninfo(amazon, app):
    mock_tokeninfo(amazon)
    mock_profile(amazon)

    with requests.Session() as phone:
        answer = phone.post(f"{app.url}/api/amazon/token", json={"access_token": ACCESS_TOKEN})

    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["new_user"]) == ("authenticated", True)
    assert app.links() == [(body["user"]["id"], GRACE)]
    assert sorted(calls(amazon)) == ["/auth/o2/tokeninfo", "/user/profile"]


def test_amazon_failing_is_amazon_unavailable_and_writes_nothing(amazon, app, browser):
    mock_profile(amazon, status=500, body="Internal error")

    page = web_sign_in(browser, app, amazon)

    assert page.status_code == 502
    assert 'data-error-code="amazon_unavailable"' in page.text
    assert app.query("SELECT id FROM users") == []
    assert app.links() == []
    assert browser.get(f"{app.url}/me").status_code == 401
    assert calls(amazon) == ["/auth/o2/token", "/user/profile"]
