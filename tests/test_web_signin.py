"""The browser flow end to end over loopback: app -> emulator -> callback -> session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import event

from social_amazon_link.lwa import REGIONS
from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.flows import consent, sign_in, start_sign_in

ADA = "amzn1.account.AE7ADALOVELACE0001"


@pytest.fixture
def ada(lwa_emulator: Any) -> str:
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    return ADA


def test_first_sign_in_creates_user_link_and_session(serve_app, browser, lwa_emulator, ada):
    app = serve_app()
    final = sign_in(browser, app, ada)

    # The callback redirected to LOGIN_REDIRECT_URL with an authenticated session.
    assert final.url == f"{app.url}/me"
    assert final.status_code == 200
    me = final.json()
    assert me["authenticated"] is True
    assert me["email"] == "ada@example.com"

    users = app.query("SELECT id, username, email FROM users")
    assert [(u.id, u.email) for u in users] == [(me["id"], "ada@example.com")]
    links = app.query(
        "SELECT provider, uid, id_key, user_id, extra_data FROM social_auth_usersocialauth"
    )
    assert [(link.provider, link.uid, link.id_key, link.user_id) for link in links] == [
        ("amazon", ADA, "user_id", me["id"])
    ]
    # The state nonce was consumed, and the profile was fetched with the
    # token in the Authorization header.
    assert app.query("SELECT * FROM social_auth_nonce") == []
    stats = lwa_emulator.stats()
    assert stats["requests"]["token"] == 1
    assert stats["requests"]["profile"] == 1
    assert stats["requests"]["tokeninfo"] == 0  # our own exchange needs no audience check
    assert stats["token_in_query"] == 0


def test_returning_user_signs_into_the_same_account(serve_app, lwa_emulator, ada):
    app = serve_app()
    ids = []
    for _ in range(3):
        with requests.Session() as browser:
            ids.append(sign_in(browser, app, ada).json()["id"])
    assert len(set(ids)) == 1
    assert len(app.query("SELECT id FROM users")) == 1
    assert len(app.query("SELECT id FROM social_auth_usersocialauth")) == 1


def test_server_keeps_its_connection_to_amazon_alive(serve_app, lwa_emulator, ada):
    app = serve_app()
    with requests.Session() as browser:
        sign_in(browser, app, ada)
        after_first = lwa_emulator.stats()["connections"]
        for _ in range(3):
            sign_in(browser, app, ada)
    # Three more code exchanges and profile calls, not one new connection.
    assert lwa_emulator.stats()["connections"] == after_first
    assert lwa_emulator.stats()["requests"]["profile"] == 4


def test_declining_consent_is_access_denied_and_writes_nothing(serve_app, browser, ada):
    app = serve_app()
    page = sign_in(browser, app, ada, decision="deny")
    assert page.status_code == 403
    assert 'data-error-code="access_denied"' in page.text
    assert app.query("SELECT id FROM users") == []
    assert browser.get(f"{app.url}/me").status_code == 401


@pytest.mark.parametrize("error", ["unauthorized_client", "access_denied", "x\nforged log line"])
def test_an_error_on_a_callback_nobody_started_is_a_state_error(serve_app, browser, error):
    app = serve_app()
    page = browser.get(f"{app.url}/complete/amazon/", params={"error": error})
    assert page.status_code == 400
    assert 'data-error-code="missing_parameter"' in page.text  # the state
    assert app.query("SELECT id FROM users") == []


def test_an_error_amazon_sends_back_uses_up_the_sign_in(serve_app, browser, ada, caplog):
    app = serve_app()
    state = parse_qs(urlsplit(start_sign_in(browser, app)).query)["state"][0]
    callback = f"{app.url}/complete/amazon/"
    page = browser.get(callback, params={"error": "unauthorized_client", "state": state})
    assert page.status_code == 502
    assert 'data-error-code="amazon_misconfigured"' in page.text
    again = browser.get(callback, params={"error": "access_denied", "state": state})
    assert again.status_code == 400  # that sign-in is over

    state = parse_qs(urlsplit(start_sign_in(browser, app)).query)["state"][0]
    with caplog.at_level("INFO", logger="social_amazon_link"):
        odd = browser.get(callback, params={"error": "Odd\nline", "state": state})
    assert odd.status_code == 502
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("social_amazon_link")]
    assert any("unknown_error" in message for message in ours)
    assert not any("Odd" in message for message in ours)


def test_replayed_callback_is_refused(serve_app, browser, ada):
    app = serve_app()
    callback = consent(browser, start_sign_in(browser, app), ada, "allow")
    assert browser.get(callback).status_code == 200
    replay = browser.get(callback)
    assert replay.status_code == 400
    assert 'data-error-code="session_context_missing"' in replay.text
    assert len(app.query("SELECT id FROM users")) == 1


@pytest.mark.parametrize(
    ("endpoint", "fault", "status", "code"),
    [
        ("token", {"status": 400, "body": {"error": "invalid_grant"}}, 400, "invalid_grant"),
        (
            "token",
            {"status": 401, "body": {"error": "invalid_client"}},
            502,
            "amazon_misconfigured",
        ),
        ("token", {"status": 500, "body": "oops"}, 502, "amazon_unavailable"),
        ("token", {"drop": True}, 502, "amazon_unavailable"),
        ("profile", {"status": 400, "body": {"error": "invalid_token"}}, 401, "invalid_token"),
        ("profile", {"status": 401, "body": {}}, 401, "invalid_token"),
        ("profile", {"status": 403, "body": {}}, 401, "invalid_token"),
        ("profile", {"status": 429, "body": {}}, 502, "amazon_unavailable"),
        ("profile", {"status": 500, "body": "oops"}, 502, "amazon_unavailable"),
        ("profile", {"status": 503, "body": "down"}, 502, "amazon_unavailable"),
        ("profile", {"delay_ms": 1500}, 502, "amazon_unavailable"),
        ("profile", {"drop": True}, 502, "amazon_unavailable"),
        ("profile", {"status": 200, "body": "not json"}, 502, "amazon_unavailable"),
        ("profile", {"status": 200, "body": {"name": "x"}}, 502, "amazon_unavailable"),
        ("profile", {"status": 200, "body": {"user_id": "garbled id"}}, 502, "amazon_unavailable"),
    ],
)
def test_each_amazon_failure_ends_on_its_code_and_writes_nothing(
    serve_app, browser, lwa_emulator, ada, endpoint, fault, status, code
):
    app = serve_app(SOCIAL_AUTH_AMAZON_REQUESTS_TIMEOUT=0.5)
    lwa_emulator.fault(endpoint, times=1, **fault)
    page = sign_in(browser, app, ada)
    assert page.status_code == status
    assert f'data-error-code="{code}"' in page.text
    assert "canceled" not in page.text.lower()
    assert app.query("SELECT id FROM users") == []
    assert app.query("SELECT id FROM social_auth_usersocialauth") == []
    assert app.query("SELECT id FROM social_auth_partial") == []
    assert app.events() == []
    # The fault was transient: the next sign-in works.
    me = sign_in(browser, app, ada).json()
    assert me["authenticated"] is True
    assert app.links() == [(me["id"], ADA)]


def test_legacy_profile_shape_still_signs_in(serve_app, browser, lwa_emulator, ada):
    app = serve_app()
    lwa_emulator.fault(
        "profile",
        status=200,
        body={"Profile": {"CustomerId": ADA, "Name": "Ada L", "PrimaryEmail": "ada@example.com"}},
    )
    assert sign_in(browser, app, ada).json()["email"] == "ada@example.com"
    assert [r.uid for r in app.query("SELECT uid FROM social_auth_usersocialauth")] == [ADA]


def test_a_link_written_without_id_key_signs_in_and_is_re_keyed(serve_app, browser, ada):
    # As social-auth-app-flask-sqlalchemy wrote it: no id_key, the uid in extra_data.
    app = serve_app()
    user_id = app.add_user("ada", "ada@example.com", password="pw")
    app.link(user_id, ada)
    app.query_write(
        "UPDATE social_auth_usersocialauth SET id_key = '', extra_data = :data",
        data=f'{{"user_id": "{ada}"}}',
    )

    assert sign_in(browser, app, ada).json()["id"] == user_id
    links = app.query("SELECT user_id, uid, id_key FROM social_auth_usersocialauth")
    assert [tuple(link) for link in links] == [(user_id, ADA, "user_id")]


@pytest.mark.parametrize("region", ["NA", "EU", "FE"])
def test_without_overrides_the_region_picks_amazons_real_urls(serve_app, browser, region):
    app = serve_app(
        SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL=None,
        SOCIAL_AUTH_AMAZON_API_URL=None,
        SOCIAL_AUTH_AMAZON_REGION=region,
    )
    location = start_sign_in(browser, app)
    expected = REGIONS[region]
    assert location.split("?")[0] == expected.authorization_url
    query = parse_qs(urlsplit(location).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["profile"]
    assert query["redirect_uri"] == [f"{app.url}/complete/amazon/"]
    assert len(query["state"][0]) >= 32

    with app.backend() as backend:
        api = {
            "NA": "https://api.amazon.com",
            "EU": "https://api.amazon.co.uk",
            "FE": "https://api.amazon.co.jp",
        }[region]
        assert backend.access_token_url() == f"{api}/auth/o2/token"
        assert backend.lwa.profile_url == f"{api}/user/profile"
        assert backend.lwa.tokeninfo_url == f"{api}/auth/o2/tokeninfo"


@pytest.mark.parametrize(
    ("scope", "sent"),
    [
        (["profile:user_id"], "profile:user_id"),
        (["postal_code"], "profile postal_code"),
        (["profile", "postal_code"], "profile postal_code"),
        # A string, as Amazon writes scopes.
        ("profile postal_code", "profile postal_code"),
        ("postal_code", "profile postal_code"),
    ],
)
def test_scope_setting(serve_app, browser, scope, sent):
    app = serve_app(SOCIAL_AUTH_AMAZON_SCOPE=scope)
    location = start_sign_in(browser, app)
    assert parse_qs(urlsplit(location).query)["scope"] == [sent]


def assert_client_token_wrote_nothing(app, browser) -> None:
    assert app.query("SELECT id FROM users") == []
    assert app.query("SELECT id FROM social_auth_usersocialauth") == []
    assert app.query("SELECT token FROM social_auth_partial") == []
    assert app.query("SELECT event FROM amazon_link_events") == []
    assert browser.get(f"{app.url}/me").status_code == 401


def assert_our_token_then_signs_in(app, browser, lwa_emulator) -> None:
    token = lwa_emulator.mint_token(CLIENT_ID, ADA)
    answer = browser.post(f"{app.url}/client-token", data={"access_token": token})
    assert answer.status_code == 200
    [user] = app.query("SELECT id FROM users")
    assert answer.json()["id"] == user.id
    assert app.links() == [(user.id, ADA)]
    assert browser.get(f"{app.url}/me").json()["id"] == user.id


def test_client_token_for_another_app_is_refused_and_writes_nothing(
    serve_app, browser, lwa_emulator, ada
):
    app = serve_app()
    foreign = lwa_emulator.mint_token("amzn1.application-oa2-client.otherapp", ada)
    page = browser.post(f"{app.url}/client-token", data={"access_token": foreign})
    assert page.status_code == 403
    assert 'data-error-code="wrong_audience"' in page.text
    assert_client_token_wrote_nothing(app, browser)
    assert_our_token_then_signs_in(app, browser, lwa_emulator)


def test_expired_client_token_is_invalid_token_and_writes_nothing(
    serve_app, browser, lwa_emulator, ada
):
    app = serve_app()
    expired = lwa_emulator.mint_token(CLIENT_ID, ada, expires_in=0)
    page = browser.post(f"{app.url}/client-token", data={"access_token": expired})
    assert page.status_code == 401
    assert 'data-error-code="invalid_token"' in page.text
    assert_client_token_wrote_nothing(app, browser)
    assert_our_token_then_signs_in(app, browser, lwa_emulator)


def test_client_token_for_our_app_signs_in(serve_app, browser, lwa_emulator, ada):
    app = serve_app()
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    answer = browser.post(f"{app.url}/client-token", data={"access_token": token})
    assert answer.status_code == 200
    assert browser.get(f"{app.url}/me").json()["id"] == answer.json()["id"]
    stats = lwa_emulator.stats()["requests"]
    assert (stats["tokeninfo"], stats["profile"]) == (1, 1)


def test_no_secret_or_token_reaches_the_logs(serve_app, browser, lwa_emulator, ada, caplog):
    app = serve_app()
    token = lwa_emulator.mint_token("amzn1.application-oa2-client.otherapp", ada)
    with caplog.at_level("DEBUG"):
        sign_in(browser, app, ada)
        browser.post(f"{app.url}/client-token", data={"access_token": token})
    assert "wrong_audience" in caplog.text
    assert CLIENT_SECRET not in caplog.text
    assert token.split("|", 1)[1] not in caplog.text
    # Nor any other token, as it is or percent-encoded in a URL.
    for prefix in ("Atza|", "Atzr|", "Atza%7C", "Atzr%7C"):
        assert prefix not in caplog.text


def extra_data(app) -> dict[str, Any]:
    import json

    [row] = app.query("SELECT extra_data FROM social_auth_usersocialauth")
    return row.extra_data if isinstance(row.extra_data, dict) else json.loads(row.extra_data)


def test_link_keeps_the_profile_but_no_token_by_default(serve_app, browser, ada):
    app = serve_app()
    sign_in(browser, app, ada)
    data = extra_data(app)
    assert data["user_id"] == ADA and data["email"] == "ada@example.com"
    assert data["name"] == "Ada Lovelace"  # what an account page names the link by
    assert isinstance(data["auth_time"], int)
    assert not {"access_token", "refresh_token"} & set(data)


def test_store_tokens_keeps_them_for_apps_that_call_amazon(serve_app, browser, ada):
    app = serve_app(SOCIAL_AUTH_AMAZON_STORE_TOKENS=True)
    sign_in(browser, app, ada)
    data = extra_data(app)
    assert data["access_token"].startswith("Atza|")
    assert data["refresh_token"].startswith("Atzr|")
    assert data["token_type"] == "bearer"
    assert data["client_id"] is None  # the refresh token is KEY's

    # social-core's refresh, as an app calls it: KEY and SECRET (the emulator
    # refuses a confidential client's refresh without its secret).
    with app.backend() as backend:
        social = backend.strategy.storage.user.get_social_auth("amazon", ada)
        social.refresh_token(backend.strategy)
    refreshed = extra_data(app)
    assert refreshed["refresh_token"].startswith("Atzr|")
    assert refreshed["access_token"] not in (data["access_token"], None)
    assert refreshed["client_id"] is None


@contextmanager
def sql_statements(app) -> Iterator[list[str]]:
    """The SQL statements the app sends meanwhile, as their first words."""
    statements: list[str] = []
    engine = app.engine

    def count(conn, cursor, statement, *args):
        words = statement.split()
        statements.append(" ".join(words[:3] if words[0].upper() == "INSERT" else words[:2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.flask_only  # the SQLAlchemy storage's statements
def test_returning_user_costs_one_query_and_no_write(serve_app, browser, lwa_emulator, ada):
    app = serve_app()
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    assert browser.post(f"{app.url}/client-token", data={"access_token": token}).ok
    with sql_statements(app) as statements, requests.Session() as again:
        answer = again.post(f"{app.url}/client-token", data={"access_token": token})
    assert answer.ok
    assert [s.split()[0] for s in statements] == ["SELECT"]  # the link, with its user joined


@pytest.mark.flask_only  # the SQLAlchemy storage's statements
def test_first_sign_in_reads_nothing_back_after_writing(serve_app, browser, lwa_emulator, ada):
    app = serve_app()
    token = lwa_emulator.mint_token(CLIENT_ID, ada)
    with sql_statements(app) as statements:
        answer = browser.post(f"{app.url}/client-token", data={"access_token": token})
    assert answer.json()["username"] == "AdaLovelace"
    first_write = statements.index("INSERT INTO users")
    # The lookups, the lock, the writes: what was just committed is not
    # selected again.
    assert statements[first_write:] == [
        "INSERT INTO users",
        "INSERT INTO social_auth_usersocialauth",
        "INSERT INTO amazon_link_events",
        "UPDATE social_auth_usersocialauth",  # the link's extra_data
    ]
    # The link and the email looked up, the lock (taken only now that a new
    # account will be written), both looked up again under it, the new
    # account's checks: at most twelve statements.
    assert len(statements) <= 12


def test_the_proxies_setting_reaches_amazon_through_the_proxy(
    serve_app, browser, lwa_emulator, ada
):
    # API_URL names a loopback port nothing listens on (plain http is allowed
    # on loopback only); the emulator plays the proxy.
    app = serve_app(
        SOCIAL_AUTH_AMAZON_API_URL="http://127.0.0.2:9",
        SOCIAL_AUTH_PROXIES={"http": lwa_emulator.url},
    )
    assert sign_in(browser, app, ada).json()["authenticated"] is True


def test_social_cores_generic_calls_raise_this_librarys_errors(serve_app, lwa_emulator):
    """social-core's own paths (refresh, revoke) call backend.request(), which
    must raise for an error answer as social-core's does, not return it."""
    from social_amazon_link.errors import AmazonUnavailable, InvalidGrant

    app = serve_app()
    with app.backend() as backend:
        lwa_emulator.fault("token", status=400, body={"error": "invalid_grant"}, times=1)
        with pytest.raises(InvalidGrant):
            backend.refresh_token("Atzr|not-a-real-one")
        lwa_emulator.fault("profile", status=503, body="down", times=1)
        with pytest.raises(AmazonUnavailable):
            backend.request(backend.lwa.profile_url)


def test_a_backend_the_app_does_not_have_is_not_found(serve_app, browser):
    app = serve_app()
    page = app.start_sign_in(browser, backend="nope")
    assert page.status_code == 404
    assert 'data-error-code="backend_missing"' in page.text


@pytest.mark.flask_only  # the Flask page's view names
def test_the_readmes_view_names_and_link_listing(serve_app, browser, lwa_emulator, ada):
    from flask import url_for

    from social_amazon_link.flask.storage import FlaskStorage

    app = serve_app()
    # The consent helper of docs/emulator.md: the person on the sign-in page, in one call.
    callback = lwa_emulator.consent(start_sign_in(browser, app), ada)
    me = browser.get(callback).json()
    with app.app.test_request_context("/"):
        assert url_for("social.auth", backend="amazon") == "/login/amazon/"
        user = FlaskStorage.user.get_user(me["id"])
        links = FlaskStorage.user.get_social_auth_for_user(user, "amazon")
        assert [(link.uid, link.extra_data.get("email")) for link in links] == [
            (ADA, "ada@example.com")
        ]
        assert [link.id for link in user.social_auth] == [links[0].id]
        assert (
            url_for("social.disconnect", backend="amazon", association_id=links[0].id)
            == f"/disconnect/amazon/{links[0].id}/"
        )
    app.app.extensions["test_session"].remove()
