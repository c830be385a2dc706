"""One canonical spelling of an address, one meaning of "the same address", on every database."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from social_amazon_link.text import email_key, has_control_characters, valid_email
from tests.conftest import CLIENT_ID, Served
from tests.flows import answer_prompt, api_sign_ins_at_once, sign_in
from tests.forms import first_form

GRACE = "amzn1.account.AEGRACEHOPPER00001"
KATHERINE = "amzn1.account.AEKATHERINEJOHNSON1"


def _users_by_email(app: Served, email: str) -> list[str]:
    with app.storage() as storage:
        found = sorted(u.username for u in storage.user.get_users_by_email(email))
    return found


# -- email_key and valid_email, as functions ------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("ÜBER@example.com", "über@example.com"),
        ("ÉLISE@EXAMPLE.COM", "élise@example.com"),
        ("ΟΔΥΣΣΕΑΣ@example.gr", "οδυσσεας@example.gr"),
        ("ΟΔΥΣΣΕΑΣ@example.gr", "οδυσσεασ@example.gr"),
        ("ЖЕНЯ@ПРИМЕР.РФ", "женя@пример.рф"),
        ("STRAẞE@example.de", "straße@example.de"),
        ("\u212aate@example.com", "kate@example.com"),  # KELVIN SIGN folds to k
    ],
)
def test_email_key_is_simple_case_folding(one, other):
    assert email_key(one) == email_key(other)


def test_control_characters_are_exactly_unicodes_category_cc():
    import unicodedata

    differ = [
        hex(point)
        for point in range(sys.maxunicode + 1)
        if has_control_characters(chr(point)) != (unicodedata.category(chr(point)) == "Cc")
    ]
    assert differ == []
    assert has_control_characters("Atza|token\u0085") and not has_control_characters("Atza|\u00a0")


def test_sharp_s_and_ss_stay_different():
    assert email_key("straße@example.de") != email_key("strasse@example.de")


def test_only_k_and_s_are_ascii_letters_another_character_folds_to():
    # The storage's SQL prefilter keeps the key's other ASCII letters as they are.
    from social_amazon_link.storage_rules import _ASCII_FOLDED_FROM_OTHERS

    folded_to_ascii = {
        email_key(chr(code))
        for code in range(0x80, sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and email_key(chr(code)) < "\x80"
    }
    assert folded_to_ascii == set(_ASCII_FOLDED_FROM_OTHERS)


@pytest.mark.parametrize(
    "address",
    [
        "victim@example.com.",
        "victim@example..com",
        "victim@.example.com",
        "victim.@example.com",
        ".victim@example.com",
        "vic..tim@example.com",
        "victim@example",
        "victim@-example.com",
        "victim@example_mail.com",
        "victim@[127.0.0.1]",
        "victim@127.0.0.1",
        '"victim"@example.com',
        "vic tim@example.com",
        "victim@exa mple.com",
        "victim@example.com\u00a0",
        "victim\u202e@example.com",
        "victim@@example.com",
        "u\u0308ber@example.com",  # not NFC: the same letters as über@
        "x" * 65 + "@example.com",
        "victim@" + "x" * 64 + ".com",
    ],
)
def test_an_address_not_in_canonical_spelling_is_invalid(address):
    assert not valid_email(address)


@pytest.mark.parametrize(
    "address",
    ["a@b.co", "über@exämple.de", "женя@пример.рф", "a.b+tag@mail.example.co.uk", "o'neil@x.io"],
)
def test_canonical_addresses_are_valid(address):
    assert valid_email(address)


# -- the storage, on both databases ---------------------------------------------


def test_storage_matches_every_case_of_an_address_and_nothing_else(serve_app):
    app = serve_app()
    app.add_user("uber", "ÜBER@example.com")
    app.add_user("elise", "élise@example.com")
    app.add_user("odysseas", "ΟΔΥΣΣΕΑΣ@example.gr")
    app.add_user("zhenya", "ЖЕНЯ@ПРИМЕР.РФ")
    app.add_user("strasse", "strasse@example.de")
    app.add_user("kelvin", "\u212aate@example.com")
    app.add_user("under", "a_b@example.com")
    app.add_user("inactive", "ÜBER@EXAMPLE.COM")  # no password, never signed in

    assert _users_by_email(app, "über@example.com") == ["inactive", "uber"]
    assert _users_by_email(app, "ÜBER@example.com") == ["inactive", "uber"]
    assert _users_by_email(app, "ÉLISE@EXAMPLE.COM") == ["elise"]
    assert _users_by_email(app, "οδυσσεας@example.gr") == ["odysseas"]
    assert _users_by_email(app, "οδυσσεασ@EXAMPLE.GR") == ["odysseas"]
    assert _users_by_email(app, "женя@пример.рф") == ["zhenya"]
    assert _users_by_email(app, "straße@example.de") == []
    assert _users_by_email(app, "STRASSE@example.de") == ["strasse"]
    assert _users_by_email(app, "kate@example.com") == ["kelvin"]
    # LIKE's wildcards in an address are letters, not wildcards.
    assert _users_by_email(app, "axb@example.com") == []
    assert _users_by_email(app, "A_B@example.com") == ["under"]
    assert _users_by_email(app, "ubér@example.com") == []


def test_codes_sent_are_counted_per_address_in_every_case(serve_app):
    app = serve_app()
    now = datetime.now(UTC)
    for n, address in enumerate(["ÉLISE@example.com", "élise@EXAMPLE.com", "elise@example.com"]):
        app.query_write(
            "INSERT INTO social_auth_code (email, code, verified, timestamp)"
            " VALUES (:e, :c, false, :t)",
            e=address,
            c=f"code{n}",
            t=now - timedelta(seconds=10 - n),
        )
    with app.storage() as storage:
        sent = storage.code.sent_since("élise@example.com", now - timedelta(minutes=1))
    assert len(sent) == 2


# -- where an address enters and is compared: web, API, email sync ----------------


def test_amazon_email_differing_only_in_non_ascii_case_asks_for_the_password(
    serve_app, browser, lwa_emulator
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "über.grace@example.com")
    app = serve_app()
    user_id = app.add_user("grace", "ÜBER.GRACE@example.com", "pw-123456")
    prompt = sign_in(browser, app, GRACE)
    assert prompt.url.startswith(f"{app.url}/link/amazon/password?partial_token=")
    assert [u.id for u in app.query("SELECT id FROM users")] == [user_id]
    assert app.links() == []
    done = answer_prompt(browser, prompt, password="pw-123456")
    assert done.json()["id"] == user_id
    assert app.links() == [(user_id, GRACE)]


def test_api_asks_for_the_password_of_an_account_with_the_email_in_another_case(
    serve_app, lwa_emulator
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "σοφία@example.gr")
    app = serve_app()
    app.add_user("sofia", "ΣΟΦΊΑ@EXAMPLE.GR", "pw-123456")
    with requests.Session() as phone:
        answer = phone.post(
            f"{app.url}/api/amazon/token",
            json={"access_token": lwa_emulator.mint_token(CLIENT_ID, GRACE)},
        )
    assert answer.json()["status"] == "password_required"
    assert len(app.query("SELECT id FROM users")) == 1


def _registration_pause(app: Served, lwa_emulator: Any, phone: requests.Session) -> str:
    """Ada's Amazon sign-in, paused on registration (her username is taken)."""
    lwa_emulator.add_identity("amzn1.account.AEADALOVELACE00001", "Ada Lovelace", "ada@example.com")
    app.add_user("AdaLovelace", "someone@example.com", "pw-123456")
    token = lwa_emulator.mint_token(CLIENT_ID, "amzn1.account.AEADALOVELACE00001")
    body = phone.post(f"{app.url}/api/amazon/token", json={"access_token": token}).json()
    assert body["status"] == "registration_required"
    return str(body["partial_token"])


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("victim@example.com.", "Enter a valid email address."),
        ("élise@example.com", "An account already uses this email."),
    ],
)
def test_api_registration_refuses_a_non_canonical_or_taken_address(
    serve_app, lwa_emulator, email, error
):
    app = serve_app()
    app.add_user("elise", "ÉLISE@EXAMPLE.COM", "pw-123456")
    with requests.Session() as phone:
        token = _registration_pause(app, lwa_emulator, phone)
        answer = phone.post(
            f"{app.url}/api/amazon/continue",
            json={"partial_token": token, "username": "ada", "email": email},
        )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "message": "Some fields need your attention.",
        "fields": {"email": error},
    }
    assert sorted(u.username for u in app.query("SELECT username FROM users")) == [
        "AdaLovelace",
        "elise",
    ]
    assert app.links() == []


def test_registration_form_refuses_a_trailing_dot(serve_app, browser, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    app.add_user("GraceHopper", "someone@example.com", "pw-123456")  # the username is taken
    form = sign_in(browser, app, GRACE)
    assert form.url.startswith(f"{app.url}/link/amazon/register?partial_token=")
    refused = answer_prompt(browser, form, username="grace", email="victim@example.com.")
    assert refused.status_code == 400
    assert "Enter a valid email address." in refused.text
    assert len(app.query("SELECT id FROM users")) == 1 and app.links() == []


def test_a_profile_email_with_a_trailing_dot_is_dropped_never_matched_nor_stored(
    serve_app, browser, lwa_emulator
):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "victim@example.com.")
    app = serve_app()
    victim = app.add_user("victim", "victim@example.com", "pw-123456")
    form = sign_in(browser, app, GRACE)
    # No email from Amazon: the prefilled registration asks for one.
    assert form.url.startswith(f"{app.url}/link/amazon/register?partial_token=")
    _action, values, _ = first_form(form.text, form.url)
    assert values["email"] == ""
    assert [u.id for u in app.query("SELECT id FROM users")] == [victim]
    assert app.links() == []


@pytest.mark.parametrize(
    ("amazon_email", "detail"),
    [("katherine@new.example.", None), ("élise@example.com", "held by another account")],
)
def test_email_sync_never_copies_a_non_canonical_or_taken_address(
    serve_app, browser, lwa_emulator, amazon_email, detail
):
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_EMAIL_SYNC="always")
    app.add_user("elise", "ÉLISE@EXAMPLE.COM", "pw-123456")
    lwa_emulator.add_identity(KATHERINE, "Katherine Johnson", "katherine@old.example")
    user_id = sign_in(browser, app, KATHERINE).json()["id"]
    browser.cookies.clear()
    lwa_emulator.add_identity(KATHERINE, "Katherine Johnson", amazon_email)
    events = len(app.events())
    assert sign_in(browser, app, KATHERINE).json()["email"] == "katherine@old.example"
    expected = [] if detail is None else [("email_sync_skipped", user_id, KATHERINE, detail)]
    assert app.events()[events:] == expected


# -- one new account per email, however many sign in at once ---------------------


def test_twenty_amazon_accounts_with_one_new_email_make_one_account(serve_app, lwa_emulator):
    identities = [f"amzn1.account.AESHAREDEMAIL{n:05d}" for n in range(20)]
    for n, identity in enumerate(identities):
        # One address, in several cases: the same address.
        address = "Shared.Ünïcode@example.com" if n % 2 else "shared.ÜNÏCODE@EXAMPLE.COM"
        lwa_emulator.add_identity(identity, f"Person {n}", address)
    app = serve_app()
    tokens = [lwa_emulator.mint_token(CLIENT_ID, identity) for identity in identities]
    answers = api_sign_ins_at_once([app.url], tokens)

    made = [body for status, body in answers if status == 200]
    assert [body["status"] for body in made] == ["authenticated"]
    assert made[0]["new_user"] is True
    [user] = app.query("SELECT id, email FROM users")
    assert user.id == made[0]["user"]["id"]
    [(link_user, link_uid)] = app.links()
    assert link_user == user.id and link_uid in identities
    # The others get what a sign-in after it gets: the account with the email
    # has no password and signs in with another Amazon account, so it cannot
    # be linked from here (see test_pipeline_matching).
    others = [(status, body) for status, body in answers if status != 200]
    assert others == [(409, {"error": "password_unavailable"})] * 19
    assert [e[0] for e in app.events()].count("linked") == 1
