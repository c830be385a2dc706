"""The framework-neutral flow, driven with no web framework at all.

``tests.plain_integration`` is the whole integration: a strategy over dicts,
the real SQLAlchemy storage on a real database, and the LWA emulator over
loopback HTTP (it runs its own server, which may load Flask: this module and
the integration do not, as the last test checks in a fresh interpreter).
"""

from __future__ import annotations

import io
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from social_amazon_link.pipelines import pause as pause_module
from social_amazon_link.pipelines.reauth import SIGNED_IN_AT_KEY
from social_amazon_link.pipelines.registration import DEFAULT_REQUIRED_FIELDS, FORM_FIELDS
from social_core.pipeline.utils import partial_prepare
from social_core.utils import PARTIAL_TOKEN_PENDING_SESSION_NAME, PARTIAL_TOKEN_SESSION_NAME
from sqlalchemy import text

from social_amazon_link.errors import (
    DatabaseUnavailable,
    InsecureTransport,
    InvalidPartial,
    InvalidRequest,
    RegistrationInvalid,
    RequestTooLarge,
    TooManyAttempts,
    WrongPassword,
)
from social_amazon_link.flow import api, pages, paused, prompts
from social_amazon_link.flow.purge import purge
from social_amazon_link.settings import AmazonSettingsError, check_strategy_settings
from tests.plain_integration import (
    PLAIN_CLIENT_ID,
    SIGNED_IN,
    Database,
    PlainStrategy,
    Redirect,
    plain_settings,
)
from tests.test_packaging import import_and_watch

ROOT = Path(__file__).resolve().parent.parent
GRACE = "amzn1.account.AEGRACEHOPPER00001"
ADA = "amzn1.account.AEADALOVELACE00001"
PASSWORD = "correct horse battery"


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def db(database_url: str) -> Any:
    database = Database(database_url)
    yield database
    database.close()


@pytest.fixture
def lwa(lwa_emulator: Any) -> Any:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    return lwa_emulator


@pytest.fixture
def settings(lwa: Any) -> dict[str, Any]:
    return plain_settings(lwa.url)


def amazon_calls(lwa: Any) -> dict[str, int]:
    counts = lwa.stats()["requests"]
    return {"tokeninfo": counts["tokeninfo"], "profile": counts["profile"]}


def body(answer: api.Answer) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(answer.text)
    return result


def sign_in(db: Database, lwa: Any, strategy: PlainStrategy, amazon_id: str) -> api.Answer:
    token = lwa.mint_token(PLAIN_CLIENT_ID, amazon_id)
    answer: api.Answer = db.call(api.token, strategy, {"access_token": token})
    assert token not in answer.text
    return answer


@pytest.fixture
def grace_paused(db: Database, lwa: Any, settings: dict[str, Any]) -> Any:
    """Grace has a local account; her Amazon sign-in paused on its password."""
    grace = db.add_user("grace", "grace@example.com", PASSWORD)
    strategy = PlainStrategy(settings)
    answer = body(sign_in(db, lwa, strategy, GRACE))
    assert answer["status"] == "password_required"
    return SimpleNamespace(grace=grace, strategy=strategy, token=answer["partial_token"])


def load(db: Database, strategy: PlainStrategy, token: Any, **kw: Any) -> paused.PausedSignIn:
    with db.request():
        return paused.load_paused(strategy, token, **kw)


# -- /token and /continue -------------------------------------------------------


def test_token_for_an_unknown_identity_creates_links_and_signs_in(db, lwa, settings):
    strategy = PlainStrategy(settings)
    answer = sign_in(db, lwa, strategy, ADA)

    assert answer.status == 200
    assert answer.headers == {"Cache-Control": "no-store"}
    [(ada, username, email)] = db.users()
    assert body(answer) == {
        "status": "authenticated",
        "user": {"id": ada, "username": "AdaLovelace", "email": "ada@example.com"},
        "new_user": True,
    }
    assert (username, email) == ("AdaLovelace", "ada@example.com")
    assert db.links() == [(ada, "amazon", ADA)]
    assert db.pauses() == [] and db.attempts() == []
    # Rule 7: the adapter's hook, once, with that user; the session says so.
    assert strategy.logins == [ada]
    assert strategy.session[SIGNED_IN] == ada
    assert strategy.session["social_auth_last_login_backend"] == "amazon"
    assert amazon_calls(lwa) == {"tokeninfo": 1, "profile": 1}


def test_matching_email_asks_for_the_password_then_links(db, lwa, grace_paused):
    grace, strategy, token = grace_paused.grace, grace_paused.strategy, grace_paused.token
    assert db.pauses() == [token]
    assert strategy.session[PARTIAL_TOKEN_SESSION_NAME] == token
    assert db.links() == [] and strategy.logins == [] and SIGNED_IN not in strategy.session

    with pytest.raises(WrongPassword) as wrong:
        db.call(api.resume, strategy.next_request(), {"partial_token": token, "password": "nope"})
    assert wrong.value.attempts_left == 4
    answer = api.error_answer(wrong.value)
    assert (answer.status, body(answer)) == (403, {"error": "wrong_password", "attempts_left": 4})
    assert db.pauses() == [token]  # kept: the person may try again
    assert db.attempts() == [(grace, "link", 1)]
    assert db.links() == [] and strategy.logins == []

    done = db.call(
        api.resume, strategy.next_request(), {"partial_token": token, "password": PASSWORD}
    )
    assert (done.status, body(done)) == (
        200,
        {
            "status": "authenticated",
            "user": {"id": grace, "username": "grace", "email": "grace@example.com"},
            "new_user": False,
        },
    )
    assert db.links() == [(grace, "amazon", GRACE)]
    assert db.pauses() == [] and PARTIAL_TOKEN_SESSION_NAME not in strategy.session
    assert [failures for _user, _scope, failures in db.attempts()] in ([], [0])
    assert strategy.logins == [grace]
    assert strategy.session[SIGNED_IN] == grace
    assert amazon_calls(lwa) == {"tokeninfo": 1, "profile": 1}


def test_a_new_sign_in_in_the_session_ends_the_pause_it_left(db, lwa, grace_paused):
    strategy, first = grace_paused.strategy, grace_paused.token
    again = body(sign_in(db, lwa, strategy.next_request(), GRACE))
    assert again["status"] == "password_required" and again["partial_token"] != first
    assert db.pauses() == [again["partial_token"]]
    # Someone else, on the same browser, signs in: nothing of Grace's waits.
    ada = body(sign_in(db, lwa, strategy.next_request(), ADA))
    assert ada["status"] == "authenticated" and ada["new_user"] is True
    assert db.pauses() == [] and PARTIAL_TOKEN_SESSION_NAME not in strategy.session
    assert strategy.logins == [ada["user"]["id"]]


def test_a_signed_in_user_connects_amazon_without_signing_in_again(db, lwa, settings):
    grace = db.add_user("grace", "grace@example.com", PASSWORD)
    # Signed in just now (LINK_REAUTH_SECONDS asks an older session for proof).
    strategy = PlainStrategy(
        settings, {SIGNED_IN: grace, SIGNED_IN_AT_KEY: [str(grace), time.time()]}
    )
    answer = body(sign_in(db, lwa, strategy, ADA))
    assert answer == {
        "status": "authenticated",
        "user": {"id": grace, "username": "grace", "email": "grace@example.com"},
        "new_user": False,
    }
    assert db.links() == [(grace, "amazon", ADA)] and db.users()[1:] == []
    assert strategy.logins == []  # already signed in: rule 7's hook is not called again


def test_error_answers_carry_the_code_and_retry_after_and_never_a_secret():
    locked = api.error_answer(TooManyAttempts(retry_after=120))
    assert (locked.status, locked.headers["Retry-After"]) == (429, "120")
    assert body(locked)["error"] == "too_many_attempts"
    outage = api.error_answer(DatabaseUnavailable(reason="OperationalError"))
    assert (outage.status, body(outage)) == (503, {"error": "database_unavailable"})
    assert outage.headers == {"Cache-Control": "no-store", "Retry-After": "5"}
    secret = "Atza|IwEBIsecret"
    try:
        raise ValueError(f"unexpected {secret}")
    except ValueError as error:
        answer, logged = api.server_error(error, [secret])
    assert (answer.status, body(answer)) == (500, {"error": "server_error"})
    assert secret not in logged and "unexpected <redacted>" in logged


def test_an_answer_the_prompt_does_not_take_keeps_the_pause_and_counts_nothing(db, grace_paused):
    strategy, token = grace_paused.strategy, grace_paused.token
    with pytest.raises(InvalidRequest) as error:
        db.call(api.resume, strategy.next_request(), {"partial_token": token, "code": "ABCD2345"})
    assert error.value.detail == (
        "This sign-in waits for password: 'code' cannot answer it (send 'password', 'username')."
    )
    assert db.pauses() == [token] and db.attempts() == [] and db.links() == []


# -- load_paused ---------------------------------------------------------------


def test_load_paused_returns_the_checked_pause(db, grace_paused):
    loaded = load(db, grace_paused.strategy, grace_paused.token)
    assert (loaded.token, loaded.kind, loaded.backend.name) == (
        grace_paused.token,
        "password",
        "amazon",
    )
    assert loaded.backend.redirect_uri == "http://app.test/complete/amazon/"
    assert loaded.prompt["email"] == "grace@example.com" and loaded.prompt["signed_in"] is None
    assert db.pauses() == [grace_paused.token]  # loading uses nothing up


@pytest.mark.parametrize(
    "token",
    [None, "", "0123456789abcdef0123456789abcdef", "ab\x00cd", "\ud800", "x" * 5000, "é" * 32],
)
def test_load_paused_refuses_an_unknown_token_and_leaves_the_real_pause(db, grace_paused, token):
    with pytest.raises(InvalidPartial) as error:
        load(db, grace_paused.strategy, token)
    assert (error.value.code, error.value.reason) == ("invalid_partial", "unknown")
    assert db.pauses() == [grace_paused.token]


def test_load_paused_refuses_a_prompt_the_caller_cannot_answer_and_ends_it(db, grace_paused):
    with pytest.raises(InvalidPartial) as error:
        load(db, grace_paused.strategy, grace_paused.token, kinds=prompts.PAGES["registration"])
    assert error.value.reason == "unknown"
    assert db.pauses() == []


def test_load_paused_refuses_another_session_and_ends_the_pause(db, grace_paused, settings):
    # The token alone (leaked in a log, a screenshot) from another client.
    stranger = PlainStrategy(settings, {PARTIAL_TOKEN_SESSION_NAME: "f" * 32})
    with pytest.raises(InvalidPartial) as error:
        load(db, stranger, grace_paused.token)
    assert error.value.reason == "other_session"
    assert db.pauses() == []
    # The session that paused it holds a token to nothing now.
    with pytest.raises(InvalidPartial) as again:
        load(db, grace_paused.strategy, grace_paused.token)
    assert again.value.reason == "unknown"


def test_load_paused_refuses_whoever_signed_in_since(db, grace_paused):
    mallory = db.add_user("mallory", "mallory@example.com", "mallory's own")
    strategy = grace_paused.strategy
    strategy.session[SIGNED_IN] = mallory  # the next person on a shared browser
    with pytest.raises(InvalidPartial) as error:
        load(db, strategy, grace_paused.token)
    assert error.value.reason == "other_user"
    assert db.pauses() == [] and PARTIAL_TOKEN_SESSION_NAME not in strategy.session
    assert db.links() == []


def test_load_paused_refuses_a_pause_older_than_the_max_age(db, grace_paused, monkeypatch):
    grace_paused.strategy.settings["SOCIAL_AUTH_AMAZON_LINK_PROMPT_MAX_AGE"] = 60

    def later(seconds: float) -> None:
        now = time.time() + seconds
        monkeypatch.setattr(pause_module, "time", SimpleNamespace(time=lambda: now))

    later(59)
    assert load(db, grace_paused.strategy, grace_paused.token).kind == "password"
    later(61)
    with pytest.raises(InvalidPartial) as error:
        load(db, grace_paused.strategy, grace_paused.token)
    assert error.value.reason == "expired"
    assert db.pauses() == []


# -- ending a waiting prompt ---------------------------------------------------


def app_own_pause(db: Database, strategy: PlainStrategy) -> str:
    """A pause of the app's own step (no prompt of ours), as social-core stores one."""
    with db.request():
        backend = paused.load_backend(strategy, "amazon")
        partial = partial_prepare(strategy, backend, 12, accept="terms")
        strategy.storage.partial.store(partial)
    strategy.session_set(PARTIAL_TOKEN_SESSION_NAME, partial.token)
    return str(partial.token)


def end_waiting(db: Database, strategy: PlainStrategy, *, starting: bool, state: Any) -> None:
    with db.request():
        paused.end_waiting_prompt(strategy, "amazon", starting=starting, state=state)


def test_starting_a_new_sign_in_ends_the_waiting_prompt(db, grace_paused):
    strategy = grace_paused.strategy
    end_waiting(db, strategy, starting=True, state=None)
    assert db.pauses() == [] and PARTIAL_TOKEN_SESSION_NAME not in strategy.session
    end_waiting(db, strategy, starting=True, state=None)  # nothing waits: nothing to do


def test_a_callback_with_a_foreign_state_refuses_our_prompt(db, grace_paused):
    strategy = grace_paused.strategy
    with pytest.raises(InvalidPartial) as error:
        end_waiting(db, strategy, starting=False, state="forged0state")
    assert error.value.reason == "not_on_its_page"
    assert db.pauses() == [] and PARTIAL_TOKEN_SESSION_NAME not in strategy.session


def test_a_callback_bringing_back_a_sign_in_of_this_session_ends_the_prompt(db, grace_paused):
    strategy = grace_paused.strategy
    with db.request():
        url = paused.load_backend(strategy, "amazon").auth_url()  # stores the OAuth2 state
    state = url.split("state=")[1].split("&")[0]
    assert paused.returns_from_provider(strategy, "amazon", state)
    assert not paused.returns_from_provider(strategy, "amazon", state[:-1] + "x")
    end_waiting(db, strategy, starting=False, state=state)
    assert db.pauses() == []


def test_the_apps_own_pause_still_resumes_through_the_callback(db, settings):
    strategy = PlainStrategy(settings)
    token = app_own_pause(db, strategy)
    end_waiting(db, strategy, starting=False, state=None)
    assert db.pauses() == [token] and strategy.session[PARTIAL_TOKEN_SESSION_NAME] == token
    end_waiting(db, strategy, starting=True, state=None)
    assert db.pauses() == []


def test_end_sign_ins_ends_the_pause_and_every_started_sign_in_only(db, grace_paused, settings):
    strategy = grace_paused.strategy
    with db.request():
        for _ in range(2):
            paused.load_backend(strategy, "amazon").auth_url()
    pending = app_own_pause(db, PlainStrategy(settings))
    strategy.session.update(
        {
            PARTIAL_TOKEN_PENDING_SESSION_NAME: pending,
            "amazon_state": "olderstyle",
            "amazon_code_verifier": "association-only",
            "cart": [1, 2],
            "amazonian": "the app's own",
            "amazon_statement": "the app's own too",
            "next": "/orders",
        }
    )
    started = [k for k in strategy.session if k.startswith("amazon_oauth2_")]
    assert len(started) == 3  # two states and their index

    with db.request():
        paused.end_sign_ins(strategy)
    assert db.pauses() == []
    assert sorted(strategy.session) == ["amazon_statement", "amazonian", "cart", "next"]


# -- reading a body ------------------------------------------------------------


def read(raw: bytes, length: int | None = -1, mimetype: str = "application/json") -> Any:
    stream = io.BytesIO(raw)
    return api.read_json(stream.read, len(raw) if length == -1 else length, mimetype)


def test_read_json_takes_an_object_up_to_the_limit():
    text = '{"access_token": "Atza|x", "pad": "' + "a" * (api.MAX_BODY_BYTES - 40) + '"}'
    raw = text.encode().ljust(api.MAX_BODY_BYTES)
    assert len(raw) == api.MAX_BODY_BYTES
    assert read(raw)["access_token"] == "Atza|x"
    assert read(raw, length=None)["access_token"] == "Atza|x"  # chunked: no length


def test_read_json_refuses_a_too_large_body_by_its_length_unread():
    def no_read(_n: int) -> bytes:
        raise AssertionError("a body announced too large is not read")

    with pytest.raises(RequestTooLarge) as error:
        api.read_json(no_read, api.MAX_BODY_BYTES + 1, "application/json")
    assert (error.value.code, error.value.http_status) == ("request_too_large", 413)


@pytest.mark.parametrize("length", [None, 10])
def test_read_json_refuses_a_too_large_stream_reading_one_byte_past_the_limit(length):
    read_so_far = []

    def endless(n: int) -> bytes:
        read_so_far.append(n)
        return b" " * min(n, 1000)

    with pytest.raises(RequestTooLarge):
        api.read_json(endless, length, "application/json")
    assert sum(min(n, 1000) for n in read_so_far) == api.MAX_BODY_BYTES + 1


@pytest.mark.parametrize("mimetype", ["text/plain", "", "application/x-www-form-urlencoded"])
def test_read_json_refuses_another_content_type(mimetype):
    with pytest.raises(InvalidRequest) as error:
        read(b'{"a": 1}', mimetype=mimetype)
    assert error.value.detail == "Content-Type must be application/json."


NOT_ONE_OBJECT = {
    b"": "The request has no body: send a JSON object.",
    b'{"a": "\xff"}': "The body is not UTF-8.",
    b'{"a": 1, "a": 2}': "Field 'a' appears more than once.",
    b'{"a": NaN}': "The body is not valid JSON: NaN is not a JSON value.",
    b'{"a": -Infinity}': "The body is not valid JSON: -Infinity is not a JSON value.",
    b'{"a": ' + b"9" * 5000 + b"}": "The body has a number too long to read (5000 digits).",
    b"[1, 2]": "The body must be a JSON object, not an array.",
    b'"x"': "The body must be a JSON object, not a string.",
    b"null": "The body must be a JSON object, not null.",
    b"12": "The body must be a JSON object, not a number.",
    b"true": "The body must be a JSON object, not a boolean.",
    b'{"a": 1,}': "The body is not valid JSON: Expecting property name enclosed in double "
    "quotes (line 1, column 9).",
    b"[" * 30000: "The body is nested too deeply.",
}


@pytest.mark.parametrize("raw", list(NOT_ONE_OBJECT), ids=range(len(NOT_ONE_OBJECT)))
def test_read_json_refuses_what_is_not_one_json_object(raw):
    with pytest.raises(InvalidRequest) as error:
        read(raw)
    assert error.value.as_json() == {"error": "invalid_request", "message": NOT_ONE_OBJECT[raw]}


def test_read_json_says_a_broken_chunked_body_could_not_be_read():
    def broken(_n: int) -> bytes:
        raise OSError("Invalid chunk header")

    with pytest.raises(InvalidRequest) as error:
        api.read_json(broken, None, "application/json")
    assert error.value.detail == "The body could not be read: its chunked encoding is broken."


# -- rule 1: the transport -----------------------------------------------------


def transport(settings: dict[str, Any], **request: Any) -> None:
    strategy = PlainStrategy(settings, **request)
    api.check_transport(strategy, paused.load_backend(strategy, "amazon"))


@pytest.mark.parametrize(
    "request_",
    [
        {"secure": True, "remote_addr": "203.0.113.7"},
        {"secure": True, "remote_addr": None},
        {"remote_addr": "127.0.0.1"},
        {"remote_addr": "127.8.9.10"},
        {"remote_addr": "::1"},
        {"remote_addr": "0:0:0:0:0:0:0:1"},
        # A dual-stack server (bound to "::") sees an IPv4 loopback client so.
        {"remote_addr": "::ffff:127.0.0.1"},
    ],
)
def test_check_transport_accepts_https_and_loopback(settings, request_):
    transport(settings, **request_)


@pytest.mark.parametrize(
    "remote_addr",
    [
        "203.0.113.7",
        "192.168.1.10",
        "10.0.0.1",
        "2001:db8::1",
        "fe80::1%eth0",
        "::ffff:203.0.113.7",
        "0.0.0.0",
        "localhost",
        "127.0.0.1 ",
        "",
        None,
    ],
)
def test_check_transport_refuses_plain_http_from_elsewhere(settings, remote_addr):
    with pytest.raises(InsecureTransport) as error:
        transport(settings, remote_addr=remote_addr)
    answer = api.error_answer(error.value)
    assert (answer.status, body(answer)) == (
        400,
        {"error": "insecure_transport", "message": "Sign-in tokens are accepted over HTTPS only."},
    )


@pytest.mark.parametrize(
    "name", ["SOCIAL_AUTH_AMAZON_BEHIND_TLS_PROXY", "SOCIAL_AUTH_BEHIND_TLS_PROXY"]
)
def test_check_transport_accepts_plain_http_behind_a_tls_proxy(settings, name):
    transport({**settings, name: True}, remote_addr="203.0.113.7")
    with pytest.raises(InsecureTransport):
        transport({**settings, name: False}, remote_addr="203.0.113.7")


@pytest.mark.parametrize("value", ["false", "False", "0", "no", 1, "True"])
def test_only_true_turns_the_https_check_off_and_anything_else_stops_the_start(settings, value):
    # An environment variable read as a string: "false" is true to Python.
    setting = {**settings, "SOCIAL_AUTH_AMAZON_BEHIND_TLS_PROXY": value}
    with pytest.raises(InsecureTransport):
        transport(setting, remote_addr="203.0.113.7")
    with pytest.raises(AmazonSettingsError) as error:
        check_strategy_settings(PlainStrategy(setting))
    assert error.value.problems == {
        "SOCIAL_AUTH_AMAZON_BEHIND_TLS_PROXY": f"{value!r} is not True or False "
        "(a boolean, not a string)."
    }


def test_a_token_over_plain_http_reaches_neither_amazon_nor_the_database(db, lwa, settings):
    strategy = PlainStrategy(settings, remote_addr="203.0.113.7")
    with pytest.raises(InsecureTransport):
        sign_in(db, lwa, strategy, ADA)
    assert amazon_calls(lwa) == {"tokeninfo": 0, "profile": 0}
    assert db.users() == [] and db.links() == [] and db.pauses() == []
    assert strategy.logins == [] and strategy.session == {}


def test_a_password_over_plain_http_is_refused_before_it_is_checked(db, grace_paused):
    strategy = grace_paused.strategy.next_request(remote_addr="203.0.113.7")
    with pytest.raises(InsecureTransport):
        db.call(api.resume, strategy, {"partial_token": grace_paused.token, "password": PASSWORD})
    assert db.pauses() == [grace_paused.token]
    assert db.attempts() == [] and db.links() == [] and strategy.logins == []


# -- the prompts table ---------------------------------------------------------


def test_every_prompt_is_served_by_its_page_and_answers_with_its_own_status():
    assert set(prompts.PAGES) == {"password", "registration"}
    for kind, prompt in prompts.PROMPTS.items():
        assert prompt.kind == kind
        assert kind in prompts.PAGES[prompt.page]
        assert (
            prompt.template
            == f"social_amazon_link/{'register' if kind == 'registration' else 'password'}.html"
        )
    served = [kind for kinds in prompts.PAGES.values() for kind in kinds]
    assert sorted(served) == sorted(prompts.PROMPTS)  # each on exactly one page
    statuses = [prompt.status for prompt in prompts.PROMPTS.values()]
    assert len(set(statuses)) == len(statuses)
    assert not set(prompts.NOT_ANSWERS) & {f for p in prompts.PROMPTS.values() for f in p.fields}


def test_prompt_fields_add_the_required_fields_to_registration(settings):
    def backend(**more: Any) -> Any:
        return paused.load_backend(PlainStrategy({**settings, **more}), "amazon")

    assert prompts.prompt_fields("registration", backend()) == tuple(
        dict.fromkeys((*FORM_FIELDS, *DEFAULT_REQUIRED_FIELDS))
    )
    required = backend(SOCIAL_AUTH_AMAZON_LINK_REQUIRED_FIELDS=["email", "postal_code"])
    assert prompts.prompt_fields("registration", required) == (
        "username",
        "email",
        "name",
        "postal_code",
    )
    assert prompts.prompt_fields("password", required) == ("password", "username")
    assert prompts.prompt_fields("email_code", required) == ("code",)
    assert prompts.answer_fields(required) == (
        "password",
        "username",
        "code",
        "email",
        "name",
        "postal_code",
    )


def test_pause_answer_for_each_prompt():
    assert prompts.pause_answer("t", {"kind": "password", "email": "a@b.c"}) == {
        "status": "password_required",
        "partial_token": "t",
        "email": "a@b.c",
    }
    chooser = {"kind": "password", "email": "a@b.c", "choose_account": True}
    assert prompts.pause_answer("t", chooser)["choose_account"] is True
    code = prompts.pause_answer("t", {"kind": "email_code", "email": "a@b.c", "choose_account": 1})
    assert code == {"status": "code_required", "partial_token": "t", "email": "a@b.c"}
    registration = {
        "kind": "registration",
        "prefill": {"username": "ada"},
        "required": ["username", "email"],
        "errors": {"email": "Enter your email."},
    }
    assert prompts.pause_answer("t", registration) == {
        "status": "registration_required",
        "partial_token": "t",
        "prefill": {"username": "ada"},
        "required": ["username", "email"],
        "errors": {"email": "Enter your email."},
    }


# -- the pages -----------------------------------------------------------------


def open_page(db: Database, strategy: PlainStrategy, page: str, **kw: Any) -> pages.PromptPage:
    with db.request():
        return pages.open_prompt(strategy, page, **{"post": False, "form": {}, "query": {}, **kw})


def test_open_prompt_shows_the_pause_on_its_page(db, grace_paused):
    token = grace_paused.token
    page = open_page(db, grace_paused.strategy, "password", query={"partial_token": token})
    assert page.template == "social_amazon_link/password.html" and page.status == 200
    assert page.context["partial_token"] == token and page.context["values"] == {}
    assert page.context["prompt"]["kind"] == "password"
    posted = open_page(
        db, grace_paused.strategy, "password", post=True, form={"partial_token": token}
    )
    assert posted.paused.token == token


def test_open_prompt_refuses_a_query_token_that_disagrees_with_the_form(db, grace_paused):
    with pytest.raises(InvalidPartial) as error:
        open_page(
            db,
            grace_paused.strategy,
            "password",
            post=True,
            form={"partial_token": grace_paused.token},
            query={"partial_token": "0" * 32},
        )
    assert error.value.reason == "token_mismatch"
    assert db.pauses() == [grace_paused.token]


def registration_paused(db: Database, lwa: Any, settings: dict[str, Any]) -> Any:
    settings["SOCIAL_AUTH_AMAZON_LINK_REQUIRED_FIELDS"] = ["username", "email", "postal_code"]
    settings["SOCIAL_AUTH_USER_FIELDS"] = ["username", "email", "postal_code"]
    strategy = PlainStrategy(settings)
    answer = body(sign_in(db, lwa, strategy, ADA))  # Amazon has no postal code for Ada
    assert answer["status"] == "registration_required"
    return strategy, answer


def test_a_registration_pause_is_answered_on_its_page(db, lwa, settings):
    strategy, answer = registration_paused(db, lwa, settings)
    token = answer["partial_token"]
    strategy = strategy.next_request(data={"partial_token": token})
    page = open_page(db, strategy, "registration", query={"partial_token": token})
    assert page.template == "social_amazon_link/register.html"
    assert page.context["values"] == answer["prefill"]
    assert set(page.context["errors"]) == {"postal_code"}

    form = {"partial_token": token, "csrf_token": "c", **answer["prefill"]}
    with db.request():
        again = pages.answer_prompt(page, form, None)
    assert again is page and page.status == 400
    assert isinstance(page.context["error"], RegistrationInvalid)
    assert set(page.context["errors"]) == {"postal_code"}
    assert page.context["values"] == {"partial_token": token, **answer["prefill"]}
    assert db.pauses() == [token] and db.users() == []

    with db.request():
        done = pages.answer_prompt(page, {**form, "postal_code": "98109"}, None)
    assert done == Redirect("/me")
    [(ada, username, email)] = db.users()
    assert (username, email) == ("AdaLovelace", "ada@example.com")
    assert db.rows("SELECT postal_code FROM users") == [("98109",)]
    assert db.links() == [(ada, "amazon", ADA)] and db.pauses() == []
    assert strategy.logins == [ada]


def test_a_pause_is_refused_on_another_prompts_page_and_ended(db, lwa, settings):
    strategy, answer = registration_paused(db, lwa, settings)
    with pytest.raises(InvalidPartial) as error:
        open_page(db, strategy, "password", query={"partial_token": answer["partial_token"]})
    assert error.value.reason == "unknown"
    assert db.pauses() == [] and db.users() == []


def test_answer_prompt_shows_the_form_again_after_a_wrong_password(db, grace_paused):
    strategy = grace_paused.strategy.next_request(data={"partial_token": grace_paused.token})
    page = open_page(db, strategy, "password", query={"partial_token": grace_paused.token})
    form = {
        "partial_token": grace_paused.token,
        "password": "nope",
        "csrf_token": "c",
        "username": "grace",
    }
    with db.request():
        again = pages.answer_prompt(page, form, None)
    assert again is page and page.status == 403
    assert isinstance(page.context["error"], WrongPassword)
    assert page.context["values"] == {"partial_token": grace_paused.token, "username": "grace"}
    assert db.pauses() == [grace_paused.token]
    assert db.attempts() == [(grace_paused.grace, "link", 1)]

    with db.request():
        done = pages.answer_prompt(page, {**form, "password": PASSWORD}, None)
    assert done == Redirect("/me")
    assert db.links() == [(grace_paused.grace, "amazon", GRACE)] and db.pauses() == []
    assert strategy.logins == [grace_paused.grace]


def test_cancel_prompt_ends_the_pause(db, grace_paused):
    page = open_page(
        db, grace_paused.strategy, "password", query={"partial_token": grace_paused.token}
    )
    with db.request():
        assert pages.cancel_prompt(page) == "/login"
    assert db.pauses() == [] and db.links() == []


def test_error_page_redirects_to_the_apps_error_url_with_the_code(settings):
    strategy = PlainStrategy({**settings, "SOCIAL_AUTH_LOGIN_ERROR_URL": "/oops"})
    page = pages.error_page(strategy, InvalidPartial(reason="expired"), signed_in=False)
    assert (page.status, page.redirect_url) == (400, "/oops?error=invalid_partial")
    strategy.settings["SOCIAL_AUTH_LOGIN_ERROR_URL"] = "/oops?from=amazon"
    page = pages.error_page(strategy, InsecureTransport(), signed_in=True)
    assert page.redirect_url == "/oops?from=amazon&error=insecure_transport"
    # An outage is answered here: the app's error page needs the database too.
    outage = pages.error_page(strategy, DatabaseUnavailable(reason="x"), signed_in=False)
    assert (outage.status, outage.redirect_url) == (503, None)
    assert outage.context["code"] == "database_unavailable"
    assert outage.headers == {"Retry-After": "5"}


def test_error_page_is_a_page_with_the_code_otherwise(settings):
    strategy = PlainStrategy(settings)
    page = pages.error_page(strategy, InvalidPartial(reason="expired"), signed_in=False)
    assert (page.status, page.redirect_url, page.headers) == (400, None, {})
    assert page.template == "social_amazon_link/error.html"
    assert page.context["code"] == "invalid_partial"
    assert page.context["message"] == InvalidPartial.message
    assert page.context["back_url"] == "/login"
    signed_in = pages.error_page(strategy, InvalidRequest("Send a password."), signed_in=True)
    assert signed_in.context["message"] == "Send a password."
    assert signed_in.context["back_url"] == "/me"

    locked = pages.error_page(strategy, TooManyAttempts(retry_after=120), signed_in=False)
    assert (locked.status, locked.headers) == (429, {"Retry-After": "120"})
    assert locked.context["message"] == TooManyAttempts.message


# -- purge ---------------------------------------------------------------------


def test_purge_reads_its_lifetimes_through_the_strategy_and_reports_counts(db, lwa, settings):
    db.add_user("grace", "grace@example.com", PASSWORD)
    fresh, old = PlainStrategy(settings), PlainStrategy(settings)
    assert body(sign_in(db, lwa, fresh, GRACE))["status"] == "password_required"
    old_token = body(sign_in(db, lwa, old, GRACE))["partial_token"]
    # That one paused two minutes ago.
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE social_auth_partial SET timestamp = :t WHERE token = :k"),
            {"t": datetime.now(UTC) - timedelta(seconds=120), "k": old_token},
        )

    with db.request():
        assert purge(PlainStrategy(settings)) == (
            "purged 0 OAuth2 states, 0 paused sign-ins, 0 emailed codes, "
            "0 password-attempt counters, 0 link events"
        )
    assert len(db.pauses()) == 2
    settings["SOCIAL_AUTH_AMAZON_LINK_PROMPT_MAX_AGE"] = 60
    with db.request():
        assert purge(PlainStrategy(settings)) == (
            "purged 0 OAuth2 states, 1 paused sign-ins, 0 emailed codes, "
            "0 password-attempt counters, 0 link events"
        )
    assert old_token not in db.pauses() and len(db.pauses()) == 1


# -- no web framework ----------------------------------------------------------


def test_this_module_and_its_integration_load_no_web_framework():
    result = import_and_watch(sys.executable, ("tests.plain_integration", "tests.test_flow"), ROOT)
    assert result == {"loaded": [], "chains": {}}
