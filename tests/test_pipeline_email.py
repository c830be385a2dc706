"""Rule 6 over real HTTP: the local email follows Amazon's, never onto another account's."""

from __future__ import annotations

import pytest

from tests.flows import sign_in

KATHERINE = "amzn1.account.AEKATHERINEJOHNSON1"


def emails(app) -> dict[str, str]:
    return {r.username: r.email for r in app.query("SELECT username, email FROM users")}


@pytest.fixture
def linked(serve_app, lwa_emulator, browser):
    """Katherine signed in with Amazon once (as katherine@old.example), then changed it."""

    def make(mode: str | None, new_email: str):
        settings = {} if mode is None else {"SOCIAL_AUTH_AMAZON_LINK_EMAIL_SYNC": mode}
        app = serve_app(**settings)
        lwa_emulator.add_identity(KATHERINE, "Katherine Johnson", "katherine@old.example")
        user_id = sign_in(browser, app, KATHERINE).json()["id"]
        browser.cookies.clear()
        lwa_emulator.add_identity(KATHERINE, "Katherine Johnson", new_email)  # changed on Amazon
        return app, user_id

    return make


@pytest.mark.parametrize("mode", [None, "if_unclaimed", "always"])
def test_email_changed_on_amazon_is_copied(linked, browser, mode):
    app, user_id = linked(mode, "katherine@new.example")
    events_before = len(app.events())
    assert sign_in(browser, app, KATHERINE).json()["email"] == "katherine@new.example"
    assert app.events()[events_before:] == [
        ("email_updated", user_id, KATHERINE, "katherine@old.example -> katherine@new.example")
    ]


def test_never_leaves_the_local_email(linked, browser):
    app, _user_id = linked("never", "katherine@new.example")
    events_before = app.events()
    assert sign_in(browser, app, KATHERINE).json()["email"] == "katherine@old.example"
    assert app.events() == events_before


@pytest.mark.parametrize("mode", ["if_unclaimed", "always"])
def test_an_email_another_account_holds_is_never_copied(linked, browser, mode):
    app, user_id = linked(mode, "Taken@Example.com")
    app.add_user("someone", "taken@example.com", "pw-123456")
    assert sign_in(browser, app, KATHERINE).json()["email"] == "katherine@old.example"
    assert emails(app)["someone"] == "taken@example.com"
    assert app.events()[-1] == (
        "email_sync_skipped",
        user_id,
        KATHERINE,
        "held by another account",
    )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("if_unclaimed", "kj@local.example"), ("always", "katherine@amazon.example")],
)
def test_a_local_change_is_kept_by_if_unclaimed_only(
    serve_app, lwa_emulator, browser, mode, expected
):
    lwa_emulator.add_identity(KATHERINE, "Katherine Johnson", "katherine@amazon.example")
    app = serve_app(SOCIAL_AUTH_AMAZON_LINK_EMAIL_SYNC=mode)
    user_id = app.add_user("katherine", "kj@local.example", "pw-123456")
    # The link remembers the email Amazon gave last time: unchanged since.
    app.link(user_id, KATHERINE, email="katherine@amazon.example")
    assert sign_in(browser, app, KATHERINE).json()["email"] == expected


def test_returning_user_with_nothing_changed_writes_no_event(linked, browser):
    app, _user_id = linked(None, "katherine@old.example")
    before = app.events()
    assert sign_in(browser, app, KATHERINE).json()["email"] == "katherine@old.example"
    assert app.events() == before
