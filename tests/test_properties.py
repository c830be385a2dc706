"""Property-based checks: whatever Amazon or a person sends, no 500 and no wrong link."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from social_amazon_link.errors import AmazonBadResponse
from social_amazon_link.lwa import USER_ID_PATTERN, parse_profile
from tests.conftest import CLIENT_ID
from tests.flows import answer_prompt, sign_in

OWNER = "amzn1.account.AEOWNER0000000001"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
user_ids = st.one_of(
    st.just(OWNER),
    st.from_regex(r"amzn1\.account\.[A-Z0-9]{6,20}", fullmatch=True),
    st.text(max_size=30),
    st.integers(),
    st.none(),
)
profile_bodies = st.fixed_dictionaries(
    {"user_id": user_ids},
    optional={
        "name": st.one_of(st.text(max_size=300), st.integers(), st.none()),
        "email": st.one_of(st.emails(), st.text(max_size=60), st.lists(st.text(), max_size=2)),
        "postal_code": st.one_of(st.text(max_size=12), st.none()),
    },
)
slow = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@given(body=st.one_of(json_values, profile_bodies))
def test_a_profile_body_is_either_valid_or_a_bad_response(body: Any) -> None:
    try:
        profile = parse_profile(body)
    except AmazonBadResponse as error:
        assert error.code == "amazon_unavailable"
        return
    assert USER_ID_PATTERN.fullmatch(profile.user_id)
    assert profile.user_id == (body.get("user_id") or body["Profile"].get("CustomerId"))


@pytest.fixture
def owned(serve_app, lwa_emulator):
    """An app where OWNER's Amazon account is linked to a local user."""
    lwa_emulator.add_identity(OWNER, "Owner", "owner@example.com")
    app = serve_app()
    owner_id = app.add_user("owner", "owner@example.com", "owner password")
    app.link(owner_id, OWNER)
    return app, owner_id


def owner_token_answered_with(body: Any, lwa_emulator: Any, browser: Any) -> str:
    """A token for OWNER whose next profile call answers ``body``; cookies cleared."""
    token = lwa_emulator.mint_token(CLIENT_ID, OWNER)
    lwa_emulator.clear_faults()
    lwa_emulator.fault("profile", status=200, body=body, times=1)
    browser.cookies.clear()
    return token


@slow
@given(body=profile_bodies)
def test_any_profile_answer_never_500_and_never_links_the_wrong_account(
    owned, lwa_emulator, browser, body
):
    app, owner_id = owned
    token = owner_token_answered_with(body, lwa_emulator, browser)
    answer = browser.post(f"{app.url}/client-token", data={"access_token": token})
    assert answer.status_code != 500
    links = {
        row.uid: row.user_id
        for row in app.query("SELECT uid, user_id FROM social_auth_usersocialauth")
    }
    assert links[OWNER] == owner_id  # the owner's link never moves
    if answer.status_code == 200:
        signed_in = answer.json()["id"]
        uid = body["user_id"]
        # Tokeninfo vouches for OWNER; a profile naming anyone else is refused.
        assert uid == OWNER and signed_in == owner_id
    else:
        assert answer.status_code in (400, 401, 409, 502)
    assert len(links) == 1


@pytest.fixture
def taken_username(serve_app):
    """An app where the username Amazon's "Ada Lovelace" would get is taken."""
    app = serve_app(SOCIAL_AUTH_USER_FIELDS=["username", "email", "name"])
    app.add_user("AdaLovelace", "someone@example.com", "pw-123456")
    return app


_identities = itertools.count()


@slow
@given(
    username=st.text(max_size=90),
    email=st.one_of(st.emails(), st.text(max_size=300)),
    name=st.text(max_size=200),  # the name column holds 120
)
def test_any_registration_form_is_validated_never_500(
    taken_username, lwa_emulator, browser, username, email, name
):
    app = taken_username
    uid = f"amzn1.account.AEADA{next(_identities):012d}"  # a new person each time
    lwa_emulator.add_identity(uid, "Ada Lovelace", f"ada{uid[-6:]}@example.com")
    browser.cookies.clear()
    form = sign_in(browser, app, uid)
    assert "/link/amazon/register" in form.url
    users_before = len(app.query("SELECT id FROM users"))
    answer = answer_prompt(browser, form, username=username, email=email, name=name)
    assert answer.status_code in (200, 400)
    users = app.query("SELECT id, username, email FROM users")
    if answer.status_code == 400:
        assert len(users) == users_before
        return
    me = answer.json()
    assert (me["username"], me["email"]) == (username.strip(), email.strip())
    [(link_user,)] = app.query(
        "SELECT user_id FROM social_auth_usersocialauth WHERE uid = :u", u=uid
    )
    assert link_user == me["id"]
    assert len(users) == users_before + 1


# -- the JSON API -----------------------------------------------------------------

GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "correct horse battery"
ALAN_PASSWORD = "alan password"
# Stand-ins for tokens only known once the example runs.
LIVE, FOREIGN, EXPIRED = "<live>", "<foreign>", "<expired>"
JSON_TYPE = {"Content-Type": "application/json"}


def post_json(client, app, path: str, body: Any):
    """POST any JSON value as it is (Infinity included: a JSON error for the server)."""
    answer = client.post(
        f"{app.url}/api/amazon/{path}", data=json.dumps(body), headers=JSON_TYPE, timeout=10
    )
    assert answer.headers["Content-Type"] == "application/json"
    return answer, answer.json()


def outcome(payload: Any) -> tuple[str, str]:
    """("status", value) or ("error", code): exactly one of the two, a string."""
    assert isinstance(payload, dict)
    [key] = {"status", "error"} & set(payload)
    assert isinstance(payload[key], str)
    event(f"{key}: {payload[key]}")  # shown by --hypothesis-show-statistics
    return key, payload[key]


def with_tokens(body: Any, **tokens: str) -> Any:
    """The body with a stand-in at its top level replaced by the real token."""
    if not isinstance(body, dict):
        return body
    return {k: tokens.get(v, v) if isinstance(v, str) else v for k, v in body.items()}


@pytest.fixture
def grace_app(serve_app, lwa_emulator):
    """Grace has a local account with her Amazon email and a password; Alan another one."""
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    alan = app.add_user("alan", "alan@example.com", ALAN_PASSWORD)
    return app, grace, alan


def local_users(app) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in app.query("SELECT id, username, email FROM users ORDER BY id")]


access_tokens = st.one_of(
    st.sampled_from([LIVE, FOREIGN, EXPIRED]),
    st.text(max_size=40),
    st.from_regex(r"Atza\|[A-Za-z0-9]{1,30}", fullmatch=True),
    json_values,
)
extra_fields = st.dictionaries(st.text(max_size=12), json_values, max_size=2)
token_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"access_token": access_tokens}),
    st.tuples(st.fixed_dictionaries({"access_token": access_tokens}), extra_fields).map(
        lambda parts: {**parts[1], **parts[0]}
    ),
)


@slow
@given(body=token_bodies)
def test_any_token_body_answers_json_never_500_and_never_links(
    grace_app, lwa_emulator, browser, body
):
    app, _grace, _alan = grace_app
    before = local_users(app)
    browser.cookies.clear()
    body = with_tokens(
        body,
        **{
            LIVE: lwa_emulator.mint_token(CLIENT_ID, GRACE),
            FOREIGN: lwa_emulator.mint_token("amzn1.application-oa2-client.otherapp", GRACE),
            EXPIRED: lwa_emulator.mint_token(CLIENT_ID, GRACE, expires_in=0),
        },
    )
    answer, payload = post_json(browser, app, "token", body)
    assert answer.status_code < 500  # Amazon is up: any failure is the body's
    key, value = outcome(payload)
    # Grace's email has a local account: at best the sign-in asks for its password.
    if key == "status":
        assert (answer.status_code, value) == (200, "password_required")
        assert payload["email"] == "grace@example.com"
    else:
        assert value in {"invalid_request", "invalid_token", "wrong_audience"}
    assert app.links() == []
    assert local_users(app) == before
    assert browser.get(f"{app.url}/me").status_code == 401


passwords = st.one_of(st.sampled_from([PASSWORD, ALAN_PASSWORD]), st.text(max_size=30))
usernames = st.one_of(st.sampled_from(["grace", "alan"]), st.text(max_size=20))
# What a client of a password prompt sends, right or wrong...
answers = st.fixed_dictionaries(
    {"partial_token": st.just(LIVE), "password": passwords},
    optional={"username": usernames},
)
# ...and what it should not: other prompts' fields, wrong types, unknown fields.
odd_answers = st.fixed_dictionaries(
    {"partial_token": st.one_of(st.just(LIVE), st.text(max_size=40), json_values)},
    optional={
        "password": st.one_of(passwords, json_values),
        "username": st.one_of(usernames, json_values),
        "code": st.one_of(passwords, json_values),
        "email": st.one_of(st.just("alan@example.com"), st.text(max_size=30)),
        "name": st.one_of(st.text(max_size=30), json_values),
    },
)
continue_bodies = st.one_of(
    answers,  # half of the examples
    st.one_of(
        odd_answers,
        st.tuples(odd_answers, extra_fields).map(lambda parts: {**parts[1], **parts[0]}),
        json_values,
    ),
)


@slow
@given(body=continue_bodies)
@example(body={"partial_token": LIVE, "password": PASSWORD})
@example(body={"partial_token": LIVE, "password": PASSWORD, "username": "grace"})
@example(body={"partial_token": LIVE, "password": PASSWORD, "username": "alan"})
@example(body={"partial_token": LIVE, "password": ALAN_PASSWORD, "username": "alan"})
@example(body={"partial_token": LIVE, "password": ALAN_PASSWORD})
def test_any_continue_body_links_only_with_the_right_password_to_the_right_account(
    grace_app, lwa_emulator, browser, body
):
    app, grace, alan = grace_app
    # A fresh pause each time: no link, no counted failures, a new cookie jar.
    app.query_write("DELETE FROM social_auth_usersocialauth")
    app.query_write("DELETE FROM amazon_link_password_attempts")
    browser.cookies.clear()
    before = local_users(app)
    _, paused = post_json(
        browser, app, "token", {"access_token": lwa_emulator.mint_token(CLIENT_ID, GRACE)}
    )
    assert paused["status"] == "password_required"
    live = paused["partial_token"]
    body = with_tokens(body, **{LIVE: live})

    answer, payload = post_json(browser, app, "continue", body)
    assert answer.status_code < 500
    key, value = outcome(payload)
    assert local_users(app) == before
    links = app.links()
    if key == "status":
        # Linked: only with Grace's password, and only to Grace's account.
        assert (answer.status_code, value) == (200, "authenticated")
        assert payload["user"]["id"] == grace and payload["new_user"] is False
        assert isinstance(body, dict)
        assert body.get("partial_token") == live and body.get("password") == PASSWORD
        assert links == [(grace, GRACE)]
        assert browser.get(f"{app.url}/me").json()["id"] == grace
        return
    assert value in {"invalid_request", "invalid_partial", "wrong_password"}
    assert links == []
    # A wrong password counts against Grace's account, the one asked about, only.
    assert app.failures(grace) == (1 if value == "wrong_password" else 0)
    assert app.failures(alan) == 0
    assert browser.get(f"{app.url}/me").status_code == 401
    # The plain right answer never fails.
    assert body != {"partial_token": live, "password": PASSWORD}


@slow
@given(body=profile_bodies)
def test_any_profile_answer_to_the_api_never_500_and_never_links_the_wrong_account(
    owned, lwa_emulator, browser, body
):
    app, owner_id = owned
    token = owner_token_answered_with(body, lwa_emulator, browser)
    answer, payload = post_json(browser, app, "token", {"access_token": token})
    key, value = outcome(payload)
    if key == "status":
        # Tokeninfo vouches for OWNER; a profile naming anyone else is refused.
        assert (answer.status_code, value) == (200, "authenticated")
        assert body["user_id"] == OWNER and payload["user"]["id"] == owner_id
    else:
        assert (answer.status_code, value) == (502, "amazon_unavailable")
    assert app.links() == [(owner_id, OWNER)]  # the owner's link never moves
    assert len(app.query("SELECT id FROM users")) == 1
