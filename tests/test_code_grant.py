"""The LWA SDK's authorization-code grant, and AUDIENCES, over loopback HTTP.

A phone (a cookie-keeping ``requests.Session``) asks the sample app for a
challenge (``/api/amazon/code/challenge``), plays the LWA SDK against the
emulator with it (a public client, an ``amzn://`` redirect URI), and sends the
code back (``/api/amazon/code``). Each test asserts the answer, the database
(no user, no link written on a refusal) and the emulator's counters (a refusal
made before Amazon was called calls no token endpoint).
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from social_amazon_link.errors import WrongAudience
from social_amazon_link.flow import challenge as challenge_module
from social_amazon_link.settings import AmazonSettingsError, check_settings
from tests.conftest import CLIENT_ID, Served
from tests.test_transport import local_address

GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "correct horse battery"
MOBILE = "amzn1.application-oa2-client.5ec0de00000000000000000000mobile"
MOBILE_REDIRECT = "amzn://com.example.acmebooks"
OTHER_APP = "amzn1.application-oa2-client.0therapp0000000000000000000000"
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


@pytest.fixture
def lwa(lwa_emulator: Any) -> Any:
    """The emulator with Grace, and the public mobile client beside the app's own."""
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    lwa_emulator.add_client(MOBILE, public=True, redirect_uris=[MOBILE_REDIRECT], name="Acme")
    lwa_emulator.add_client(OTHER_APP, public=True, redirect_uris=["amzn://com.example.other"])
    return lwa_emulator


@pytest.fixture
def app(serve_app: Any, lwa: Any) -> Served:
    return serve_app(SOCIAL_AUTH_AMAZON_AUDIENCES=[MOBILE])


@pytest.fixture
def phone() -> Any:
    with requests.Session() as session:
        yield session


def post(phone: requests.Session, app: Served, path: str, body: Any) -> requests.Response:
    # verify=False: a TLS listener's certificate is made up on the spot.
    answer = phone.post(f"{app.url}/api/amazon/{path}", json=body, timeout=30, verify=False)
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "no-store"
    return answer


def challenge(phone: requests.Session, app: Served) -> str:
    answer = post(phone, app, "code/challenge", {})
    assert answer.status_code == 200
    body = answer.json()
    assert body["code_challenge_method"] == "S256"
    assert CHALLENGE.fullmatch(body["code_challenge"])
    return str(body["code_challenge"])


def sdk_code(
    lwa: Any,
    code_challenge: str,
    *,
    client_id: str = MOBILE,
    redirect_uri: str = MOBILE_REDIRECT,
    user_id: str = GRACE,
) -> str:
    """What the LWA SDK does on the phone: authorize with the challenge, return the code."""
    query = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "profile",
        "state": "sdk-state",
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    back = lwa.consent(f"{lwa.authorize_url}?{urlencode(query)}", user_id)
    assert back.startswith(redirect_uri + "?")
    return str(parse_qs(urlsplit(back).query)["code"][0])


def send_code(phone: requests.Session, app: Served, code: str, **fields: Any) -> requests.Response:
    body = {"code": code, "client_id": MOBILE, "redirect_uri": MOBILE_REDIRECT, **fields}
    return post(phone, app, "code", body)


def token_calls(lwa: Any) -> int:
    return int(lwa.stats()["requests"].get("token", 0))


def users(app: Served) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in app.query("SELECT id, email FROM users ORDER BY id")]


def extra_data(app: Served) -> dict[str, Any]:
    import json

    rows = app.query("SELECT extra_data FROM social_auth_usersocialauth")
    assert len(rows) == 1
    value = rows[0].extra_data
    return dict(json.loads(value) if isinstance(value, str) else value)


def assert_nothing_written(app: Served) -> None:
    assert users(app) == []
    assert app.links() == []


# -- the grant -----------------------------------------------------------------


def test_the_code_grant_signs_a_new_person_in(app, lwa, phone):
    code = sdk_code(lwa, challenge(phone, app))

    answer = send_code(phone, app, code)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["new_user"]) == ("authenticated", True)
    assert body["user"]["email"] == "grace@example.com"
    assert users(app) == [(body["user"]["id"], "grace@example.com")]
    assert app.links() == [(body["user"]["id"], GRACE)]
    # Exchanged by this server: no tokeninfo needed, and no token is stored by default.
    stats = lwa.stats()["requests"]
    assert (stats.get("token"), stats.get("tokeninfo", 0)) == (1, 0)
    assert "refresh_token" not in extra_data(app)
    assert phone.get(f"{app.url}/me").json()["id"] == body["user"]["id"]


def test_the_code_grant_takes_the_apps_own_key_too(serve_app, lwa, phone):
    app = serve_app()
    lwa.add_client(MOBILE, public=True, redirect_uris=[MOBILE_REDIRECT])
    # KEY's own client, registered public with the SDK's redirect URI.
    lwa.add_client(CLIENT_ID, public=True, redirect_uris=[MOBILE_REDIRECT])
    code = sdk_code(lwa, challenge(phone, app), client_id=CLIENT_ID)

    answer = send_code(phone, app, code, client_id=CLIENT_ID)

    assert answer.json()["status"] == "authenticated"


def test_the_code_grant_pauses_on_the_password_and_keeps_the_sealed_refresh_token(
    serve_app, lwa, phone
):
    app = serve_app(SOCIAL_AUTH_AMAZON_AUDIENCES=[MOBILE], SOCIAL_AUTH_AMAZON_STORE_TOKENS=True)
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    code = sdk_code(lwa, challenge(phone, app))

    paused = send_code(phone, app, code)

    body = paused.json()
    assert (paused.status_code, body["status"]) == (200, "password_required")
    assert app.links() == []
    # The refresh token waits sealed in the paused sign-in, never in clear.
    assert "Atzr|" not in str(app.query("SELECT * FROM social_auth_partial"))
    done = post(
        phone, app, "continue", {"partial_token": body["partial_token"], "password": PASSWORD}
    )
    assert done.json()["status"] == "authenticated"
    assert app.links() == [(grace, GRACE)]
    assert str(extra_data(app)["refresh_token"]).startswith("Atzr|")


def test_a_mobile_apps_kept_refresh_token_is_refreshed_as_that_app(serve_app, lwa, phone):
    app = serve_app(SOCIAL_AUTH_AMAZON_AUDIENCES=[MOBILE], SOCIAL_AUTH_AMAZON_STORE_TOKENS=True)
    assert send_code(phone, app, sdk_code(lwa, challenge(phone, app))).json()["status"] == (
        "authenticated"
    )
    kept = extra_data(app)
    assert (kept["client_id"], kept["refresh_token"][:5]) == (MOBILE, "Atzr|")

    # The emulator refuses a public client's refresh that carries a secret
    # (invalid_client): KEY's SECRET must not go with it.
    with app.backend() as backend:
        social = backend.strategy.storage.user.get_social_auth("amazon", GRACE)
        social.refresh_token(backend.strategy)

    refreshed = extra_data(app)
    assert refreshed["client_id"] == MOBILE
    assert refreshed["refresh_token"].startswith("Atzr|")
    assert refreshed["access_token"] not in (kept["access_token"], None)
    assert lwa.stats()["requests"]["token"] == 2


def test_a_refresh_token_of_a_client_no_longer_accepted_is_not_sent(serve_app, lwa):
    # A link made through MOBILE, after the app dropped it from AUDIENCES.
    app = serve_app(SOCIAL_AUTH_AMAZON_STORE_TOKENS=True)
    with app.backend() as backend, pytest.raises(WrongAudience):
        backend.refresh_token("Atzr|kept-for-mobile", client_id=MOBILE)
    assert lwa.stats()["requests"].get("token", 0) == 0


# -- refused before Amazon is called ---------------------------------------------


def test_a_client_id_neither_key_nor_an_audience_is_wrong_audience(app, lwa, phone):
    code = sdk_code(
        lwa, challenge(phone, app), client_id=OTHER_APP, redirect_uri="amzn://com.example.other"
    )

    answer = send_code(
        phone, app, code, client_id=OTHER_APP, redirect_uri="amzn://com.example.other"
    )

    assert (answer.status_code, answer.json()) == (403, {"error": "wrong_audience"})
    assert token_calls(lwa) == 0
    assert_nothing_written(app)


@pytest.mark.parametrize("spelling", [MOBILE.upper(), MOBILE + " ", " " + MOBILE, MOBILE[:-1]])
def test_a_client_id_spelled_otherwise_is_wrong_audience(app, lwa, phone, spelling):
    code = sdk_code(lwa, challenge(phone, app))

    answer = send_code(phone, app, code, client_id=spelling)

    # A space cannot be in a client id at all; any other spelling is another app's.
    expected = (400, "invalid_request") if " " in spelling else (403, "wrong_audience")
    assert (answer.status_code, answer.json()["error"]) == expected
    assert token_calls(lwa) == 0
    assert_nothing_written(app)


def test_no_challenge_in_this_session_is_invalid_request(app, lwa, phone):
    code = sdk_code(lwa, challenge(requests.Session(), app))

    answer = send_code(phone, app, code)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "challenge" in answer.json()["message"]
    assert token_calls(lwa) == 0
    assert_nothing_written(app)


def test_an_expired_challenge_is_invalid_request(app, lwa, phone, monkeypatch):
    code = sdk_code(lwa, challenge(phone, app))
    monkeypatch.setattr(challenge_module, "CHALLENGE_LIFETIME", -1)

    answer = send_code(phone, app, code)

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert token_calls(lwa) == 0
    assert_nothing_written(app)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"code": None}, "'code' is required"),
        ({"redirect_uri": None}, "'redirect_uri' is required"),
        ({"client_id": 42}, "'client_id' must be a string"),
        ({"code": ""}, "'code' is empty"),
        ({"code": "A" * 5000}, "longer than"),
        ({"code": "has space"}, "printable ASCII"),
        ({"access_token": "Atza|x"}, "Unknown field"),
        ({"user_id": GRACE}, "Unknown field"),
        ({"client_id": MOBILE.replace("o", "\u043e")}, "printable ASCII"),  # Cyrillic o
        ({"redirect_uri": MOBILE_REDIRECT + "\u0000"}, "NUL"),
    ],
)
def test_missing_extra_and_malformed_fields_are_invalid_request(app, lwa, phone, change, says):
    code = sdk_code(lwa, challenge(phone, app))
    body = {"code": code, "client_id": MOBILE, "redirect_uri": MOBILE_REDIRECT, **change}
    body = {key: value for key, value in body.items() if value is not None}

    answer = post(phone, app, "code", body)

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert says in answer.json()["message"]
    assert code not in answer.text
    assert token_calls(lwa) == 0
    assert_nothing_written(app)
    # The challenge was not used: the proper request still signs in.
    assert send_code(phone, app, code).json()["status"] == "authenticated"


def test_the_challenge_endpoint_takes_an_empty_object_only(app, lwa, phone):
    answer = post(phone, app, "code/challenge", {"code_challenge": "mine"})

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


def test_other_methods_are_405(app, lwa, phone):
    for path in ("code", "code/challenge"):
        answer = phone.get(f"{app.url}/api/amazon/{path}")
        assert (answer.status_code, answer.json()["error"]) == (405, "method_not_allowed")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_code_over_plain_http_from_the_network_is_refused_before_amazon(app, lwa, phone):
    address = local_address()
    plain, tls = Served(app.app, address), Served(app.app, address, tls=True)
    try:
        code = sdk_code(lwa, challenge(phone, plain))

        refused = send_code(phone, plain, code)
        assert (refused.status_code, refused.json()["error"]) == (400, "insecure_transport")
        assert code not in refused.text
        assert token_calls(lwa) == 0
        assert_nothing_written(app)

        # Refused before the challenge was taken: over TLS, the same code signs in.
        assert send_code(phone, tls, code).json()["status"] == "authenticated"
    finally:
        plain.close()
        tls.close()


# -- attacks ---------------------------------------------------------------------


def test_a_code_replayed_is_invalid_grant(app, lwa, phone):
    code = sdk_code(lwa, challenge(phone, app))
    first = send_code(phone, app, code)
    assert first.json()["status"] == "authenticated"
    challenge(phone, app)

    again = send_code(phone, app, code)

    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})
    assert len(users(app)) == 1
    assert token_calls(lwa) == 2


def test_a_challenge_reused_after_a_success_is_refused_before_amazon(app, lwa, phone):
    code_challenge = challenge(phone, app)
    kept = phone.cookies.copy()  # the cookie that holds this challenge
    assert send_code(phone, app, sdk_code(lwa, code_challenge)).json()["status"] == "authenticated"

    with requests.Session() as replay:
        replay.cookies = kept
        answer = send_code(replay, app, sdk_code(lwa, code_challenge))

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert token_calls(lwa) == 1
    assert len(users(app)) == 1


def test_a_code_made_with_another_sessions_challenge_is_invalid_grant(app, lwa, phone):
    with requests.Session() as victim:
        stolen = sdk_code(lwa, challenge(victim, app))
    challenge(phone, app)  # the attacker's own challenge, and so its own verifier

    answer = send_code(phone, app, stolen)

    assert (answer.status_code, answer.json()) == (400, {"error": "invalid_grant"})
    assert token_calls(lwa) == 1
    assert_nothing_written(app)


def test_a_code_issued_to_another_client_is_invalid_grant(serve_app, lwa, phone):
    app = serve_app(SOCIAL_AUTH_AMAZON_AUDIENCES=[MOBILE, OTHER_APP])
    code = sdk_code(
        lwa, challenge(phone, app), client_id=OTHER_APP, redirect_uri="amzn://com.example.other"
    )

    answer = send_code(phone, app, code)  # sent as the mobile client's

    assert (answer.status_code, answer.json()) == (400, {"error": "invalid_grant"})
    assert token_calls(lwa) == 1
    assert_nothing_written(app)


def test_a_redirect_uri_other_than_the_codes_is_invalid_grant(serve_app, lwa, phone):
    lwa.add_client(MOBILE, public=True, redirect_uris=[MOBILE_REDIRECT, "amzn://com.example.b"])
    app = serve_app(SOCIAL_AUTH_AMAZON_AUDIENCES=[MOBILE])
    code = sdk_code(lwa, challenge(phone, app))

    answer = send_code(phone, app, code, redirect_uri="amzn://com.example.b")

    assert (answer.status_code, answer.json()) == (400, {"error": "invalid_grant"})
    assert_nothing_written(app)


def test_a_new_challenge_replaces_the_last(app, lwa, phone):
    first = challenge(phone, app)
    kept = phone.cookies.copy()
    code = sdk_code(lwa, first)
    challenge(phone, app)

    # This session's verifier is the new challenge's: the first code no longer matches.
    assert send_code(phone, app, code).json() == {"error": "invalid_grant"}
    # And a cookie kept from before holds a challenge that is over.
    with requests.Session() as replay:
        replay.cookies = kept
        answer = send_code(replay, app, sdk_code(lwa, first))
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert token_calls(lwa) == 1
    assert_nothing_written(app)


def test_concurrent_codes_with_one_challenge_only_one_wins(app, lwa, phone):
    code_challenge = challenge(phone, app)
    codes = [sdk_code(lwa, code_challenge) for _ in range(4)]
    start = threading.Barrier(len(codes))

    def send(code: str) -> requests.Response:
        with requests.Session() as copy:
            copy.cookies = phone.cookies.copy()
            start.wait()
            return send_code(copy, app, code)

    with ThreadPoolExecutor(len(codes)) as pool:
        answers = list(pool.map(send, codes))

    outcomes = sorted((a.status_code, a.json().get("error") or a.json()["status"]) for a in answers)
    assert outcomes == [(200, "authenticated")] + [(400, "invalid_request")] * 3
    assert token_calls(lwa) == 1
    assert len(users(app)) == 1
    assert len(app.links()) == 1


# -- with no web framework ------------------------------------------------------------


def test_the_code_grant_runs_on_the_neutral_core_alone(database_url, lwa):
    # What the Django adapter routes to: flow.api's functions, a strategy
    # over plain values, the SQLAlchemy storage; no Flask.
    import json

    from social_amazon_link.flow import api
    from tests.plain_integration import Database, PlainStrategy, plain_settings

    db = Database(database_url)
    try:
        strategy = PlainStrategy(plain_settings(lwa.url, SOCIAL_AUTH_AMAZON_AUDIENCES=[MOBILE]))
        issued = json.loads(db.call(api.code_challenge, strategy, {}).text)
        # The session keeps an id and a time, never the verifier.
        assert set(strategy.session["amazon_oauth2_code_challenge"]) == {"id", "at"}
        code = sdk_code(lwa, issued["code_challenge"])
        body = {"code": code, "client_id": MOBILE, "redirect_uri": MOBILE_REDIRECT}

        answer = db.call(api.code, strategy.next_request(), body)

        assert (answer.status, json.loads(answer.text)["status"]) == (200, "authenticated")
        [(grace, _username, email)] = db.users()
        assert (email, db.links()) == ("grace@example.com", [(grace, "amazon", GRACE)])
        assert strategy.logins == [grace]
        # The session holds no verifier, and no challenge any more.
        assert not [key for key in strategy.session if "challenge" in key or "verifier" in key]
    finally:
        db.close()


def test_a_request_that_lost_the_challenge_leaves_its_session_as_it_was(database_url, lwa):
    # Two requests racing with one cookie read the same session. The one that
    # finds the challenge taken must not save its copy: it is out of date (and
    # on Django saving it fails: the winner's sign-in gave the session a new key,
    # and the loser would answer Django's HTML 400 instead of JSON).
    import json

    from social_amazon_link.flow import api
    from tests.plain_integration import Database, PlainStrategy, plain_settings

    db = Database(database_url)
    try:
        strategy = PlainStrategy(plain_settings(lwa.url, SOCIAL_AUTH_AMAZON_AUDIENCES=[MOBILE]))
        issued = json.loads(db.call(api.code_challenge, strategy, {}).text)
        loser = PlainStrategy(strategy.settings, dict(strategy.session))
        body = {
            "code": sdk_code(lwa, issued["code_challenge"]),
            "client_id": MOBILE,
            "redirect_uri": MOBILE_REDIRECT,
        }
        assert db.call(api.code, strategy.next_request(), body).status == 200
        before = dict(loser.session)

        with pytest.raises(challenge_module.NoCodeChallenge) as refused:
            db.call(api.code, loser, body)

        assert refused.value.reason == "used"
        assert loser.session == before
        assert token_calls(lwa) == 1
    finally:
        db.close()


# -- the demo ------------------------------------------------------------------------


def test_the_demo_takes_its_mobile_clients_codes_and_tokens(site):
    from demo import MOBILE_CLIENT_ID, MOBILE_REDIRECT_URI
    from demo.seed import ADA_ID, GRACE_ID
    from social_amazon_link.emulator import LWAEmulator

    assert (MOBILE_CLIENT_ID, MOBILE_REDIRECT_URI) == (MOBILE, MOBILE_REDIRECT)
    amazon = LWAEmulator(site.emulator_url)
    with requests.Session() as phone:
        demo: Any = SimpleNamespace(url=site.url)  # what post() reads of a Served
        code = sdk_code(amazon, challenge(phone, demo), user_id=ADA_ID)
        signed_in = send_code(phone, demo, code).json()
    with requests.Session() as other_phone:
        token = amazon.mint_token(MOBILE, GRACE_ID)
        by_token = post(other_phone, demo, "token", {"access_token": token})
    assert (signed_in["status"], signed_in["user"]["email"]) == ("authenticated", "ada@example.com")
    assert site.amazon_links()[ADA_ID] == "AdaLovelace"
    assert by_token.json()["status"] == "password_required"
    amazon.close()


# -- AUDIENCES on /token -------------------------------------------------------------


def test_token_accepts_a_token_of_an_audience(app, lwa, phone):
    answer = post(phone, app, "token", {"access_token": lwa.mint_token(MOBILE, GRACE)})

    assert answer.json()["status"] == "authenticated"
    assert app.links() == [(answer.json()["user"]["id"], GRACE)]


def test_token_refuses_a_token_of_any_other_app(app, lwa, phone):
    answer = post(phone, app, "token", {"access_token": lwa.mint_token(OTHER_APP, GRACE)})

    assert (answer.status_code, answer.json()) == (403, {"error": "wrong_audience"})
    assert_nothing_written(app)


def test_without_audiences_only_keys_tokens_are_accepted(serve_app, lwa, phone):
    app = serve_app()

    answer = post(phone, app, "token", {"access_token": lwa.mint_token(MOBILE, GRACE)})

    assert (answer.status_code, answer.json()) == (403, {"error": "wrong_audience"})
    assert_nothing_written(app)


@pytest.mark.parametrize(
    "value", [MOBILE, [""], [MOBILE, 3], [" " + MOBILE], {"a": MOBILE}, [None]]
)
def test_audiences_must_be_a_list_of_client_ids(value):
    settings = {"KEY": "id", "SECRET": "secret", "AUDIENCES": value}

    with pytest.raises(AmazonSettingsError) as error:
        check_settings(lambda name, default: settings.get(name, default))

    assert list(error.value.problems) == ["SOCIAL_AUTH_AMAZON_AUDIENCES"]
    assert "list of the other LWA client ids" in str(error.value)


def test_audiences_may_be_a_list_or_a_tuple():
    for value in ([MOBILE], (MOBILE, OTHER_APP), []):
        settings = {"KEY": "id", "SECRET": "secret", "AUDIENCES": value}
        check_settings(lambda name, default, s=settings: s.get(name, default))
