"""Abandoned sign-ins leave rows behind; purging removes only the unusable ones."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.flows import answer_prompt, sign_in, start_sign_in

GRACE = "amzn1.account.AEGRACEHOPPER00001"


def _counts(app) -> tuple[int, int]:
    return (
        len(app.query("SELECT id FROM social_auth_nonce")),
        len(app.query("SELECT id FROM social_auth_partial")),
    )


def test_purge_removes_abandoned_states_and_pauses_once_too_old(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    app.add_user("grace", "grace@example.com", "pw-123456")
    start_sign_in(browser, app)  # started, never finished: a state nonce stays
    assert "/link/amazon/password" in sign_in(browser, app, GRACE).url  # a pause stays
    assert _counts(app) == (1, 1)

    # Still usable: the command leaves them.
    assert "purged 0 OAuth2 states, 0 paused sign-ins, 0 emailed codes" in app.purge_command()
    assert _counts(app) == (1, 1)

    # An hour on, both are past their lifetimes.
    with app.storage() as storage:
        purged = storage.purge(now=time.time() + 3600)
    assert purged == {"nonces": 1, "partials": 1, "codes": 0, "attempts": 0, "events": 0}
    assert _counts(app) == (0, 0)


def test_purge_removes_the_code_an_abandoned_pause_sent(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION="tests.sample_app.send_code")
    app.add_user("grace", "grace@example.com")  # no password: a code is emailed
    assert 'name="code"' in sign_in(browser, app, GRACE).text
    assert len(app.query("SELECT id FROM social_auth_code")) == 1
    with app.storage() as storage:
        assert storage.purge()["codes"] == 0  # its pause still waits
        assert storage.purge(now=time.time() + 3600)["codes"] == 1
    assert app.query("SELECT id FROM social_auth_code") == []


PASSWORD = "pw-123456"
DAY = 24 * 3600


def _purge(app, **kwargs) -> dict[str, int]:
    with app.storage() as storage:
        return dict(storage.purge(**kwargs))


def test_purge_removes_attempt_counters_once_their_window_has_passed(
    serve_app, browser, lwa_emulator
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    wrong = answer_prompt(browser, sign_in(browser, app, GRACE), password="nope")
    assert 'data-error-code="wrong_password"' in wrong.text
    now = int(time.time())
    locked = app.add_user("locked", "locked@example.com", PASSWORD)
    ended = app.add_user("ended", "ended@example.com", PASSWORD)
    reserving = app.add_user("reserving", "reserving@example.com", PASSWORD)
    rows = {
        # A lock still running, its last failure long ago: it must stay.
        locked: (5, now - 5000, now + 3600),
        # A lock that has run out, failures long ago: counts nothing.
        ended: (5, now - 5000, now - 10),
        # reserve() has just created it and counts on it next.
        reserving: (0, 0, 0),
    }
    for user_id, (failures, last, until) in rows.items():
        app.query_write(
            "INSERT INTO amazon_link_password_attempts"
            " (user_id, scope, failures, pending, last_failure_at, locked_until)"
            " VALUES (:u, 'link', :f, 0, :l, :t)",
            u=user_id,
            f=failures,
            l=last,
            t=until,
        )

    # Grace's failure still counts within LINK_LOCKOUT_SECONDS (900 s).
    assert _purge(app)["attempts"] == 1
    assert app.failures(grace) == 1
    assert _counters(app) == [grace, locked, reserving]

    # 15 minutes on, hers counts nothing either; the running lock stays.
    assert _purge(app, now=now + 901, lockout_seconds=900)["attempts"] == 1
    assert _counters(app) == [locked, reserving]
    # Purged or not, the next wrong password counts from one again.
    again = answer_prompt(browser, sign_in(browser, app, GRACE), password="nope")
    assert "4 tries left." in again.text
    assert app.failures(grace) == 1


def _counters(app) -> list[int]:
    rows = app.query("SELECT user_id FROM amazon_link_password_attempts ORDER BY user_id")
    return [row.user_id for row in rows]


def _old_event(app, user_id: int) -> None:
    """An unlink recorded 400 days ago."""
    app.query_write(
        "INSERT INTO amazon_link_events (user_id, event, amazon_user_id, detail, created)"
        " VALUES (:u, 'unlinked', :a, '', :c)",
        u=user_id,
        a=GRACE,
        c=datetime.now(UTC) - timedelta(days=400),
    )


def test_purge_removes_link_events_older_than_their_retention(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    answer_prompt(browser, sign_in(browser, app, GRACE), password=PASSWORD)
    _old_event(app, grace)
    assert [event for event, *_ in app.events()] == ["linked", "unlinked"]

    # LINK_EVENTS_MAX_AGE 0: kept forever.
    assert _purge(app, events_max_age=0)["events"] == 0
    # Default: a year. The 400-day-old one goes, today's stays.
    assert _purge(app)["events"] == 1
    assert app.events() == [("linked", grace, GRACE, "password")]
    # A year and a day on, today's goes too.
    assert _purge(app, now=time.time() + 366 * DAY)["events"] == 1
    assert app.events() == []


@pytest.mark.parametrize(("max_age", "left"), [("0", ["linked", "unlinked"]), (None, ["linked"])])
def test_purge_command_reads_link_events_max_age_and_reports_each_table(
    serve_app, browser, lwa_emulator, max_age, left
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_EVENTS_MAX_AGE=max_age)
    grace = app.add_user("grace", "grace@example.com", PASSWORD)
    answer_prompt(browser, sign_in(browser, app, GRACE), password=PASSWORD)
    _old_event(app, grace)
    # Her right password left a counter at zero; two failures an hour ago.
    app.query_write(
        "UPDATE amazon_link_password_attempts SET failures = 2, last_failure_at = :l"
        " WHERE user_id = :u",
        u=grace,
        l=int(time.time()) - 3600,
    )
    output = app.purge_command()
    removed = 1 if max_age is None else 0
    assert output == (
        "purged 0 OAuth2 states, 0 paused sign-ins, 0 emailed codes, "
        f"1 password-attempt counters, {removed} link events\n"
    )
    assert [event for event, *_ in app.events()] == left
    assert _counters(app) == []
