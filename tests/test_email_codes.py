"""Emailed one-time codes: short to type, kept only as a keyed hash, guessed at a counted cost."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from social_amazon_link.sqlalchemy_storage import CODE_ALPHABET
from tests import sample_app
from tests.flows import answer_prompt, sign_in

GRACE = "amzn1.account.AEGRACEHOPPER00001"
CODES = {"SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION": "tests.sample_app.send_code"}


@pytest.fixture
def grace(lwa_emulator: Any) -> str:
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    return GRACE


def keyed(code: str, secret: str) -> str:
    """What the table may hold of a code: HMAC-SHA256 under a key derived from the secret."""
    key = hashlib.sha256(b"social-amazon-link/email-codes/v1\x00" + secret.encode()).digest()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()[:32]


def paused_on_a_code(serve_app, browser, grace, **settings: Any):
    """Grace's account has no password: her Amazon sign-in waits for the code it emailed.

    Returns the app, her user id, the prompt page and the code.
    """
    app = serve_app(**CODES, **settings)
    user_id = app.add_user("grace", "grace@example.com")
    sample_app.OUTBOX.clear()
    prompt = sign_in(browser, app, grace)
    [(_email, code, _token)] = sample_app.OUTBOX
    return app, user_id, prompt, code


def stored(app) -> str:
    """Every value the codes and pauses tables hold, as one text."""
    rows = app.query("SELECT email, code, verified FROM social_auth_code")
    partials = app.query("SELECT data FROM social_auth_partial")
    data = [row.data if isinstance(row.data, str) else json.dumps(row.data) for row in partials]
    return repr([tuple(row) for row in rows]) + "".join(data)


def test_a_code_is_eight_unambiguous_characters_and_only_its_keyed_hash_is_stored(
    serve_app, browser, grace
):
    app, user_id, prompt, code = paused_on_a_code(serve_app, browser, grace)

    assert len(code) == 8 and set(code) <= set(CODE_ALPHABET)
    assert not set("0O1IL") & set(CODE_ALPHABET)
    [row] = app.query("SELECT code, verified FROM social_auth_code")
    # The hash key is derived from the app's SECRET_KEY.
    assert row.code == keyed(code, app.secret_key) and not row.verified
    assert row.code != hashlib.sha256(code.encode()).hexdigest()[:32]  # a key, not a plain hash
    assert code not in stored(app) and code.lower() not in stored(app)

    # Typed as people type it: lower case, spaced.
    done = answer_prompt(browser, prompt, code=f"{code[:4].lower()} {code[4:].lower()}")
    assert done.json()["id"] == user_id
    assert app.links() == [(user_id, grace)]
    assert app.events() == [("linked", user_id, grace, "email_code")]
    # social-core's validate_email marked it used, and nothing wrote the code back.
    [row] = app.query("SELECT code, verified FROM social_auth_code")
    assert (row.code, bool(row.verified)) == (keyed(code, app.secret_key), True)
    assert code not in stored(app)


def test_the_hash_key_comes_from_the_secret_key(serve_app, browser, grace):
    app, _user_id, _prompt, code = paused_on_a_code(
        serve_app, browser, grace, SECRET_KEY="another secret"
    )
    [row] = app.query("SELECT code FROM social_auth_code")
    assert app.secret_key == "another secret"
    assert row.code == keyed(code, "another secret") != keyed(code, "the usual secret")


def test_a_wrong_code_counts_and_is_recorded_as_a_wrong_code(serve_app, browser, grace):
    app, user_id, prompt, code = paused_on_a_code(serve_app, browser, grace)
    guess = next(c for c in CODE_ALPHABET if c != code[0]) + code[1:]

    wrong = answer_prompt(browser, prompt, code=guess)
    assert wrong.status_code == 403
    assert 'data-error-code="wrong_code"' in wrong.text
    assert "4 tries left" in wrong.text
    assert app.failures(user_id) == 1
    assert app.events() == [("wrong_code", user_id, grace, "wrong_code")]
    assert app.links() == []

    assert answer_prompt(browser, wrong, code=code).json()["id"] == user_id
    assert app.failures(user_id) == 0


def test_five_wrong_codes_lock_the_account_once(serve_app, browser, grace):
    app, _user_id, page, code = paused_on_a_code(serve_app, browser, grace)
    for n in range(5):
        page = answer_prompt(browser, page, code=f"WRONG{n:03}")
        assert page.status_code == 403
    for _ in range(3):
        page = answer_prompt(browser, page, code=code)  # even the right one, now
        assert page.status_code == 429
    assert 'data-error-code="too_many_attempts"' in page.text
    assert app.links() == []
    assert [event for event, *_ in app.events()] == ["wrong_code"] * 5 + ["locked_out"]
    assert app.query("SELECT repeats FROM amazon_link_events WHERE event = 'locked_out'")[0] == (3,)
