"""Telling the owner: LINK_NOTIFY_FUNCTION and the Flask signals, over the sample app.

Each committed link, unlink, email change and lockout sends exactly one message
to the account's address (the old one too for an email change); every event
fires its signal once; a failing sender never fails the sign-in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from social_amazon_link.pipelines.events import EVENTS

from tests import sample_app
from tests.conftest import CLIENT_SECRET
from tests.flows import answer_prompt, sign_in
from tests.test_settings import GOOD, problems_of

ADA = "amzn1.account.AEADALOVELACE000001"
GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "ada-password-1815"
NOTIFY = {"SOCIAL_AUTH_AMAZON_LINK_NOTIFY_FUNCTION": "tests.test_notifications.send"}
CODES = {"SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION": "tests.sample_app.send_code"}

#: What the sender was given: (user id, event, details).
SENT: list[tuple[Any, str, dict[str, Any]]] = []


def send(strategy: Any, user: Any, event: str, details: dict[str, Any]) -> None:
    """The app's sender (LINK_NOTIFY_FUNCTION): "mails" ``details``."""
    SENT.append((user.id, event, details))


def failing_send(strategy: Any, user: Any, event: str, details: dict[str, Any]) -> None:
    raise RuntimeError("SMTP login refused for smtp-password-hunter2")


@pytest.fixture(autouse=True)
def _empty_outboxes() -> Iterator[None]:
    SENT.clear()
    sample_app.OUTBOX.clear()
    yield
    SENT.clear()


@pytest.fixture
def SIGNALS(framework: str) -> dict[str, Any]:
    """The link signals of the framework under test (blinker's, or Django's)."""
    if framework == "django":
        from social_amazon_link.django.signals import SIGNALS as django_signals

        return dict(django_signals)
    from social_amazon_link.flask.signals import SIGNALS as flask_signals

    return dict(flask_signals)


@pytest.fixture
def signals(SIGNALS: dict[str, Any]) -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """Every link signal received: (event, user id, details), in order."""
    received: list[tuple[str, Any, dict[str, Any]]] = []
    receivers = []
    for name, signal in SIGNALS.items():

        def receiver(
            sender: Any, *, user: Any, details: dict[str, Any], _name: str = name, **_: Any
        ) -> None:
            received.append((_name, user.id, details))

        signal.connect(receiver)
        receivers.append((signal, receiver))
    yield received
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def sent(event: str | None = None) -> list[tuple[Any, str, list[str]]]:
    """(user id, event, recipients) of each message sent."""
    return [(uid, name, d["recipients"]) for uid, name, d in SENT if event in (None, name)]


def assert_no_secret(details: dict[str, Any], *secrets: str) -> None:
    shown = repr(details)
    for secret in (*secrets, CLIENT_SECRET, "Atza|", "Atzr|"):
        assert secret not in shown


def test_linking_with_the_password_tells_the_owner_once(serve_app, browser, lwa_emulator, signals):
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    app = serve_app(**NOTIFY)
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    prompt = sign_in(browser, app, ADA)
    assert "/link/amazon/password" in prompt.url and SENT == []
    assert answer_prompt(browser, prompt, password=PASSWORD).json()["id"] == ada

    assert sent() == [(ada, "linked", ["ada@example.com"])]
    details = SENT[0][2]
    assert details["event"] == "linked" and details["detail"] == "password"
    assert (details["amazon_name"], details["amazon_email"]) == ("Ada Lovelace", "ada@example.com")
    assert details["amazon_user_id"] == ADA and details["username"] == "ada"
    assert abs(details["when"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert details["subject"] == "An Amazon account was linked to your account"
    assert '"Ada Lovelace" (ada@example.com) was linked to your account' in details["text"]
    assert "after your password was entered" in details["text"]
    assert "If this was not you" in details["text"]
    assert_no_secret(details, PASSWORD)
    assert [(event, user) for event, user, _ in signals] == [("linked", ada)]
    assert signals[0][2] == details  # the signal and the message carry the same details


def test_linking_with_an_emailed_code_tells_the_owner_once_without_the_code(
    serve_app, browser, lwa_emulator
):
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    app = serve_app(**NOTIFY, **CODES)
    ada = app.add_user("ada", "ada@example.com")  # no password: a code proves it
    prompt = sign_in(browser, app, ADA)
    [(_address, code, _token)] = sample_app.OUTBOX
    assert SENT == []  # the code is the code's message, not a notification
    assert answer_prompt(browser, prompt, code=code).json()["id"] == ada

    assert sent() == [(ada, "linked", ["ada@example.com"])]
    details = SENT[0][2]
    assert details["detail"] == "email_code"
    assert "after the code we emailed you was entered" in details["text"]
    assert_no_secret(details, code)


def test_a_new_account_made_with_amazon_is_told_once(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(**NOTIFY)
    grace = sign_in(browser, app, GRACE).json()["id"]
    assert sent() == [(grace, "linked", ["grace@example.com"])]
    assert SENT[0][2]["detail"] == "new_account"
    # Signing in again with the linked account is no event: nothing more.
    browser.cookies.clear()
    assert sign_in(browser, app, GRACE).json()["id"] == grace
    assert len(SENT) == 1


def test_connecting_amazon_while_signed_in_is_told_to_the_accounts_address(
    serve_app, browser, lwa_emulator
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@amazon.example")
    app = serve_app(**NOTIFY)
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    browser.post(f"{app.url}/test-login", data={"username": "ada", "password": PASSWORD})
    assert sign_in(browser, app, GRACE).json()["id"] == ada
    # The account's own address: Amazon's is whatever its owner typed.
    assert sent() == [(ada, "linked", ["ada@example.com"])]
    details = SENT[0][2]
    assert (details["detail"], details["amazon_email"]) == ("signed_in", "grace@amazon.example")
    assert "while you were signed in" in details["text"]


def test_unlinking_tells_the_owner_once_naming_the_amazon_account(serve_app, browser):
    app = serve_app(**NOTIFY)
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    app.link(ada, ADA, name="Ada Lovelace", email="ada@amazon.example")
    browser.post(f"{app.url}/test-login", data={"username": "ada", "password": PASSWORD})
    token = browser.get(f"{app.url}/csrf-token").json()["csrf_token"]
    done = browser.post(
        f"{app.url}/disconnect/amazon/", data={"csrf_token": token}, allow_redirects=False
    )
    assert done.status_code == 302 and app.links() == []

    assert sent() == [(ada, "unlinked", ["ada@example.com"])]
    details = SENT[0][2]
    assert (details["amazon_name"], details["amazon_email"]) == (
        "Ada Lovelace",
        "ada@amazon.example",
    )
    assert '"Ada Lovelace" (ada@amazon.example) was removed from your account' in details["text"]


def test_an_email_copied_from_amazon_is_told_to_the_new_and_the_old_address(
    serve_app, browser, lwa_emulator, signals
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@old.example")
    app = serve_app(**NOTIFY)
    grace = sign_in(browser, app, GRACE).json()["id"]
    SENT.clear()
    signals.clear()
    browser.cookies.clear()
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@new.example")  # changed on Amazon
    assert sign_in(browser, app, GRACE).json()["email"] == "grace@new.example"

    assert sent() == [(grace, "email_updated", ["grace@new.example", "grace@old.example"])]
    details = SENT[0][2]
    assert (details["old_email"], details["new_email"]) == (
        "grace@old.example",
        "grace@new.example",
    )
    assert "changed from grace@old.example to grace@new.example" in details["text"]
    assert [event for event, _, _ in signals] == ["email_updated"]


def test_a_lockout_is_told_once_and_wrong_passwords_are_not_mailed(
    serve_app, browser, lwa_emulator, signals
):
    lwa_emulator.add_identity(ADA, "Mallory", "ada@example.com")  # someone else's Amazon
    app = serve_app(**NOTIFY)
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    prompt = sign_in(browser, app, ADA)
    for n in range(5):
        wrong = answer_prompt(browser, prompt, password=f"guess-{n}")
        assert wrong.status_code == 403
    refused = answer_prompt(browser, prompt, password=PASSWORD)  # locked: even the right one
    assert refused.status_code == 429

    assert sent() == [(ada, "locked_out", ["ada@example.com"])]
    details = SENT[0][2]
    assert details["amazon_name"] == "Mallory"
    assert "too many wrong passwords or codes were entered" in details["text"]
    assert "You can still sign in as usual" in details["text"]
    assert_no_secret(details, PASSWORD, *(f"guess-{n}" for n in range(5)))
    # Every event fired its signal once, the refusal while locked none (it is counted).
    assert [event for event, _, _ in signals] == [e[0] for e in app.events()]
    assert [event for event, _, _ in signals] == ["wrong_password"] * 5 + ["locked_out"]
    assert app.links() == []


def test_codes_asked_for_too_often_are_told_once(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(ADA, "Mallory", "ada@example.com")
    app = serve_app(**NOTIFY, **CODES, SOCIAL_AUTH_AMAZON_LINK_MAX_PASSWORD_ATTEMPTS=2)
    ada = app.add_user("ada", "ada@example.com")
    for _ in range(4):
        browser.cookies.clear()
        sign_in(browser, app, ADA)
    assert len(sample_app.OUTBOX) == 2  # the third and fourth were refused
    assert sent() == [(ada, "locked_out", ["ada@example.com"])]
    assert "too many codes were asked for" in SENT[0][2]["text"]


def test_a_failing_sender_is_logged_without_secrets_and_the_sign_in_goes_on(
    serve_app, browser, lwa_emulator, caplog, signals
):
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_NOTIFY_FUNCTION="tests.test_notifications.failing_send")
    ada = app.add_user("ada", "ada@example.com", PASSWORD)
    prompt = sign_in(browser, app, ADA)
    with caplog.at_level(logging.WARNING, logger="social_amazon_link"):
        answer = answer_prompt(browser, prompt, password=PASSWORD)
    assert answer.status_code == 200 and answer.json()["id"] == ada
    assert browser.get(f"{app.url}/me").json()["id"] == ada
    assert app.links() == [(ada, ADA)]
    assert [e[0] for e in app.events()] == ["linked"]
    [line] = [r.getMessage() for r in caplog.records if "LINK_NOTIFY_FUNCTION" in r.getMessage()]
    assert "linked event of user" in line and "RuntimeError" in line
    logged = caplog.text
    for secret in ("hunter2", PASSWORD, CLIENT_SECRET, "Atza|"):
        assert secret not in logged
    assert [event for event, _, _ in signals] == ["linked"]


def test_a_failing_signal_receiver_does_not_fail_the_sign_in(
    serve_app, browser, lwa_emulator, SIGNALS
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(**NOTIFY)

    def broken(app: Any, **_: Any) -> None:
        raise ValueError("receiver bug")

    SIGNALS["linked"].connect(broken)
    try:
        grace = sign_in(browser, app, GRACE).json()["id"]
    finally:
        SIGNALS["linked"].disconnect(broken)
    assert app.links() == [(grace, GRACE)]
    assert sent() == [(grace, "linked", ["grace@example.com"])]


def test_a_signal_receiver_cannot_change_whom_the_message_goes_to(
    serve_app, browser, lwa_emulator, SIGNALS
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(**NOTIFY)

    def meddling(app: Any, *, user: Any, details: dict[str, Any], **_: Any) -> None:
        details["recipients"].append("someone@else.example")
        details["text"] = "changed"

    SIGNALS["linked"].connect(meddling)
    try:
        grace = sign_in(browser, app, GRACE).json()["id"]
    finally:
        SIGNALS["linked"].disconnect(meddling)
    assert sent() == [(grace, "linked", ["grace@example.com"])]
    assert SENT[0][2]["text"] != "changed"


def test_an_event_that_is_not_committed_is_never_announced(
    serve_app, browser, lwa_emulator, db_kind, signals
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(**NOTIFY)
    # The database refuses the event's row: its transaction is rolled back.
    if db_kind == "sqlite":
        app.query_write(
            "CREATE TRIGGER no_events BEFORE INSERT ON amazon_link_events "
            "BEGIN SELECT RAISE(ABORT, 'no events today'); END"
        )
    else:
        app.query_write(
            "CREATE FUNCTION no_events() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no events today'; END $$"
        )
        app.query_write(
            "CREATE TRIGGER no_events BEFORE INSERT ON amazon_link_events "
            "FOR EACH ROW EXECUTE FUNCTION no_events()"
        )
    answer = sign_in(browser, app, GRACE)
    assert answer.status_code >= 500
    assert app.events() == []
    assert SENT == [] and signals == []


def test_without_a_sender_nothing_is_sent_and_signals_still_fire(
    serve_app, browser, lwa_emulator, signals
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    grace = sign_in(browser, app, GRACE).json()["id"]
    assert SENT == []
    assert [(event, user) for event, user, _ in signals] == [("linked", grace)]


def test_one_signal_per_event_named_as_the_event_table():
    from social_amazon_link.flask.signals import SIGNALS

    assert set(SIGNALS) == set(EVENTS)
    assert all(SIGNALS[name].name == name for name in EVENTS)
    for name in EVENTS:
        assert re.fullmatch(r"[a-z_]+", name)


@pytest.mark.parametrize(
    "value", ["tests.test_notifications.nowhere", "no_such_module.send", "tests.sample_app.OUTBOX"]
)
def test_a_sender_that_cannot_be_used_stops_the_start(value):
    problems = problems_of(**GOOD, SOCIAL_AUTH_AMAZON_LINK_NOTIFY_FUNCTION=value)
    assert list(problems) == ["SOCIAL_AUTH_AMAZON_LINK_NOTIFY_FUNCTION"]
    assert (
        "f(strategy, user, event, details)" in problems["SOCIAL_AUTH_AMAZON_LINK_NOTIFY_FUNCTION"]
    )


# -- the demo's Outbox -------------------------------------------------------------


def test_the_demo_outbox_lists_each_notice_with_its_recipient(site, browser):
    from demo.seed import GRACE_ID, KATHERINE_ID
    from tests.test_demo_account import amazon_callback, link_grace_by_password

    link_grace_by_password(browser, site)
    browser.cookies.clear()
    # Katherine's email changed on Amazon: the new and the old address are told.
    katherine = browser.get(amazon_callback(browser, site, KATHERINE_ID))
    assert katherine.url == f"{site.url}/account"

    outbox = browser.get(f"{site.url}/demo/outbox")
    notices = re.findall(
        r'<article class="email notice" data-to="([^"]+)">.*?'
        r'<h2 class="email-subject">([^<]+)</h2>(.*?)</article>',
        outbox.text,
        re.S,
    )
    assert [(to, subject) for to, subject, _ in notices] == [
        ("katherine.old@example.com", "Your account&#39;s email was changed from Amazon"),
        ("katherine@example.com", "Your account&#39;s email was changed from Amazon"),
        ("grace@example.com", "An Amazon account was linked to your account"),
    ]
    grace_text = notices[2][2]
    assert "Grace Hopper" in grace_text and "If this was not you" in grace_text
    assert "grace-password-1" not in outbox.text and GRACE_ID not in grace_text
