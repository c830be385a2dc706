"""Rules 3 and 4 over real HTTP: linked accounts sign in; same email needs the password."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests

from tests import sample_app
from tests.flows import answer_prompt, sign_in

GRACE = "amzn1.account.AEGRACEHOPPER00001"
ADA = "amzn1.account.AEADALOVELACE00001"
PASSWORD = "correct horse battery"


@pytest.fixture
def grace(lwa_emulator: Any) -> str:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    return GRACE


def test_linked_amazon_account_signs_into_its_user(serve_app, browser, grace):
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    app.link(user_id, grace)
    assert sign_in(browser, app, grace).json()["id"] == user_id
    assert app.links() == [(user_id, grace)]
    assert app.events() == []  # no new link, nothing to record


def test_same_email_and_right_password_links(serve_app, browser, grace):
    app = serve_app()
    user_id = app.add_user("grace", "Grace@Example.COM", PASSWORD)

    prompt = sign_in(browser, app, grace)
    assert prompt.url.startswith(f"{app.url}/link/amazon/password?partial_token=")
    assert "grace@example.com" in prompt.text
    assert app.links() == []  # nothing linked on the email alone
    assert len(app.query("SELECT id FROM social_auth_partial")) == 1

    done = answer_prompt(browser, prompt, password=PASSWORD)
    assert done.url == f"{app.url}/me"
    assert done.json()["id"] == user_id
    assert app.links() == [(user_id, grace)]
    assert app.events() == [("linked", user_id, grace, "password")]
    assert app.query("SELECT id FROM social_auth_partial") == []
    assert len(app.query("SELECT id FROM users")) == 1


def test_wrong_password_is_counted_and_the_prompt_stays(serve_app, browser, grace):
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    prompt = sign_in(browser, app, grace)

    wrong = answer_prompt(browser, prompt, password="nope")
    assert wrong.status_code == 403
    assert 'data-error-code="wrong_password"' in wrong.text
    assert "4 tries left" in wrong.text
    assert app.failures(user_id) == 1
    assert app.links() == []
    assert app.events() == [("wrong_password", user_id, grace, "wrong_password")]
    assert browser.get(f"{app.url}/me").status_code == 401

    done = answer_prompt(browser, wrong, password=PASSWORD)
    assert done.json()["id"] == user_id
    assert app.failures(user_id) == 0  # a right password clears the count
    assert app.links() == [(user_id, grace)]


def test_a_password_no_account_could_have_is_refused_before_it_counts(serve_app, browser, grace):
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    prompt = sign_in(browser, app, grace)
    answer = answer_prompt(browser, prompt, password="correct\x00horse")
    assert answer.status_code == 400
    assert 'data-error-code="invalid_request"' in answer.text
    assert app.failures(user_id) == 0
    assert (app.links(), app.events()) == ([], [])
    done = answer_prompt(browser, answer, password=PASSWORD)
    assert done.json()["id"] == user_id


def test_sixth_try_is_too_many_attempts_even_with_the_right_password(serve_app, browser, grace):
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    page = sign_in(browser, app, grace)
    for attempt in range(1, 6):
        page = answer_prompt(browser, page, password=f"wrong-{attempt}")
        assert page.status_code == 403
    assert "locked" in page.text
    assert app.failures(user_id) == 5

    sixth = answer_prompt(browser, page, password=PASSWORD)
    assert sixth.status_code == 429
    assert 'data-error-code="too_many_attempts"' in sixth.text
    assert "Try again in 15 minutes." in sixth.text  # LINK_LOCKOUT_SECONDS = 900
    assert app.links() == []
    events = [event for event, *_ in app.events()]
    assert events == ["wrong_password"] * 5 + ["locked_out"]

    # The lock is the account's, not the browser's: a new sign-in is refused too.
    with requests.Session() as other:
        again = answer_prompt(other, sign_in(other, app, grace), password=PASSWORD)
    assert again.status_code == 429
    assert app.links() == []
    # One row for the lock; the two refusals are counted on it.
    assert locked_out_rows(app) == [(user_id, 2)]


def test_lock_ends_after_the_lockout(serve_app, browser, grace):
    import time

    app = serve_app(
        SOCIAL_AUTH_AMAZON_LINK_MAX_PASSWORD_ATTEMPTS=2, SOCIAL_AUTH_AMAZON_LINK_LOCKOUT_SECONDS=2
    )
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    page = sign_in(browser, app, grace)
    page = answer_prompt(browser, page, password="wrong")
    assert "1 try left" in page.text
    page = answer_prompt(browser, page, password="wrong")
    assert answer_prompt(browser, page, password=PASSWORD).status_code == 429
    time.sleep(3.1)  # the lock is kept in whole seconds: between 2 and 3 s here
    assert answer_prompt(browser, page, password=PASSWORD).json()["id"] == user_id


@pytest.mark.parametrize(
    ("second_try_after", "counted"),
    [(0, 2), (1, 2), (2, 2), (3, 1)],  # whole seconds after the first wrong password
)
def test_failures_are_forgotten_no_sooner_than_the_lockout(serve_app, second_try_after, counted):
    # The count window and the lock are kept in whole seconds: a failure is
    # remembered for at least LINK_LOCKOUT_SECONDS, never less.
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    with app.storage() as storage:
        attempts = storage.link_attempts
        first = wrong_try(attempts, user_id, max_attempts=5, lockout_seconds=2, at=1_000)
        second = wrong_try(
            attempts, user_id, max_attempts=5, lockout_seconds=2, at=1_000 + second_try_after
        )
    assert (first.allowed, first.failures) == (True, 0)
    assert second.allowed
    assert app.failures(user_id) == counted


def test_a_lock_lasts_at_least_the_lockout(serve_app):
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)

    def reserve(at: int):
        return wrong_try(attempts, user_id, max_attempts=2, lockout_seconds=2, at=at)

    with app.storage() as storage:
        attempts = storage.link_attempts
        assert [reserve(1_000).allowed, reserve(1_000).allowed] == [True, True]
        # Locked from the second reservation, for 2 s at the least.
        assert [(r.allowed, r.retry_after) for r in (reserve(1_000), reserve(1_002))] == [
            (False, 3),
            (False, 1),
        ]
        assert reserve(1_003).allowed
    assert app.failures(user_id) == 1


def test_tries_being_checked_make_the_next_wait_but_never_lock(serve_app):
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    limits = {"max_attempts": 5, "lockout_seconds": 900}
    with app.storage() as storage:
        attempts = storage.link_attempts
        assert all(attempts.reserve(user_id, **limits, now=1_000).allowed for _ in range(5))
        # Five checks under way: a sixth is not refused for a lock, it is told to wait.
        busy = attempts.reserve(user_id, **limits, now=1_000)
        assert (busy.allowed, busy.busy, app.failures(user_id)) == (False, True, 0)
        attempts.clear(user_id)  # one was right
        assert attempts.reserve(user_id, **limits, now=1_000).allowed
        # Four wrong: the count goes up one by one; the fifth locks, once.
        counted = [attempts.fail(user_id, **limits, now=1_000) for _ in range(4)]
        assert counted == [1, 2, 3, 4]
        assert attempts.reserve(user_id, **limits, now=1_000).busy  # one still pending
        assert attempts.fail(user_id, **limits, now=1_000) == 5
        locked = attempts.reserve(user_id, **limits, now=1_001)
        assert (locked.allowed, locked.busy, locked.retry_after) == (False, False, 900)
        assert locked.locked_since == 1_000


def test_a_try_that_never_reports_back_stops_holding_a_place(serve_app):
    # Its process died between the reservation and the check's outcome.
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    limits = {"max_attempts": 1, "lockout_seconds": 900}
    with app.storage() as storage:
        attempts = storage.link_attempts
        assert attempts.reserve(user_id, **limits, now=1_000).allowed
        assert attempts.reserve(user_id, **limits, now=1_059).busy
        assert attempts.reserve(user_id, **limits, now=1_061).allowed


def test_the_link_and_sign_in_counts_are_kept_apart(serve_app):
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", PASSWORD)
    limits = {"max_attempts": 1, "lockout_seconds": 900, "now": 1_000}
    with app.storage() as storage:
        attempts = storage.link_attempts
        assert attempts.reserve(user_id, **limits).allowed
        attempts.fail(user_id, **limits)
        assert not attempts.reserve(user_id, **limits).allowed  # linking is locked
        assert attempts.reserve(user_id, **limits, scope="sign_in").allowed


def wrong_try(attempts: Any, user_id: int, *, max_attempts: int, lockout_seconds: int, at: int):
    """Reserve a try at ``at`` and, when allowed, count it wrong (as the prompt does)."""
    limits = {"max_attempts": max_attempts, "lockout_seconds": lockout_seconds, "now": at}
    reservation = attempts.reserve(user_id, **limits)
    if reservation.allowed:
        attempts.fail(user_id, **limits)
    return reservation


def locked_out_rows(app) -> list[tuple[int, int]]:
    """The locked_out events: (user_id, refusals counted on the row)."""
    rows = app.query(
        "SELECT user_id, repeats FROM amazon_link_events WHERE event = 'locked_out' ORDER BY id"
    )
    return [tuple(row) for row in rows]


def test_several_accounts_with_one_email_ask_which_one(serve_app, browser, grace):
    app = serve_app()
    first = app.add_user("grace", "grace@example.com", PASSWORD)
    second = app.add_user("ghopper", "GRACE@example.com", "another password")
    prompt = sign_in(browser, app, grace)
    assert 'name="username"' in prompt.text

    unknown = answer_prompt(browser, prompt, username="nobody", password=PASSWORD)
    assert unknown.status_code == 403
    assert 'data-error-code="wrong_password"' in unknown.text
    # A guess at the accounts with this email costs each of them a try.
    assert (app.failures(first), app.failures(second)) == (1, 1)

    wrong = answer_prompt(browser, unknown, username="ghopper", password=PASSWORD)
    assert wrong.status_code == 403
    assert (app.failures(first), app.failures(second)) == (2, 2)

    done = answer_prompt(browser, wrong, username="GHopper", password="another password")
    assert done.json()["id"] == second
    assert app.links() == [(second, grace)]
    assert (app.failures(first), app.failures(second)) == (2, 0)
    assert app.events() == [
        ("wrong_password", first, grace, "other_username"),
        ("wrong_password", second, grace, "other_username"),
        ("wrong_password", first, grace, "other_username"),
        ("wrong_password", second, grace, "wrong_password"),
        ("linked", second, grace, "password"),
    ]


def _answers(app, amazon_id: str, username: str, password: str, times: int):
    """Answer a new several-accounts prompt ``times`` times: (status, alert) each."""
    answers = []
    with requests.Session() as client:
        page = sign_in(client, app, amazon_id)
        for _ in range(times):
            page = answer_prompt(client, page, username=username, password=password)
            [alert] = re.findall(r'<div class="alert".*?</div>', page.text, re.S)
            answers.append((page.status_code, " ".join(alert.split())))
    return answers


def test_a_username_without_the_email_answers_as_a_wrong_password_and_counts(
    serve_app, grace, lwa_emulator
):
    # Two emails, two accounts each. Guesses at Grace's prompt name a username
    # that holds her email; at Ada's, one that does not (but exists).
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    app = serve_app()
    graces = [app.add_user(name, "grace@example.com", PASSWORD) for name in ("grace", "ghopper")]
    adas = [app.add_user(name, "ada@example.com", PASSWORD) for name in ("ada", "alovelace")]
    holds = _answers(app, GRACE, "ghopper", "a wrong guess", 6)
    does_not = _answers(app, ADA, "grace", "a wrong guess", 6)

    assert does_not == holds
    assert [status for status, _ in does_not] == [403] * 5 + [429]
    assert [alert for _, alert in does_not[:4]] == [
        '<div class="alert" role="alert" data-error-code="wrong_password"> That password is '
        f"not right. {left} {'tries' if left > 1 else 'try'} left. </div>"
        for left in (4, 3, 2, 1)
    ]
    # Each guess counted, against each account with the email.
    assert [app.failures(user_id) for user_id in graces + adas] == [5, 5, 5, 5]
    assert app.links() == []


def test_a_username_without_the_email_takes_as_long_as_a_wrong_password(serve_app, grace):
    # The account page's hashing is the slow part of a wrong password: a
    # username that holds no such hash must cost one all the same.
    checked: list[str] = []

    def slow_checker(user, password):
        checked.append(user.username)
        return bool(user.check_password(password))

    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_PASSWORD_CHECKER=f"{__name__}._checker")
    app.add_user("grace", "grace@example.com", PASSWORD)
    app.add_user("ghopper", "grace@example.com", "another password")
    _CHECKER[:] = [slow_checker]
    _answers(app, GRACE, "nobody", "a wrong guess", 1)
    _answers(app, GRACE, "ghopper", "a wrong guess", 1)
    assert checked == ["grace", "ghopper"]  # one hash checked for each answer


_CHECKER: list[Any] = []


def _checker(user, password):
    return _CHECKER[0](user, password)


def test_account_without_password_proves_ownership_with_an_emailed_code(serve_app, browser, grace):
    app = serve_app(SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION="tests.sample_app.send_code")
    user_id = app.add_user("grace", "grace@example.com")
    sample_app.OUTBOX.clear()
    prompt = sign_in(browser, app, grace)
    assert 'name="code"' in prompt.text
    [(email, code, token)] = sample_app.OUTBOX
    assert email == "grace@example.com" and token in prompt.url

    wrong = answer_prompt(browser, prompt, code="0" * 32)
    assert wrong.status_code == 403
    assert 'data-error-code="wrong_code"' in wrong.text
    assert app.links() == []

    done = answer_prompt(browser, wrong, code=code)
    assert done.json()["id"] == user_id
    assert app.links() == [(user_id, grace)]
    assert app.events()[-1] == ("linked", user_id, grace, "email_code")


def test_account_without_password_and_no_sender_is_refused(serve_app, browser, grace):
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com")
    page = sign_in(browser, app, grace)
    assert page.status_code == 409
    assert 'data-error-code="password_unavailable"' in page.text
    assert app.links() == []
    assert len(app.query("SELECT id FROM users")) == 1  # no second account either
    assert app.events() == [("link_refused", user_id, grace, "no_password")]


def test_connecting_an_amazon_account_linked_elsewhere_is_identity_in_use(
    serve_app, browser, grace
):
    app = serve_app()
    owner = app.add_user("grace", "grace@example.com", PASSWORD)
    app.link(owner, grace)
    other = app.add_user("alan", "alan@example.com", "alan password")
    browser.post(f"{app.url}/test-login", data={"username": "alan", "password": "alan password"})

    page = sign_in(browser, app, grace)
    assert page.status_code == 409
    assert 'data-error-code="identity_in_use"' in page.text
    assert app.links() == [(owner, grace)]
    assert app.events() == [("link_refused", other, grace, "identity_in_use")]
    assert browser.get(f"{app.url}/me").json()["id"] == other  # still signed in as before


def test_connecting_while_signed_in_links_to_the_signed_in_user(serve_app, browser, grace):
    app = serve_app()
    user_id = app.add_user("alan", "alan@example.com", "alan password")
    browser.post(f"{app.url}/test-login", data={"username": "alan", "password": "alan password"})
    assert sign_in(browser, app, grace).json()["id"] == user_id
    assert app.links() == [(user_id, grace)]
    assert app.events() == [("linked", user_id, grace, "signed_in")]


def test_neither_password_nor_token_is_written_to_the_paused_sign_in(serve_app, browser, grace):
    app = serve_app()
    app.add_user("grace", "grace@example.com", PASSWORD)
    prompt = sign_in(browser, app, grace)
    answer_prompt(browser, prompt, password="my-secret-guess")
    [row] = app.query("SELECT data FROM social_auth_partial")
    stored = row.data if isinstance(row.data, str) else json.dumps(row.data)
    assert "my-secret-guess" not in stored
    assert "Atza|" not in stored and "Atzr|" not in stored
    assert "access_token" not in stored
