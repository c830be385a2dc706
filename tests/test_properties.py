"""Property-based checks: whatever Amazon or a person sends, no 500 and no wrong link."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
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


@slow
@given(body=profile_bodies)
def test_any_profile_answer_never_500_and_never_links_the_wrong_account(
    owned, lwa_emulator, browser, body
):
    app, owner_id = owned
    token = lwa_emulator.mint_token(CLIENT_ID, OWNER)
    lwa_emulator.clear_faults()
    lwa_emulator.fault("profile", status=200, body=body, times=1)
    browser.cookies.clear()
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
