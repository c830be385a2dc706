"""The LWA emulator itself, over real loopback HTTP: protocol, controls, faults, serving."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from social_amazon_link.emulator import (
    EmulatorControlError,
    EmulatorServer,
    LWAEmulator,
    create_app,
)
from social_amazon_link.emulator.app import state_of
from social_amazon_link.emulator.state import MAX_TOKEN_BYTES, MIN_TOKEN_LENGTH
from tests.forms import first_form

ADA = "amzn1.account.AE7ADALOVELACE0001"
BOB = "amzn1.account.BOBBOBBAGE0002"
CLIENT_ID = "amzn1.application-oa2-client.emulatortest"
SECRET = "emulator-test-secret"
CALLBACK = "http://127.0.0.1:8000/complete/amazon/"
OTHER_APP = "amzn1.application-oa2-client.someoneelse"

MISSING = {
    "error": "invalid_request",
    "error_description": "The request is missing a required parameter : access_token",
}
INVALID = {
    "error": "invalid_token",
    "error_description": "The request has an invalid parameter : access_token",
}
EXPIRED = {"error": "invalid_token", "error_description": "The token has expired"}


@pytest.fixture
def lwa(lwa_emulator: LWAEmulator) -> LWAEmulator:
    """The emulator with Ada (who has a postal code) and one registered app."""
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com", postal_code="98101")
    lwa_emulator.add_client(CLIENT_ID, SECRET, redirect_uris=[CALLBACK])
    return lwa_emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "profile",
        "state": "state-123",
    }
    params.update(overrides)
    return params


def consent(
    http: requests.Session, lwa: LWAEmulator, decision: str = "allow", **overrides: str
) -> requests.Response:
    data = {**authorize_params(**overrides), "user_id": ADA, "decision": decision}
    return http.post(lwa.authorize_url, data=data, allow_redirects=False)


def callback_query(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return parse_qs(urlsplit(location).query)


def get_code(http: requests.Session, lwa: LWAEmulator, **overrides: str) -> str:
    return callback_query(consent(http, lwa, **overrides))["code"][0]


def exchange(
    http: requests.Session, lwa: LWAEmulator, code: str, *, basic: bool = False, **extra: str
) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    form.update(extra)
    if basic:
        return http.post(f"{lwa.url}/auth/o2/token", data=form, auth=(CLIENT_ID, SECRET))
    form.update(client_id=CLIENT_ID, client_secret=SECRET)
    return http.post(f"{lwa.url}/auth/o2/token", data=form)


def profile(http: requests.Session, lwa: LWAEmulator, token: str) -> requests.Response:
    return http.get(f"{lwa.url}/user/profile", headers={"Authorization": f"Bearer {token}"})


def tokeninfo(http: requests.Session, lwa: LWAEmulator, token: str | None) -> requests.Response:
    params = {} if token is None else {"access_token": token}
    return http.get(f"{lwa.url}/auth/o2/tokeninfo", params=params)


def assert_lwa_tokens(body: dict[str, Any]) -> None:
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["access_token"].startswith("Atza|")
    assert body["refresh_token"].startswith("Atzr|")
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)


# --- authorization code flow ---


def test_sign_in_page_lists_identities_and_posts_back_the_request(lwa, http):
    lwa.add_identity(BOB, "Bob <Babbage>", "bob@example.com")
    page = http.get(lwa.authorize_url, params=authorize_params())
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Ada Lovelace" in page.text and "ada@example.com" in page.text
    assert "Bob &lt;Babbage&gt;" in page.text  # escaped, not markup
    assert 'value="allow"' in page.text and 'value="deny"' in page.text
    action, fields, radios = first_form(page.text, page.url)
    assert action == lwa.authorize_url
    assert fields == authorize_params()
    assert radios == {"user_id": [ADA, BOB]}


@pytest.mark.parametrize("basic", [False, True], ids=["client_secret_post", "client_secret_basic"])
def test_authorization_code_flow_end_to_end(lwa, http, basic):
    query = callback_query(consent(http, lwa))
    assert query["state"] == ["state-123"]
    answer = exchange(http, lwa, query["code"][0], basic=basic)
    assert answer.status_code == 200
    tokens = answer.json()
    assert_lwa_tokens(tokens)

    me = profile(http, lwa, tokens["access_token"])
    assert me.status_code == 200
    assert me.json() == {"user_id": ADA, "name": "Ada Lovelace", "email": "ada@example.com"}

    reused = exchange(http, lwa, query["code"][0], basic=basic)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_wrong_secret_is_invalid_client_and_leaves_the_code_usable(lwa, http):
    code = get_code(http, lwa)
    wrong = http.post(
        f"{lwa.url}/auth/o2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
        auth=(CLIENT_ID, "not-the-secret"),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert exchange(http, lwa, code).status_code == 200


def test_unknown_client_at_the_token_endpoint_is_invalid_client(lwa, http):
    form = {"grant_type": "authorization_code", "code": "x", "redirect_uri": CALLBACK}
    answer = http.post(
        f"{lwa.url}/auth/o2/token", data={**form, "client_id": "nobody", "client_secret": "x"}
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_code_is_bound_to_its_redirect_uri(lwa, http):
    code = get_code(http, lwa)
    answer = exchange(http, lwa, code, redirect_uri="http://127.0.0.1:8000/elsewhere")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_code_expires_after_five_minutes(lwa, http):
    code = get_code(http, lwa)
    state = state_of(lwa.server.app)
    state.clock = lambda: time.time() + 301
    answer = exchange(http, lwa, code)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"code": "x"}, "invalid_request"),  # no grant_type
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "redirect_uri": CALLBACK}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "unknown"}, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "Atzr|unknown"}, "invalid_grant"),
    ],
)
def test_token_endpoint_errors(lwa, http, form, error):
    answer = http.post(f"{lwa.url}/auth/o2/token", data=form, auth=(CLIENT_ID, SECRET))
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert answer.json()["error_description"]


def test_deny_redirects_with_access_denied_and_state(lwa, http):
    query = callback_query(consent(http, lwa, decision="deny"))
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["state-123"]
    assert query["error_description"][0]
    assert "code" not in query


def test_consent_helper_allows_as_the_chosen_identity(lwa, http):
    lwa.add_identity(BOB, "Bob Babbage", "bob@example.com")
    callback = lwa.consent(f"{lwa.authorize_url}?{urlencode(authorize_params())}", BOB)
    assert callback.startswith(CALLBACK + "?")
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == ["state-123"]
    tokens = exchange(http, lwa, query["code"][0]).json()
    assert profile(http, lwa, tokens["access_token"]).json()["user_id"] == BOB
    assert lwa.stats()["requests"]["authorize"] == 2  # the page, then the choice


def test_consent_helper_denies(lwa):
    url = f"{lwa.authorize_url}?{urlencode(authorize_params())}"
    for user_id in (ADA, None):
        query = parse_qs(urlsplit(lwa.consent(url, user_id, allow=False)).query)
        assert (query["error"], query["state"]) == (["access_denied"], ["state-123"])
        assert "code" not in query


def test_consent_helper_returns_amazons_answer_to_an_invalid_request(lwa):
    url = f"{lwa.authorize_url}?{urlencode(authorize_params(scope='profile email'))}"
    query = parse_qs(urlsplit(lwa.consent(url, ADA)).query)
    assert (query["error"], query["state"]) == (["invalid_scope"], ["state-123"])


@pytest.mark.parametrize(
    ("overrides", "user_id", "status", "message"),
    [
        ({}, "amzn1.account.NOBODY", 400, "Choose the account to sign in with."),
        ({}, None, 400, "Choose the account to sign in with."),
        (
            {"client_id": "amzn1.application-oa2-client.unknown"},
            ADA,
            400,
            "The client does not exist on this server.",
        ),
        (
            {"redirect_uri": "http://127.0.0.1:8000/elsewhere"},
            ADA,
            400,
            "Redirect URI http://127.0.0.1:8000/elsewhere is not supported by client.",
        ),
    ],
)
def test_consent_helper_raises_with_the_pages_message(lwa, overrides, user_id, status, message):
    url = f"{lwa.authorize_url}?{urlencode(authorize_params(**overrides))}"
    with pytest.raises(EmulatorControlError) as raised:
        lwa.consent(url, user_id)
    assert (raised.value.status, raised.value.message) == (status, message)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.amazon.com/ap/oa?client_id=x",
        "http://127.0.0.1:1/ap/oa?client_id=x",
        "{base}/ap/oa/../ap/oa?client_id=x",
    ],
)
def test_consent_helper_refuses_a_page_that_is_not_this_emulators(lwa, url):
    with pytest.raises(ValueError, match="not this emulator's sign-in page"):
        lwa.consent(url.format(base=lwa.url), ADA)
    assert lwa.stats()["requests"].get("authorize", 0) == 0


def test_unknown_scope_redirects_with_invalid_scope(lwa, http):
    answer = http.get(
        lwa.authorize_url, params=authorize_params(scope="profile email"), allow_redirects=False
    )
    query = callback_query(answer)
    assert (query["error"], query["state"]) == (["invalid_scope"], ["state-123"])


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "amzn1.application-oa2-client.unknown"},
        {"redirect_uri": "http://127.0.0.1:8000/not-registered"},
        {"redirect_uri": CALLBACK + "extra"},
        {"redirect_uri": ""},
    ],
    ids=["unknown-client", "unregistered-uri", "uri-prefix", "no-uri"],
)
def test_bad_client_or_redirect_uri_is_an_error_page_never_a_redirect(lwa, http, method, overrides):
    params = authorize_params(**overrides)
    if method == "GET":
        answer = http.get(lwa.authorize_url, params=params, allow_redirects=False)
    else:
        data = {**params, "user_id": ADA, "decision": "allow"}
        answer = http.post(lwa.authorize_url, data=data, allow_redirects=False)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "There was a problem" in answer.text


@pytest.mark.parametrize(
    ("user_id", "decision", "message"),
    [
        (None, "allow", "Choose the account"),
        ("amzn1.account.NOBODY", "allow", "Choose the account"),
        (ADA, None, "Choose Allow or Cancel"),
    ],
)
def test_consent_without_a_valid_choice_shows_the_page_again(lwa, http, user_id, decision, message):
    data = authorize_params()
    if user_id is not None:
        data["user_id"] = user_id
    if decision is not None:
        data["decision"] = decision
    answer = http.post(lwa.authorize_url, data=data, allow_redirects=False)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert message in answer.text
    assert first_form(answer.text, answer.url)[1] == authorize_params()


def test_client_without_redirect_uris_accepts_only_loopback_callbacks(lwa, http):
    lwa.add_client("amzn1.application-oa2-client.loopback", "s3cret")
    params = authorize_params(client_id="amzn1.application-oa2-client.loopback")
    for uri, status in [
        ("http://localhost:5000/cb", 200),
        ("http://127.0.0.1:9/complete/amazon/", 200),
        ("http://127.0.0.1.example.com/cb", 400),
        ("https://app.example.com/cb", 400),
    ]:
        answer = http.get(lwa.authorize_url, params={**params, "redirect_uri": uri})
        assert (uri, answer.status_code) == (uri, status)


# --- PKCE ---


def pkce_pair(seed: str = "v") -> tuple[str, str]:
    """A verifier (43+ characters of the allowed alphabet) and its S256 challenge."""
    verifier = (seed * 64)[:43] + "-._~Az09"
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_consent_page_posts_the_challenge_back(lwa, http):
    _, challenge = pkce_pair()
    params = authorize_params(code_challenge=challenge, code_challenge_method="S256")
    page = http.get(lwa.authorize_url, params=params)
    _, fields, _ = first_form(page.text, page.url)
    assert fields == params


def test_s256_verifier_exchanges_the_code(lwa, http):
    verifier, challenge = pkce_pair()
    code = get_code(http, lwa, code_challenge=challenge, code_challenge_method="S256")
    answer = exchange(http, lwa, code, code_verifier=verifier)
    assert answer.status_code == 200
    assert_lwa_tokens(answer.json())


@pytest.mark.parametrize(
    ("method", "verifier"),
    [
        ("S256", pkce_pair("w")[0]),  # another verifier
        ("S256", pkce_pair()[1]),  # the challenge itself, as if the method were plain
        ("S256", pkce_pair()[0] + "\n"),  # a trailing newline
        ("S256", "short"),
        ("S256", pkce_pair()[0] + "é"),
        ("", pkce_pair()[0]),  # plain, by default: the verifier is the challenge
        ("plain", pkce_pair()[0]),
    ],
    ids=["other", "challenge-as-verifier", "newline", "short", "non-ascii", "default", "plain"],
)
def test_wrong_verifier_is_invalid_grant_and_uses_the_code_up(lwa, http, method, verifier):
    right, challenge = pkce_pair()
    params = {"code_challenge": challenge}
    if method:
        params["code_challenge_method"] = method
    code = get_code(http, lwa, **params)
    answer = exchange(http, lwa, code, code_verifier=verifier)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert "code_verifier" in answer.json()["error_description"]
    retry = exchange(http, lwa, code, code_verifier=right if method == "S256" else challenge)
    assert (retry.status_code, retry.json()["error"]) == (400, "invalid_grant")


def test_missing_verifier_is_invalid_grant(lwa, http):
    _, challenge = pkce_pair()
    code = get_code(http, lwa, code_challenge=challenge, code_challenge_method="S256")
    answer = exchange(http, lwa, code)
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error": "invalid_grant",
            "error_description": "The request is missing the code_verifier.",
        },
    )
    empty = exchange(http, lwa, get_code(http, lwa, code_challenge=challenge), code_verifier="")
    assert (empty.status_code, empty.json()["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize("method", [None, "plain"])
def test_plain_method_compares_the_verifier_itself(lwa, http, method):
    verifier, _ = pkce_pair()
    params = {"code_challenge": verifier}
    if method:
        params["code_challenge_method"] = method
    answer = exchange(http, lwa, get_code(http, lwa, **params), code_verifier=verifier)
    assert answer.status_code == 200


def test_verifier_for_a_code_issued_without_a_challenge_is_refused(lwa, http):
    verifier, _ = pkce_pair()
    answer = exchange(http, lwa, get_code(http, lwa), code_verifier=verifier)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize(
    "params",
    [
        {"code_challenge": pkce_pair()[1], "code_challenge_method": "s256"},
        {"code_challenge": pkce_pair()[1], "code_challenge_method": "S512"},
        {"code_challenge_method": "S256"},
        {"code_challenge": "too-short"},
    ],
    ids=["lower-case", "unknown", "method-alone", "short"],
)
def test_bad_challenge_redirects_with_invalid_request(lwa, http, params):
    answer = http.get(lwa.authorize_url, params=authorize_params(**params), allow_redirects=False)
    query = callback_query(answer)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["state-123"]


# --- public clients, JSON bodies ---

MOBILE = "amzn1.application-oa2-client.mobileapp"
MOBILE_URI = "amzn://com.example.acmebooks"


@pytest.fixture
def mobile(lwa: LWAEmulator) -> LWAEmulator:
    """``lwa`` with a public client (a mobile app's security profile)."""
    record = lwa.add_client(MOBILE, redirect_uris=[MOBILE_URI], name="Acme Books", public=True)
    assert (record["public"], record["redirect_uris"]) == (True, [MOBILE_URI])
    return lwa


def mobile_code(http: requests.Session, lwa: LWAEmulator, challenge: str) -> str:
    params = authorize_params(
        client_id=MOBILE,
        redirect_uri=MOBILE_URI,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    answer = http.post(
        lwa.authorize_url,
        data={**params, "user_id": ADA, "decision": "allow"},
        allow_redirects=False,
    )
    location = answer.headers["Location"]
    assert location.startswith(MOBILE_URI + "?")
    return parse_qs(urlsplit(location).query)["code"][0]


def token_post(http: requests.Session, lwa: LWAEmulator, **form: str) -> requests.Response:
    return http.post(f"{lwa.url}/auth/o2/token", data=form)


def test_public_client_exchanges_with_the_verifier_and_no_secret(mobile, http):
    page = http.get(
        mobile.authorize_url,
        params=authorize_params(
            client_id=MOBILE, redirect_uri=MOBILE_URI, code_challenge=pkce_pair()[1]
        ),
    )
    assert app_name(page.text) == "Acme Books"
    verifier, challenge = pkce_pair()
    code = mobile_code(http, mobile, challenge)
    answer = token_post(
        http,
        mobile,
        grant_type="authorization_code",
        code=code,
        redirect_uri=MOBILE_URI,
        client_id=MOBILE,
        code_verifier=verifier,
    )
    assert answer.status_code == 200
    tokens = answer.json()
    assert_lwa_tokens(tokens)
    info = tokeninfo(http, mobile, tokens["access_token"]).json()
    assert (info["aud"], info["user_id"]) == (MOBILE, ADA)
    refreshed = token_post(
        http,
        mobile,
        grant_type="refresh_token",
        refresh_token=tokens["refresh_token"],
        client_id=MOBILE,
    )
    assert refreshed.status_code == 200


def test_public_client_without_pkce_is_refused_at_authorize(mobile, http):
    params = authorize_params(client_id=MOBILE, redirect_uri=MOBILE_URI)
    for answer in (
        http.get(mobile.authorize_url, params=params, allow_redirects=False),
        http.post(
            mobile.authorize_url,
            data={**params, "user_id": ADA, "decision": "allow"},
            allow_redirects=False,
        ),
    ):
        assert answer.status_code == 302
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert answer.headers["Location"].startswith(MOBILE_URI + "?")
        assert (query["error"], query["state"]) == (["invalid_request"], ["state-123"])
        assert "code" not in query


def test_public_client_without_verifier_or_with_a_secret_is_refused(mobile, http):
    verifier, challenge = pkce_pair()
    form = {"grant_type": "authorization_code", "redirect_uri": MOBILE_URI, "client_id": MOBILE}
    code = mobile_code(http, mobile, challenge)
    with_secret = token_post(
        http, mobile, **form, code=code, client_secret="guess", code_verifier=verifier
    )
    assert (with_secret.status_code, with_secret.json()["error"]) == (401, "invalid_client")
    basic = http.post(
        f"{mobile.url}/auth/o2/token",
        data={**form, "code": code, "code_verifier": verifier},
        auth=(MOBILE, "guess"),
    )
    assert (basic.status_code, basic.json()["error"]) == (401, "invalid_client")
    no_verifier = token_post(http, mobile, **form, code=mobile_code(http, mobile, challenge))
    assert (no_verifier.status_code, no_verifier.json()["error"]) == (400, "invalid_grant")


def test_confidential_client_without_secret_needs_a_pkce_code(lwa, http):
    form = {"grant_type": "authorization_code", "redirect_uri": CALLBACK, "client_id": CLIENT_ID}
    code = get_code(http, lwa)
    refused = token_post(http, lwa, **form, code=code)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    assert exchange(http, lwa, code).status_code == 200  # the code was not used up

    # The LWA SDK's code grant: the app's server holds the verifier, not the secret.
    verifier, challenge = pkce_pair()
    code = get_code(http, lwa, code_challenge=challenge, code_challenge_method="S256")
    answer = token_post(http, lwa, **form, code=code, code_verifier=verifier)
    assert answer.status_code == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": answer.json()["refresh_token"]}
    no_secret = token_post(http, lwa, **refresh, client_id=CLIENT_ID)
    assert (no_secret.status_code, no_secret.json()["error"]) == (401, "invalid_client")
    assert token_post(http, lwa, **refresh, client_id=CLIENT_ID, client_secret=SECRET).ok


def test_token_request_as_a_json_body(lwa, http):
    verifier, challenge = pkce_pair()
    code = get_code(http, lwa, code_challenge=challenge, code_challenge_method="S256")
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "code_verifier": verifier,
    }
    answer = http.post(f"{lwa.url}/auth/o2/token", json=body)
    assert answer.status_code == 200
    tokens = answer.json()
    assert_lwa_tokens(tokens)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    again = http.post(f"{lwa.url}/auth/o2/token", json=refresh, auth=(CLIENT_ID, SECRET))
    assert again.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        '{"grant_type": "authorization_code",',
        '["grant_type"]',
        '{"grant_type": 1}',
        '{"grant_type": "refresh_token", "refresh_token": ["Atzr|x"]}',
    ],
    ids=["truncated", "list", "number", "nested"],
)
def test_malformed_json_token_request_is_invalid_request(lwa, http, body):
    answer = http.post(
        f"{lwa.url}/auth/o2/token",
        data=body,
        headers={"Content-Type": "application/json"},
        auth=(CLIENT_ID, SECRET),
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": MOBILE, "public": True, "client_secret": "s"},
        {"client_id": MOBILE, "public": "yes"},
        {"client_id": MOBILE},
        {"client_id": MOBILE, "public": True, "redirect_uris": ["amzn:relative"]},
        {"client_id": MOBILE, "public": True, "redirect_uris": ["ftp://example.com/"]},
    ],
)
def test_public_client_registration_is_checked(lwa, http, body):
    answer = http.post(f"{lwa.url}/_emulator/clients", json=body)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


def test_command_line_registers_a_public_client_with_an_empty_secret():
    from social_amazon_link.emulator.__main__ import _client, _merge_clients

    merged = _merge_clients([_client(f"{MOBILE}::{MOBILE_URI}", "Acme Books")])
    assert merged == [
        {"client_id": MOBILE, "public": True, "name": "Acme Books", "redirect_uris": [MOBILE_URI]}
    ]


# --- scope_data: essential and voluntary scopes ---

VOLUNTARY_POSTAL = json.dumps({"profile": {"essential": True}, "postal_code": {"essential": False}})


def consent_choosing(
    http: requests.Session, lwa: LWAEmulator, share: list[str], **overrides: str
) -> requests.Response:
    """Allow on the consent page, ticking only ``share`` of its optional items."""
    data = {
        **authorize_params(**overrides),
        "user_id": ADA,
        "decision": "allow",
        "scope_choice": "1",
        "share": share,
    }
    return http.post(lwa.authorize_url, data=data, allow_redirects=False)


def test_consent_page_lets_the_person_untick_a_voluntary_scope(lwa, http):
    params = authorize_params(scope="profile postal_code", scope_data=VOLUNTARY_POSTAL)
    page = http.get(lwa.authorize_url, params=params)
    assert page.status_code == 200
    boxes = re.findall(r'<input type="checkbox" name="share" value="([^"]+)"\s+checked>', page.text)
    assert boxes == ["postal_code"]  # profile is essential: no box
    _, fields, _ = first_form(page.text, page.url)
    assert fields == {**params, "share": "postal_code", "scope_choice": "1"}


def test_declined_postal_code_is_left_out_of_the_grant_and_the_profile(lwa, http):
    query = callback_query(
        consent_choosing(http, lwa, [], scope="profile postal_code", scope_data=VOLUNTARY_POSTAL)
    )
    assert query["scope"] == ["profile"]
    tokens = exchange(http, lwa, query["code"][0]).json()
    me = profile(http, lwa, tokens["access_token"]).json()
    assert me == {"user_id": ADA, "name": "Ada Lovelace", "email": "ada@example.com"}
    refreshed = http.post(
        f"{lwa.url}/auth/o2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "profile postal_code",
        },
        auth=(CLIENT_ID, SECRET),
    )
    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_scope")


def test_shared_voluntary_scope_is_granted(lwa, http):
    query = callback_query(
        consent_choosing(
            http, lwa, ["postal_code"], scope="profile postal_code", scope_data=VOLUNTARY_POSTAL
        )
    )
    assert query["scope"] == ["profile postal_code"]
    token = exchange(http, lwa, query["code"][0]).json()["access_token"]
    assert profile(http, lwa, token).json()["postal_code"] == "98101"


def test_essential_scopes_cannot_be_declined(lwa, http):
    # Without scope_data every scope is essential; unticking is ignored.
    for scope_data in (None, json.dumps({"postal_code": {"essential": True}})):
        extra = {} if scope_data is None else {"scope_data": scope_data}
        query = callback_query(
            consent_choosing(http, lwa, [], scope="profile postal_code", **extra)
        )
        assert query["scope"] == ["profile postal_code"]


def test_declining_every_scope_shows_the_page_again(lwa, http):
    scope_data = json.dumps({"profile": {"essential": False}, "postal_code": {"essential": False}})
    answer = consent_choosing(http, lwa, [], scope="profile postal_code", scope_data=scope_data)
    assert answer.status_code == 400
    assert "Share at least one item, or choose Cancel." in answer.text


@pytest.mark.parametrize(
    "scope_data",
    [
        "{not json",
        '["postal_code"]',
        '{"postal_code": {"essential": "no"}}',
        '{"postal_code": false}',
        '{"profile:user_id": {"essential": false}}',  # not asked for
        '{"post\\"al_code": {"essential": false}}',  # a quote: not echoed back
    ],
)
def test_bad_scope_data_redirects_with_invalid_request(lwa, http, scope_data):
    params = authorize_params(scope="profile postal_code", scope_data=scope_data)
    query = callback_query(http.get(lwa.authorize_url, params=params, allow_redirects=False))
    assert (query["error"], query["state"]) == (["invalid_request"], ["state-123"])
    assert "scope_data" in query["error_description"][0]


def test_consent_helper_declines_voluntary_scopes(lwa):
    url = f"{lwa.authorize_url}?" + urlencode(
        authorize_params(scope="profile postal_code", scope_data=VOLUNTARY_POSTAL)
    )
    declined = parse_qs(urlsplit(lwa.consent(url, ADA, decline=["postal_code"])).query)
    assert declined["scope"] == ["profile"]
    kept = parse_qs(urlsplit(lwa.consent(url, ADA)).query)
    assert kept["scope"] == ["profile postal_code"]
    # An essential scope stays granted.
    essential = f"{lwa.authorize_url}?" + urlencode(authorize_params(scope="profile postal_code"))
    assert parse_qs(urlsplit(lwa.consent(essential, ADA, decline=["postal_code"])).query)[
        "scope"
    ] == ["profile postal_code"]


# --- refresh ---


def test_refresh_grant_rotates_the_refresh_token_and_the_old_one_stays_valid(lwa, http):
    first = exchange(http, lwa, get_code(http, lwa)).json()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    answer = http.post(f"{lwa.url}/auth/o2/token", data=form, auth=(CLIENT_ID, SECRET))
    assert answer.status_code == 200
    second = answer.json()
    assert_lwa_tokens(second)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert profile(http, lwa, second["access_token"]).json()["user_id"] == ADA
    # Both refresh tokens work: the one used, and the new one.
    for refresh_token in (first["refresh_token"], second["refresh_token"]):
        again = http.post(
            f"{lwa.url}/auth/o2/token",
            data={**form, "refresh_token": refresh_token},
            auth=(CLIENT_ID, SECRET),
        )
        assert again.status_code == 200
        assert_lwa_tokens(again.json())
        assert again.json()["refresh_token"] not in (first["refresh_token"], refresh_token)


def test_tokens_have_amazons_size(lwa, http):
    tokens = exchange(http, lwa, get_code(http, lwa)).json()
    minted = lwa.mint_token(CLIENT_ID, ADA)
    for value in (tokens["access_token"], tokens["refresh_token"], minted):
        assert len(value) >= MIN_TOKEN_LENGTH
        assert len(value.encode()) <= MAX_TOKEN_BYTES
        assert re.fullmatch(r"Atz[ar]\|[A-Za-z0-9_-]+", value)
    assert len({tokens["access_token"], tokens["refresh_token"], minted}) == 3


def test_refresh_token_of_another_client_is_invalid_grant(lwa, http):
    tokens = exchange(http, lwa, get_code(http, lwa)).json()
    lwa.add_client(OTHER_APP, "other-secret")
    answer = http.post(
        f"{lwa.url}/auth/o2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(OTHER_APP, "other-secret"),
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


# --- profile ---


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("profile", {"user_id": ADA, "name": "Ada Lovelace", "email": "ada@example.com"}),
        ("profile:user_id", {"user_id": ADA}),
        (
            "profile postal_code",
            {
                "user_id": ADA,
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "postal_code": "98101",
            },
        ),
        ("profile:user_id postal_code", {"user_id": ADA, "postal_code": "98101"}),
    ],
)
def test_profile_shape_follows_the_scope(lwa, http, scope, expected):
    answer = profile(http, lwa, lwa.mint_token(CLIENT_ID, ADA, scope=scope))
    assert answer.status_code == 200
    assert answer.json() == expected


def test_postal_code_is_left_out_when_the_identity_has_none(lwa, http):
    lwa.add_identity(BOB, "Bob", "bob@example.com")
    token = lwa.mint_token(CLIENT_ID, BOB, scope="profile postal_code")
    assert profile(http, lwa, token).json() == {
        "user_id": BOB,
        "name": "Bob",
        "email": "bob@example.com",
    }


def test_profile_reflects_the_identitys_current_data(lwa, http):
    token = lwa.mint_token(CLIENT_ID, ADA)
    assert profile(http, lwa, token).json()["email"] == "ada@example.com"
    lwa.add_identity(ADA, "Ada King", "ada.king@example.com")
    assert profile(http, lwa, token).json() == {
        "user_id": ADA,
        "name": "Ada King",
        "email": "ada.king@example.com",
    }


def test_token_in_the_query_string_works_but_is_counted(lwa, http):
    token = lwa.mint_token(CLIENT_ID, ADA)
    assert profile(http, lwa, token).status_code == 200
    assert lwa.stats()["token_in_query"] == 0
    answer = http.get(f"{lwa.url}/user/profile", params={"access_token": token})
    assert answer.status_code == 200
    assert answer.json()["user_id"] == ADA
    assert lwa.stats()["token_in_query"] == 1


def test_profile_takes_the_token_in_the_x_amz_access_token_header(lwa, http):
    token = lwa.mint_token(CLIENT_ID, ADA)
    answer = http.get(f"{lwa.url}/user/profile", headers={"x-amz-access-token": token})
    assert (answer.status_code, answer.json()["user_id"]) == (200, ADA)
    both = http.get(
        f"{lwa.url}/user/profile",
        headers={"x-amz-access-token": token, "Authorization": f"Bearer {token}"},
    )
    assert both.status_code == 200  # the same token twice
    expired = lwa.mint_token(CLIENT_ID, ADA, expires_in=0)
    answer = http.get(f"{lwa.url}/user/profile", headers={"X-Amz-Access-Token": expired})
    assert (answer.status_code, answer.json()) == (400, EXPIRED)
    assert lwa.stats()["token_in_query"] == 0


def test_profile_refuses_two_different_tokens(lwa, http):
    ours, theirs = lwa.mint_token(CLIENT_ID, ADA), lwa.mint_token(OTHER_APP, ADA)
    answer = http.get(
        f"{lwa.url}/user/profile",
        headers={"x-amz-access-token": theirs, "Authorization": f"Bearer {ours}"},
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "The request carries two different access tokens",
        },
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YTpi"},
        {"x-amz-access-token": ""},
    ],
)
def test_profile_without_a_token_is_invalid_request(lwa, http, headers):
    answer = http.get(f"{lwa.url}/user/profile", headers=headers)
    assert (answer.status_code, answer.json()) == (400, MISSING)


def test_profile_with_an_unknown_token_is_invalid_token(lwa, http):
    answer = profile(http, lwa, "Atza|not-a-real-token")
    assert (answer.status_code, answer.json()) == (400, INVALID)


def test_expired_tokens_are_invalid_token(lwa, http):
    born_expired = lwa.mint_token(CLIENT_ID, ADA, expires_in=0)
    assert profile(http, lwa, born_expired).json() == EXPIRED
    assert profile(http, lwa, born_expired).status_code == 400

    one, two = lwa.mint_token(CLIENT_ID, ADA), lwa.mint_token(OTHER_APP, ADA)
    assert lwa.expire_tokens(access_token=one) == 1
    assert (profile(http, lwa, one).status_code, profile(http, lwa, one).json()) == (400, EXPIRED)
    assert profile(http, lwa, two).status_code == 200
    assert lwa.expire_tokens(user_id=ADA) == 3
    assert profile(http, lwa, two).json() == EXPIRED
    assert tokeninfo(http, lwa, two).json() == EXPIRED


# --- tokeninfo ---


def test_tokeninfo_reports_the_audience_of_another_apps_token(lwa, http):
    before = int(time.time())
    token = lwa.mint_token(OTHER_APP, ADA)
    after = int(time.time())
    answer = tokeninfo(http, lwa, token)
    assert answer.status_code == 200
    info = answer.json()
    assert set(info) == {"iss", "user_id", "aud", "app_id", "exp", "iat"}
    assert (info["iss"], info["user_id"], info["aud"]) == ("https://www.amazon.com", ADA, OTHER_APP)
    assert re.fullmatch(r"amzn1\.application\.[0-9a-f]{32}", info["app_id"])
    assert 3500 < info["exp"] <= 3600
    assert before <= info["iat"] <= after

    # app_id is stable per client id and differs between clients.
    again = tokeninfo(http, lwa, lwa.mint_token(OTHER_APP, ADA)).json()
    ours = tokeninfo(http, lwa, lwa.mint_token(CLIENT_ID, ADA)).json()
    assert again["app_id"] == info["app_id"] != ours["app_id"]
    assert ours["aud"] == CLIENT_ID


def test_tokeninfo_errors(lwa, http):
    assert (tokeninfo(http, lwa, None).status_code, tokeninfo(http, lwa, None).json()) == (
        400,
        MISSING,
    )
    unknown = tokeninfo(http, lwa, "Atza|unknown")
    assert (unknown.status_code, unknown.json()) == (400, INVALID)
    expired = tokeninfo(http, lwa, lwa.mint_token(CLIENT_ID, ADA, expires_in=0))
    assert (expired.status_code, expired.json()) == (400, EXPIRED)


# --- faults ---


def test_fault_answers_with_status_and_json_body(lwa, http):
    token = lwa.mint_token(CLIENT_ID, ADA)
    lwa.fault("profile", status=503, body={"error": "ServiceUnavailable"}, times=1)
    answer = profile(http, lwa, token)
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"error": "ServiceUnavailable"}
    assert profile(http, lwa, token).status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html>Service Unavailable</html>", "text/plain; charset=utf-8"),
        ('{"hand": "written"}', "application/json"),
    ],
)
def test_fault_sends_a_string_body_verbatim(lwa, http, body, content_type):
    lwa.fault("tokeninfo", status=200, body=body)
    answer = tokeninfo(http, lwa, "Atza|anything")
    assert (answer.status_code, answer.text) == (200, body)
    assert answer.headers["Content-Type"] == content_type


def test_fault_with_only_a_status_has_an_empty_body(lwa, http):
    lwa.fault("token", status=500)
    answer = http.post(f"{lwa.url}/auth/o2/token", data={"grant_type": "authorization_code"})
    assert (answer.status_code, answer.text) == (500, "")


def test_delay_fault_holds_the_real_answer(lwa, http):
    token = lwa.mint_token(CLIENT_ID, ADA)
    lwa.fault("profile", delay_ms=300, times=1)
    started = time.monotonic()
    answer = profile(http, lwa, token)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.3
    assert answer.status_code == 200
    assert answer.json()["user_id"] == ADA


@pytest.mark.parametrize("endpoint", ["authorize", "token", "profile", "tokeninfo"])
def test_drop_fault_closes_the_connection_without_an_answer(lwa, http, endpoint):
    lwa.fault(endpoint, drop=True, times=1)
    request = {
        "authorize": lambda: http.post(lwa.authorize_url, data=authorize_params()),
        "token": lambda: http.post(f"{lwa.url}/auth/o2/token", data={"grant_type": "x"}),
        "profile": lambda: profile(http, lwa, "Atza|x"),
        "tokeninfo": lambda: tokeninfo(http, lwa, "Atza|x"),
    }[endpoint]
    with pytest.raises(requests.ConnectionError):
        request()
    # One drop only: the same session reconnects and gets the real answer.
    assert request().status_code in (200, 400)
    assert lwa.stats()["requests"][endpoint] == 2


def test_faults_apply_in_order_and_times_is_respected(lwa, http):
    lwa.fault("tokeninfo", status=500, body="first", times=2)
    lwa.fault("tokeninfo", status=502, body="second", times=1)
    answers = [tokeninfo(http, lwa, "Atza|x") for _ in range(4)]
    assert [(a.status_code, a.text) for a in answers[:3]] == [
        (500, "first"),
        (500, "first"),
        (502, "second"),
    ]
    assert (answers[3].status_code, answers[3].json()) == (400, INVALID)


def test_fault_without_times_lasts_until_cleared(lwa, http):
    lwa.fault("profile", status=429, body={"error": "throttled"})
    lwa.fault("tokeninfo", status=500)
    for _ in range(3):
        assert profile(http, lwa, "Atza|x").status_code == 429
    assert lwa.clear_faults() == 2
    assert profile(http, lwa, "Atza|x").json() == INVALID
    assert tokeninfo(http, lwa, "Atza|x").json() == INVALID


def test_delete_faults_over_http(lwa, http):
    lwa.fault("profile", status=500)
    answer = http.delete(f"{lwa.url}/_emulator/faults")
    assert (answer.status_code, answer.json()) == (200, {"cleared": 1})
    assert profile(http, lwa, "Atza|x").status_code == 400


def test_fault_registration_echoes_the_fault(lwa):
    assert lwa.fault("token", status=400, body={"error": "invalid_grant"}, times=1) == {
        "endpoint": "token",
        "status": 400,
        "body": {"error": "invalid_grant"},
        "delay_ms": 0,
        "drop": False,
        "times": 1,
    }


# --- stats, keep-alive, reset ---


def test_stats_count_connections_and_requests_per_endpoint(lwa, http):
    token = lwa.mint_token(CLIENT_ID, ADA)
    # The control client's own calls are not the app's connections.
    assert lwa.stats() == {
        "connections": 0,
        "requests": {"authorize": 0, "token": 0, "profile": 0, "tokeninfo": 0},
        "token_in_query": 0,
    }
    assert profile(http, lwa, token).status_code == 200
    assert tokeninfo(http, lwa, token).status_code == 200
    stats = lwa.stats()
    assert stats["connections"] == 1
    assert stats["requests"] == {"authorize": 0, "token": 0, "profile": 1, "tokeninfo": 1}

    with requests.Session() as other:
        profile(other, lwa, token)
    assert lwa.stats()["connections"] == 2


def test_connection_stays_usable_after_a_fault_left_the_body_unread(lwa, http):
    lwa.fault("token", status=500, body="oops", times=1)
    form = {"grant_type": "authorization_code", "code": "x" * 5000, "redirect_uri": CALLBACK}
    assert http.post(f"{lwa.url}/auth/o2/token", data=form).status_code == 500
    code = get_code(http, lwa)
    assert exchange(http, lwa, code).status_code == 200
    assert lwa.stats()["connections"] == 1


def test_answers_keep_the_connection_alive(lwa):
    with socket.create_connection(("127.0.0.1", lwa.server.port), timeout=5) as sock:
        request = b"GET /auth/o2/tokeninfo HTTP/1.1\r\nHost: emulator\r\n\r\n"
        sock.sendall(request + request)
        received = b""
        while received.count(b"HTTP/1.1 400") < 2:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection"
            received += chunk
    assert b"Connection: close" not in received
    assert received.count(b"Content-Length:") == 2
    assert lwa.stats()["connections"] == 1


def test_reset_forgets_tokens_faults_and_counters_but_keeps_identities(lwa, http):
    token = lwa.mint_token(CLIENT_ID, ADA)
    lwa.fault("tokeninfo", status=500)
    assert profile(http, lwa, token).status_code == 200
    lwa.reset()
    assert lwa.stats() == {
        "connections": 0,
        "requests": {"authorize": 0, "token": 0, "profile": 0, "tokeninfo": 0},
        "token_in_query": 0,
    }
    assert profile(http, lwa, token).json() == INVALID
    assert tokeninfo(http, lwa, "Atza|x").json() == INVALID
    assert profile(http, lwa, lwa.mint_token(CLIENT_ID, ADA)).status_code == 200
    assert exchange(http, lwa, get_code(http, lwa)).status_code == 200


# --- control input validation ---


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("identities", {"user_id": "amzn1.account.lowercase", "name": "A", "email": "a@b.c"}),
        ("identities", {"user_id": "A1", "name": "A", "email": "a@b.c"}),
        ("identities", {"user_id": ADA, "email": "a@b.c"}),
        ("identities", {"user_id": ADA, "name": "A", "email": "not-an-email"}),
        ("identities", {"user_id": ADA, "name": "A", "email": "a@b.c", "nickname": "x"}),
        ("identities", ["not", "an", "object"]),
        ("clients", {"client_id": CLIENT_ID}),
        ("clients", {"client_id": CLIENT_ID, "client_secret": "s", "redirect_uris": "x"}),
        ("clients", {"client_id": CLIENT_ID, "client_secret": "s", "redirect_uris": ["/cb"]}),
        ("tokens", {"client_id": CLIENT_ID, "user_id": BOB}),  # no such identity
        ("tokens", {"client_id": CLIENT_ID, "user_id": ADA, "scope": "email"}),
        ("tokens", {"client_id": CLIENT_ID, "user_id": ADA, "expires_in": -1}),
        ("tokens", {"client_id": CLIENT_ID, "user_id": ADA, "expires_in": True}),
        ("tokens", {"user_id": ADA}),
        ("tokens/expire", {}),
        ("tokens/expire", {"access_token": "Atza|x", "user_id": ADA}),
        ("faults", {"endpoint": "userinfo", "status": 500}),
        ("faults", {"endpoint": "profile"}),
        ("faults", {"endpoint": "profile", "drop": True, "status": 500}),
        ("faults", {"endpoint": "profile", "status": 99}),
        ("faults", {"endpoint": "profile", "status": 500, "times": 0}),
        ("faults", {"endpoint": "profile", "delay_ms": -5}),
        ("faults", {"endpoint": "profile", "drop": "yes"}),
    ],
)
def test_control_rejects_bad_input(lwa, http, path, body):
    answer = http.post(f"{lwa.url}/_emulator/{path}", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert isinstance(answer.json()["message"], str) and answer.json()["message"]


@pytest.mark.parametrize("path", ["identities", "clients", "tokens", "faults"])
def test_control_rejects_a_non_json_body(lwa, http, path):
    answer = http.post(
        f"{lwa.url}/_emulator/{path}", data="user_id=x", headers={"Content-Type": "text/plain"}
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "invalid_request", "message": "the body must be a JSON object"},
    )


def app_name(html: str) -> str:
    """The app the consent page says is asking."""
    found = re.search(r'<strong id="app-name">([^<]*)</strong> would like to access', html)
    assert found is not None, "no app name on the consent page"
    return found.group(1)


def test_consent_page_names_the_app_or_else_shows_its_client_id(lwa, http):
    page = http.get(lwa.authorize_url, params=authorize_params())
    assert app_name(page.text) == CLIENT_ID  # registered without a name

    record = lwa.add_client(OTHER_APP, "s", redirect_uris=[CALLBACK], name="  Zoë's <Books>  ")
    assert record["name"] == "Zoë's <Books>"
    page = http.get(lwa.authorize_url, params=authorize_params(client_id=OTHER_APP))
    assert app_name(page.text) == "Zoë&#39;s &lt;Books&gt;"
    assert OTHER_APP not in page.text.split("would like to access")[0]


@pytest.mark.parametrize(
    "name", ["", "   ", "Acme\nBooks", "Acme\u202eBooks", "x" * 101, 42, ["Acme"]]
)
def test_client_name_must_be_short_printable_text(lwa, http, name):
    answer = http.post(
        f"{lwa.url}/_emulator/clients",
        json={"client_id": OTHER_APP, "client_secret": "s", "name": name},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "'name'" in answer.json()["message"]
    page = http.get(lwa.authorize_url, params=authorize_params(client_id=OTHER_APP))
    assert "would like to access" not in page.text  # nothing was registered


def test_command_line_client_takes_at_most_a_name_after_it(capsys):
    from social_amazon_link.emulator.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--client", f"{CLIENT_ID}:{SECRET}:{CALLBACK}", "Acme", "Books"])
    assert exited.value.code == 2
    assert "--client: expected ID:SECRET[:REDIRECT_URI] [NAME]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--client", f"{CLIENT_ID}:{SECRET}", "Acme\tBooks"])
    assert "'name' must be at most 100 printable characters" in capsys.readouterr().err


def test_client_raises_a_clear_error_when_a_control_call_fails(lwa):
    with pytest.raises(EmulatorControlError, match=r"/_emulator/identities -> 400: 'user_id'"):
        lwa.add_identity("ada", "Ada", "ada@example.com")
    unreachable = LWAEmulator("http://127.0.0.1:9", timeout=1)
    with pytest.raises(EmulatorControlError, match="unreachable"):
        unreachable.stats()
    unreachable.close()


def test_client_returns_public_records_never_the_secret(lwa):
    record = lwa.add_client(OTHER_APP, "top-secret", redirect_uris=[CALLBACK])
    assert record == {
        "client_id": OTHER_APP,
        "name": None,
        "public": False,
        "redirect_uris": [CALLBACK],
        "app_id": record["app_id"],
    }
    assert lwa.add_identity(BOB, "Bob", "bob@example.com") == {
        "user_id": BOB,
        "name": "Bob",
        "email": "bob@example.com",
        "postal_code": None,
    }


# --- app factory, server, logs, command line ---


def test_create_app_seeds_and_the_server_closes_its_connections():
    app = create_app(
        identities=[{"user_id": ADA, "name": "Ada", "email": "ada@example.com"}],
        clients=[{"client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uris": [CALLBACK]}],
    )
    with requests.Session() as http:
        with EmulatorServer(app) as server:
            assert server.url == f"http://127.0.0.1:{server.port}"
            with LWAEmulator(server.url) as lwa:
                assert exchange(http, lwa, get_code(http, lwa)).status_code == 200
        # The session still holds its kept-alive connection: shutdown closed
        # it, so nothing answers on it any more.
        with pytest.raises(requests.ConnectionError):
            http.get(f"{server.url}/auth/o2/tokeninfo", timeout=2)


def test_create_app_rejects_invalid_seeds():
    with pytest.raises(ValueError, match="user_id"):
        create_app(identities=[{"user_id": "nope", "name": "A", "email": "a@b.c"}])


def test_no_token_or_secret_reaches_the_logs(lwa, http, caplog):
    with caplog.at_level("DEBUG"):
        tokens = exchange(http, lwa, get_code(http, lwa)).json()
        http.post(
            f"{lwa.url}/auth/o2/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(CLIENT_ID, SECRET),
        )
        tokeninfo(http, lwa, tokens["access_token"])
        verifier, challenge = pkce_pair("p")
        code = get_code(http, lwa, code_challenge=challenge, code_challenge_method="S256")
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        answer = http.post(
            f"{lwa.url}/auth/o2/token",
            json={**body, "client_id": CLIENT_ID, "code_verifier": verifier},
        )
        assert answer.status_code == 200
    # urllib3 is the test's own HTTP client logging its URLs; the rest is the emulator.
    emulator_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("urllib3")]
    assert any("Issue token" in line for line in emulator_logs)
    text = "\n".join(emulator_logs)
    assert "Atza|" not in text and "Atzr|" not in text and SECRET not in text
    assert verifier not in text and challenge not in text and code not in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output within {timeout} s")
    return process.stdout.readline().strip()


def test_command_serves_a_real_authorization_code_exchange():
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "social_amazon_link.emulator",
            "--port",
            str(port),
            "--client",
            f"{CLIENT_ID}:{SECRET}:{CALLBACK}",
            "Acme Books",
            "--identity",
            f"{ADA}:Ada Lovelace:ada@example.com",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(process, timeout=15)
        assert line == f"LWA emulator listening on http://127.0.0.1:{port}"
        lwa_url = line.rsplit(" ", 1)[1]
        with requests.Session() as http:
            page = http.get(f"{lwa_url}/ap/oa", params=authorize_params(), timeout=5)
            action, fields, radios = first_form(page.text, page.url)
            assert radios["user_id"] == [ADA]
            assert app_name(page.text) == "Acme Books"
            consented = http.post(
                action,
                data={**fields, "user_id": ADA, "decision": "allow"},
                allow_redirects=False,
                timeout=5,
            )
            code = callback_query(consented)["code"][0]
            tokens = http.post(
                f"{lwa_url}/auth/o2/token",
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
                auth=(CLIENT_ID, SECRET),
                timeout=5,
            ).json()
            assert_lwa_tokens(tokens)
            me = http.get(
                f"{lwa_url}/user/profile",
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
                timeout=5,
            )
            assert me.json() == {"user_id": ADA, "name": "Ada Lovelace", "email": "ada@example.com"}
    finally:
        process.terminate()
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        stderr = process.stderr.read() if process.stderr else ""
        process.stdout and process.stdout.close()
        process.stderr and process.stderr.close()
    assert returncode == 0, stderr
    assert "Atza|" not in stderr


# --- the library, when a person declines the voluntary postal code ---


@pytest.mark.parametrize("existing", [False, True], ids=["new-account", "returning"])
def test_library_signs_in_without_the_declined_postal_code(
    serve_app, lwa_emulator, browser, existing
):
    """An app asking for postal_code as voluntary: the person unticks it, the
    profile comes without it, and sign-in (a new account, or the linked one)
    still works, with no postal code stored."""
    from tests.flows import start_sign_in

    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com", postal_code="98101")
    app = serve_app(
        SOCIAL_AUTH_AMAZON_SCOPE=["profile", "postal_code"],
        SOCIAL_AUTH_AMAZON_AUTH_EXTRA_ARGUMENTS={"scope_data": VOLUNTARY_POSTAL},
    )
    if existing:
        app.link(app.add_user("ada", "ada@example.com", postal_code="10115"), ADA)
    authorize_url = start_sign_in(browser, app)
    assert parse_qs(urlsplit(authorize_url).query)["scope_data"] == [VOLUNTARY_POSTAL]
    callback = lwa_emulator.consent(authorize_url, ADA, decline=["postal_code"])
    assert parse_qs(urlsplit(callback).query)["scope"] == ["profile"]

    final = browser.get(callback)
    assert (final.status_code, final.url) == (200, f"{app.url}/me")
    me = final.json()
    assert (me["authenticated"], me["email"]) == (True, "ada@example.com")
    users = app.query("SELECT email, postal_code FROM users")
    assert [tuple(u) for u in users] == [("ada@example.com", "10115" if existing else None)]
    (link,) = app.query("SELECT uid, extra_data FROM social_auth_usersocialauth")
    assert link.uid == ADA
    assert "98101" not in str(link.extra_data)
