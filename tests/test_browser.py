"""Every path of the demo, clicked through in a real headless Chromium.

The demo and its LWA emulator run in-process on loopback ports with the seed
data of ``python -m demo``, on SQLite and on PostgreSQL; Playwright drives
Debian's Chromium. Each test ends on the page a person would see and checks the
database behind it. The main pages are saved on the way (``make screenshots``
puts them in ``docs/screenshots/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from demo.seed import (
    ADA_ID,
    ALAN_ID,
    AMAZON_IDENTITIES,
    DOROTHY_ID,
    GRACE_ID,
    KATHERINE_ID,
    LOCAL_USERS,
    MARGARET_ID,
    MARY_ID,
)
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, DemoSite


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser, site: DemoSite) -> Iterator[Page]:
    """A fresh browser profile (no cookies) for each test."""
    context = chromium.new_context(viewport={"width": 1100, "height": 820}, base_url=site.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def login_with_amazon(
    page: Page, site: DemoSite, identity: str, *, decision: str = "Allow"
) -> None:
    """From the sign-in page: Login with Amazon, choose ``identity``, then Allow or Cancel."""
    page.goto("/login")
    page.locator("#login-with-amazon").click()
    expect(page).to_have_url(re.compile(re.escape(f"{site.emulator_url}/ap/oa?")))
    page.get_by_role("radio", name=re.compile(rf"^{re.escape(identity)}\b")).check()
    page.get_by_role("button", name=decision).click()


def sign_in(page: Page, username: str, password: str) -> None:
    """The demo's own sign-in, with a username and password."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def expect_account(
    page: Page, site: DemoSite, username: str, email: str, amazon: list[str]
) -> None:
    """On the account page of ``username``, with these Amazon user_ids linked."""
    expect(page).to_have_url(f"{site.url}/account")
    expect(page.locator("#account-username")).to_have_text(username)
    expect(page.locator("#account-email")).to_have_text(email)
    if amazon:
        expect(page.locator("#account-amazon .amazon-uid")).to_have_text(amazon)
    else:
        expect(page.locator("#account-amazon")).to_have_text("not linked")


def unlink(page: Page, amazon_user_id: str) -> None:
    page.get_by_role("button", name=f"Unlink Amazon {amazon_user_id}").click()


def users(site: DemoSite) -> list[str]:
    return sorted(row.username for row in site.query("SELECT username FROM users"))


#: The local accounts the demo starts with.
SEEDED = sorted(local.username for local in LOCAL_USERS)


def test_new_amazon_identity_gets_an_account_at_once(page: Page, site: DemoSite) -> None:
    page.goto("/login")
    expect(page.locator("#demo-hint")).to_contain_text("Ada Lovelace")
    screenshot(page, "login")
    page.locator("#login-with-amazon").click()
    expect(page.get_by_role("radio")).to_have_count(len(AMAZON_IDENTITIES))
    expect(page.locator("#app-name")).to_have_text("Acme Books")
    screenshot(page, "amazon-sign-in")
    page.get_by_role("radio", name=re.compile(r"^Ada Lovelace")).check()
    page.get_by_role("button", name="Allow").click()

    expect_account(page, site, "AdaLovelace", "ada@example.com", [ADA_ID])
    expect(page.locator("#account-name")).to_have_text("Ada Lovelace")
    expect(page.locator("#account-postal-code")).to_have_text("10115")
    expect(page.locator("#account-events")).to_contain_text("Amazon account linked")
    ada = site.user("AdaLovelace")
    assert (ada.email, ada.name, ada.postal_code, ada.password_hash) == (
        "ada@example.com",
        "Ada Lovelace",
        "10115",
        None,
    )
    assert site.amazon_links()[ADA_ID] == "AdaLovelace"
    assert site.events("AdaLovelace") == [("linked", "new_account")]


def test_unlinking_the_only_way_to_sign_in_is_refused(page: Page, site: DemoSite) -> None:
    login_with_amazon(page, site, "Ada Lovelace")
    expect_account(page, site, "AdaLovelace", "ada@example.com", [ADA_ID])
    # No Unlink button beside the one link of an account without a password: why instead.
    expect(page.get_by_role("button", name=re.compile("^Unlink"))).to_have_count(0)
    expect(page.locator("#unlink-hint")).to_contain_text("cannot be unlinked")

    # Two Amazon accounts, and an account page left open in another tab.
    page.locator("#link-another-amazon").click()
    page.get_by_role("radio", name=re.compile(r"^alan\b")).check()
    page.get_by_role("button", name="Allow").click()
    expect_account(page, site, "AdaLovelace", "ada@example.com", [ADA_ID, ALAN_ID])
    stale = page.context.new_page()
    stale.goto("/account")
    unlink(page, ADA_ID)
    expect_account(page, site, "AdaLovelace", "ada@example.com", [ALAN_ID])

    # The old tab still offers to unlink the other one, now the last way in.
    unlink(stale, ALAN_ID)
    expect(stale.locator("h1")).to_have_text("Amazon is still linked")
    expect(stale.locator("[data-error-code]")).to_have_text("disconnect_disallowed")
    expect(stale.get_by_role("alert")).to_contain_text("so it cannot be unlinked")
    screenshot(stale, "unlink-refused")
    assert site.amazon_links()[ALAN_ID] == "AdaLovelace"

    stale.get_by_role("link", name="Back to your account").click()
    expect_account(stale, site, "AdaLovelace", "ada@example.com", [ALAN_ID])


def test_same_email_links_only_after_the_local_password(page: Page, site: DemoSite) -> None:
    login_with_amazon(page, site, "Grace Hopper")
    expect(page).to_have_url(re.compile(re.escape(f"{site.url}/link/amazon/password?")))
    prompt = page.url
    expect(page.locator("#link-password-form")).to_be_visible()
    expect(page.locator("main")).to_contain_text("grace@example.com")

    page.get_by_label("Password").fill("not-graces-password")
    page.get_by_role("button", name="Link accounts").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_attribute("data-error-code", "wrong_password")
    expect(alert).to_contain_text("4 tries left.")
    assert GRACE_ID not in site.amazon_links()
    screenshot(page, "link-password")

    page.get_by_label("Password").fill("grace-password-1")
    page.get_by_role("button", name="Link accounts").click()
    expect_account(page, site, "grace", "grace@example.com", [GRACE_ID])
    expect(page.get_by_role("status")).to_have_text(
        "Amazon account Grace Hopper (grace@example.com) linked."
    )
    expect(page.locator("#account-amazon .amazon-name")).to_have_text("Grace Hopper")
    expect(page.locator("#account-amazon .amazon-email")).to_have_text("grace@example.com")
    expect(page.locator("#account-events tr[data-event]")).to_have_count(2)
    screenshot(page, "account")

    # Back to the password prompt (what Back reaches after a first right
    # password): that sign-in is over, and Amazon is linked.
    page.goto(prompt)
    expect(page.locator("h1")).to_have_text("Amazon is already linked to your account")
    expect(page.locator("[data-error-code]")).to_have_text("invalid_partial")
    expect(page.locator("#linked-amazon")).to_contain_text("Grace Hopper")
    screenshot(page, "back-after-linking")
    assert site.amazon_links()[GRACE_ID] == "grace"
    assert site.events("grace") == [("wrong_password", "wrong_password"), ("linked", "password")]
    assert users(site) == SEEDED  # linked, no account made


def test_taken_username_asks_on_a_prefilled_form(page: Page, site: DemoSite) -> None:
    login_with_amazon(page, site, "alan")
    expect(page).to_have_url(re.compile(re.escape(f"{site.url}/link/amazon/register?")))
    form = page.locator("#link-register-form")
    expect(form.get_by_label("Username")).to_have_value("alan")
    expect(form.get_by_label("Email")).to_have_value("alan.amazon@example.com")
    expect(form.get_by_label(re.compile(r"^Name"))).to_have_value("alan")
    expect(form.locator('[data-field-error="username"]')).to_have_text("This username is taken.")
    expect(form.locator('input[name="password"]')).to_have_count(0)
    screenshot(page, "link-register")

    # Another taken name: refused again, and what was typed stays in the form.
    form.get_by_label("Username").fill("grace")
    form.get_by_label(re.compile(r"^Name")).fill("Alan Turing")
    form.get_by_role("button", name="Create account").click()
    expect(form.locator('[data-field-error="username"]')).to_have_text("This username is taken.")
    expect(form.get_by_label("Username")).to_have_value("grace")
    expect(form.get_by_label(re.compile(r"^Name"))).to_have_value("Alan Turing")

    form.get_by_label("Username").fill("alan-t")
    form.get_by_role("button", name="Create account").click()
    expect_account(page, site, "alan-t", "alan.amazon@example.com", [ALAN_ID])
    expect(page.locator("#account-name")).to_have_text("Alan Turing")
    assert site.amazon_links()[ALAN_ID] == "alan-t"
    assert site.user("alan-t").password_hash is None
    assert site.user("alan").email == "alan.local@example.com"  # the local alan is untouched


def test_email_changed_on_amazon_updates_the_local_email(page: Page, site: DemoSite) -> None:
    assert site.user("katherine").email == "katherine.old@example.com"
    login_with_amazon(page, site, "Katherine Johnson")

    expect_account(page, site, "katherine", "katherine@example.com", [KATHERINE_ID])
    expect(page.locator("#account-events")).to_contain_text("Email updated from Amazon")
    assert site.user("katherine").email == "katherine@example.com"
    assert site.events("katherine") == [
        ("email_updated", "katherine.old@example.com -> katherine@example.com")
    ]
    assert users(site) == SEEDED


def test_local_sign_in_and_sign_out_still_work(page: Page, site: DemoSite) -> None:
    page.goto("/account")
    expect(page).to_have_url(re.compile(re.escape(f"{site.url}/login")))

    page.get_by_label("Username").fill("alan")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Username")).to_have_value("alan")

    page.get_by_label("Password").fill("alan-password-1")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect_account(page, site, "alan", "alan.local@example.com", [])
    # Signed in, the sign-in and registration pages lead to the account.
    for path in ("/login", "/register"):
        page.goto(path)
        expect_account(page, site, "alan", "alan.local@example.com", [])

    page.get_by_role("button", name="Sign out alan").click()
    expect(page).to_have_url(f"{site.url}/login")
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto("/account")
    expect(page).to_have_url(re.compile(re.escape(f"{site.url}/login")))


def test_signed_in_user_links_then_unlinks_amazon(page: Page, site: DemoSite) -> None:
    sign_in(page, "grace", "grace-password-1")
    expect_account(page, site, "grace", "grace@example.com", [])

    page.locator("#link-amazon").click()
    page.get_by_role("radio", name=re.compile(r"^Grace Hopper")).check()
    page.get_by_role("button", name="Allow").click()
    expect_account(page, site, "grace", "grace@example.com", [GRACE_ID])
    assert site.amazon_links()[GRACE_ID] == "grace"

    unlink(page, GRACE_ID)
    expect_account(page, site, "grace", "grace@example.com", [])
    expect(page.get_by_role("status")).to_have_text(
        "Amazon account Grace Hopper (grace@example.com) unlinked."
    )
    expect(page.locator("#account-events")).to_contain_text("Amazon account unlinked")
    assert GRACE_ID not in site.amazon_links()
    assert [event for event, _detail in site.events("grace")] == ["linked", "unlinked"]


def test_cancel_on_amazon_is_access_denied(page: Page, site: DemoSite) -> None:
    before: Any = site.query("SELECT id, username, email FROM users ORDER BY id")
    login_with_amazon(page, site, "Ada Lovelace", decision="Cancel")

    expect(page.locator("h1")).to_have_text("Sign-in did not complete")
    expect(page.locator("[data-error-code]")).to_have_attribute("data-error-code", "access_denied")
    screenshot(page, "access-denied")
    page.get_by_role("link", name="Back to sign-in").click()
    expect(page).to_have_url(f"{site.url}/login")
    assert site.query("SELECT id, username, email FROM users ORDER BY id") == before
    assert site.amazon_links() == {KATHERINE_ID: "katherine"}


def test_several_accounts_with_the_email_ask_which_one(page: Page, site: DemoSite) -> None:
    login_with_amazon(page, site, "Margaret Hamilton")
    expect(page).to_have_url(re.compile(re.escape(f"{site.url}/link/amazon/password?")))
    expect(page.locator("main")).to_contain_text("Several accounts use margaret@example.com")

    # margaret.work, with the password of the other margaret: refused, and
    # the username stays in the form.
    form = page.locator("#link-password-form")
    form.get_by_label("Username").fill("margaret.work")
    form.get_by_label("Password").fill("margaret-password-1")
    form.get_by_role("button", name="Link accounts").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_attribute("data-error-code", "wrong_password")
    expect(alert).to_contain_text("4 tries left.")
    expect(form.get_by_label("Username")).to_have_value("margaret.work")
    screenshot(page, "link-choose-account")
    assert MARGARET_ID not in site.amazon_links()

    form.get_by_label("Password").fill("margaret-work-password-1")
    form.get_by_role("button", name="Link accounts").click()
    expect_account(page, site, "margaret.work", "margaret@example.com", [MARGARET_ID])
    assert site.amazon_links()[MARGARET_ID] == "margaret.work"
    assert site.events("margaret.work") == [
        ("wrong_password", "wrong_password"),
        ("linked", "password"),
    ]
    # The guess counted against each account with the email.
    assert site.events("margaret") == [("wrong_password", "other_username")]
    assert users(site) == SEEDED


def test_account_without_password_links_with_the_emailed_code(page: Page, site: DemoSite) -> None:
    login_with_amazon(page, site, "Dorothy Vaughan")
    expect(page).to_have_url(re.compile(re.escape(f"{site.url}/link/amazon/password?")))
    expect(page.locator("main")).to_contain_text("We emailed it a code")
    expect(page.locator('input[name="password"]')).to_have_count(0)
    screenshot(page, "link-email-code")

    # A wrong code first: refused, nothing linked.
    page.get_by_label("Code from the email").fill("0" * 32)
    page.get_by_role("button", name="Link accounts").click()
    expect(page.get_by_role("alert")).to_have_attribute("data-error-code", "wrong_code")
    assert DOROTHY_ID not in site.amazon_links()

    # The "email", read in another tab from the demo's outbox.
    outbox = page.context.new_page()
    outbox.goto("/login")
    outbox.get_by_role("link", name="Outbox").first.click()
    email = outbox.locator("article.email")
    expect(email).to_have_count(1)
    expect(email).to_contain_text("To dorothy@example.com")
    screenshot(outbox, "outbox")
    code = email.locator(".email-code").inner_text()
    outbox.close()

    page.get_by_label("Code from the email").fill(code)
    page.get_by_role("button", name="Link accounts").click()
    expect_account(page, site, "dorothy", "dorothy@example.com", [DOROTHY_ID])
    expect(page.locator("#unlink-hint")).to_contain_text("cannot be unlinked")
    assert site.amazon_links()[DOROTHY_ID] == "dorothy"
    assert site.user("dorothy").password_hash is None
    assert site.events("dorothy") == [("wrong_code", "wrong_code"), ("linked", "email_code")]
    assert users(site) == SEEDED


def test_connecting_an_amazon_account_linked_elsewhere_is_refused(
    page: Page, site: DemoSite
) -> None:
    sign_in(page, "grace", "grace-password-1")
    expect_account(page, site, "grace", "grace@example.com", [])

    page.locator("#link-amazon").click()
    page.get_by_role("radio", name=re.compile(r"^Katherine Johnson")).check()
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("h1")).to_have_text("Amazon was not linked")
    expect(page.locator("[data-error-code]")).to_have_attribute(
        "data-error-code", "identity_in_use"
    )
    screenshot(page, "identity-in-use")
    assert site.amazon_links() == {KATHERINE_ID: "katherine"}

    page.get_by_role("link", name="Back to your account").click()
    expect_account(page, site, "grace", "grace@example.com", [])
    expect(page.locator("#account-events")).to_contain_text("Amazon link refused")
    assert site.amazon_events("grace") == [("link_refused", "identity_in_use", KATHERINE_ID)]
    assert site.events("katherine") == []


def test_five_wrong_passwords_lock_linking_even_for_the_right_one(
    page: Page, site: DemoSite
) -> None:
    login_with_amazon(page, site, "Mary Jackson")
    alert = page.get_by_role("alert")
    for left in ("4 tries left.", "3 tries left.", "2 tries left.", "1 try left."):
        page.get_by_label("Password").fill("not-marys-password")
        page.get_by_role("button", name="Link accounts").click()
        expect(alert).to_contain_text(left)
    page.get_by_label("Password").fill("not-marys-password")
    page.get_by_role("button", name="Link accounts").click()
    expect(alert).to_contain_text("The account is now locked for a while.")

    page.get_by_label("Password").fill("mary-password-1")
    page.get_by_role("button", name="Link accounts").click()
    expect(alert).to_have_attribute("data-error-code", "too_many_attempts")
    expect(alert).to_contain_text("Try again in 15 minutes.")
    screenshot(page, "too-many-attempts")
    assert MARY_ID not in site.amazon_links()
    assert site.events("mary") == [
        *[("wrong_password", "wrong_password")] * 5,
        ("locked_out", ""),  # once: the refusal is counted on it
    ]
    assert users(site) == SEEDED


def test_each_amazon_link_unlinks_on_its_own(page: Page, site: DemoSite) -> None:
    login_with_amazon(page, site, "Ada Lovelace")
    expect_account(page, site, "AdaLovelace", "ada@example.com", [ADA_ID])

    # A second Amazon account linked: either may go now, and only that one goes.
    page.locator("#link-another-amazon").click()
    page.get_by_role("radio", name=re.compile(r"^alan\b")).check()
    page.get_by_role("button", name="Allow").click()
    expect_account(page, site, "AdaLovelace", "ada@example.com", [ADA_ID, ALAN_ID])
    expect(page.locator("#unlink-hint")).to_have_count(0)

    unlink(page, ADA_ID)
    expect_account(page, site, "AdaLovelace", "ada@example.com", [ALAN_ID])
    expect(page.locator("#unlink-hint")).to_contain_text("cannot be unlinked")
    assert site.amazon_links() == {ALAN_ID: "AdaLovelace", KATHERINE_ID: "katherine"}
    assert site.amazon_events("AdaLovelace") == [
        ("linked", "new_account", ADA_ID),
        ("linked", "signed_in", ALAN_ID),
        ("unlinked", "", ADA_ID),
    ]


def test_unlink_with_a_forged_form_token_changes_nothing(page: Page, site: DemoSite) -> None:
    sign_in(page, "katherine", "katherine-password-1")
    expect_account(page, site, "katherine", "katherine.old@example.com", [KATHERINE_ID])

    # What a form on another site would post: the right action, not the token.
    page.locator('.unlink-amazon-form input[name="csrf_token"]').evaluate(
        "input => { input.value = 'forged' }"
    )
    unlink(page, KATHERINE_ID)
    expect(page.locator("h1")).to_have_text("Unlink did not complete")
    expect(page.locator("[data-error-code]")).to_have_attribute(
        "data-error-code", "invalid_request"
    )
    assert site.amazon_links() == {KATHERINE_ID: "katherine"}
    assert site.events("katherine") == []
