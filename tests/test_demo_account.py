"""The demo's account page, and what the demo says after a link, an unlink, a cancel,
or on a sign-in that is already over: over HTTP, with the emulator, no browser.

The demo and its emulator are served as ``python -m demo`` serves them
(``tests.browser_support.DemoSite``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from demo.seed import ADA_ID, ALAN_ID, GRACE_ID, KATHERINE_ID, MARY_ID
from tests.browser_support import DemoSite, start_with_amazon
from tests.forms import first_form


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def heading(page: requests.Response) -> str:
    [h1] = re.findall(r"<h1>([^<]*)</h1>", page.text)
    return str(h1)


def flashes(page: requests.Response) -> list[str]:
    return re.findall(r'<div class="flash \w+" role="status">([^<]*)</div>', page.text)


def error_code(page: requests.Response) -> str:
    found = re.search(r'data-error-code(?:="([^"]+)"[^>]*>|>)([^<]*)<', page.text)
    assert found is not None, "no error code on the page"
    return found.group(1) or found.group(2)


def linked_accounts(page: requests.Response) -> list[tuple[str, str, str]]:
    """(name, email, user_id) of each Amazon account the page lists."""
    return re.findall(
        r'<strong class="amazon-name">([^<]*)</strong>\s*'
        r'(?:<span class="amazon-email">([^<]*)</span>)?\s*'
        r'<span class="amazon-uid">([^<]*)</span>',
        page.text,
    )


def unlink_buttons(page: requests.Response) -> list[str]:
    return re.findall(r'aria-label="Unlink Amazon ([^"]*)"', page.text)


def amazon_callback(browser: requests.Session, site: DemoSite, user_id: str) -> str:
    """Login with Amazon, choose ``user_id``, Allow: the callback URL Amazon sends back."""
    amazon = start_with_amazon(browser, f"{site.url}/login")
    action, fields, _radios = first_form(amazon.text, amazon.url)
    answer = browser.post(
        action, data={**fields, "user_id": user_id, "decision": "allow"}, allow_redirects=False
    )
    return str(answer.headers["Location"])


def sign_in(browser: requests.Session, site: DemoSite, username: str, password: str) -> None:
    page = browser.get(f"{site.url}/login")
    action, fields, _radios = first_form(page.text, page.url)
    answer = browser.post(action, data={**fields, "username": username, "password": password})
    assert answer.url == f"{site.url}/account"


def post_first_form(
    browser: requests.Session, page: requests.Response, **fields: str
) -> requests.Response:
    action, values, _radios = first_form(page.text, page.url)
    return browser.post(action, data={**values, **fields})


def link_grace_by_password(browser: requests.Session, site: DemoSite) -> tuple[str, str]:
    """Grace links by password; (the callback URL, the prompt's URL) it went through."""
    url = amazon_callback(browser, site, GRACE_ID)
    prompt = browser.get(url)
    assert "/link/amazon/password" in prompt.url
    account = post_first_form(browser, prompt, password="grace-password-1")
    assert account.url == f"{site.url}/account"
    assert flashes(account) == ["Amazon account Grace Hopper (grace@example.com) linked."]
    return url, prompt.url


def test_account_page_names_each_link_by_what_amazon_said_last(site, browser):
    sign_in(browser, site, "katherine", "katherine-password-1")
    account = browser.get(f"{site.url}/account")
    assert linked_accounts(account) == [
        ("Katherine Johnson", "katherine.old@example.com", KATHERINE_ID)
    ]
    assert unlink_buttons(account) == [KATHERINE_ID]  # she has a password
    assert 'id="unlink-hint"' not in account.text


def test_unlink_is_offered_only_where_it_is_allowed_and_says_why_not(site, browser):
    # Ada's account is made by Amazon: no password, so her only link is her
    # only way to sign in.
    account = browser.get(amazon_callback(browser, site, ADA_ID))
    assert linked_accounts(account) == [("Ada Lovelace", "ada@example.com", ADA_ID)]
    assert unlink_buttons(account) == []
    assert re.search(
        r'id="unlink-hint">It is this account\'s only way to sign in,\s+so it cannot be unlinked',
        account.text,
    )

    # A second Amazon account: either may go now.
    browser.get(amazon_callback(browser, site, ALAN_ID))
    account = browser.get(f"{site.url}/account")
    assert unlink_buttons(account) == [ADA_ID, ALAN_ID]
    assert 'id="unlink-hint"' not in account.text


def test_linking_and_unlinking_are_confirmed_by_name(site, browser):
    link_grace_by_password(browser, site)
    account = browser.get(f"{site.url}/account")
    assert flashes(account) == []  # said once
    assert linked_accounts(account) == [("Grace Hopper", "grace@example.com", GRACE_ID)]

    form = re.search(
        r'action="([^"]+)" class="unlink-amazon-form">.*?name="csrf_token" value="([^"]+)"',
        account.text,
        re.S,
    )
    assert form is not None
    unlinked = browser.post(f"{site.url}{form.group(1)}", data={"csrf_token": form.group(2)})
    assert unlinked.url == f"{site.url}/account"
    assert flashes(unlinked) == ["Amazon account Grace Hopper (grace@example.com) unlinked."]
    assert GRACE_ID not in site.amazon_links()


def test_a_new_account_says_which_amazon_account_made_it(site, browser):
    account = browser.get(amazon_callback(browser, site, ADA_ID))
    assert account.url == f"{site.url}/account"
    assert flashes(account) == [
        "Your account was made with Amazon account Ada Lovelace (ada@example.com)."
    ]


def test_a_plain_sign_in_with_a_linked_amazon_account_flashes_nothing(site, browser):
    account = browser.get(amazon_callback(browser, site, KATHERINE_ID))
    assert account.url == f"{site.url}/account"
    assert flashes(account) == []


def test_cancel_on_the_prompt_is_confirmed_and_links_nothing(site, browser):
    prompt = browser.get(amazon_callback(browser, site, GRACE_ID))
    cancelled = post_first_form(browser, prompt, action="cancel")
    assert cancelled.url == f"{site.url}/login"
    assert flashes(cancelled) == ["Sign-in cancelled. Nothing was changed."]
    assert GRACE_ID not in site.amazon_links()


def test_a_refused_cancel_is_not_confirmed(site, browser):
    prompt = browser.get(amazon_callback(browser, site, GRACE_ID))
    refused = post_first_form(browser, prompt, action="cancel", csrf_token="forged")
    assert error_code(refused) == "invalid_request"
    assert flashes(refused) == []


def test_back_after_linking_says_amazon_is_already_linked(site, browser):
    callback, prompt = link_grace_by_password(browser, site)

    for url, code in ((prompt, "invalid_partial"), (callback, "session_context_missing")):
        page = browser.get(url)  # Back to the prompt; the used callback again
        assert (page.status_code, error_code(page)) == (400, code)
        assert heading(page) == "Amazon is already linked to your account"
        assert "nothing was changed just now" in page.text
        assert "was not linked" not in page.text and "expired." not in page.text
        assert linked_accounts(page) == [("Grace Hopper", "grace@example.com", GRACE_ID)]
    assert site.amazon_links()[GRACE_ID] == "grace"


def test_signed_in_without_amazon_a_sign_in_that_is_over_changed_nothing(site, browser):
    with requests.Session() as other:  # a sign-in started in another browser
        url = amazon_callback(other, site, GRACE_ID)
    sign_in(browser, site, "alan", "alan-password-1")
    page = browser.get(url)
    assert (page.status_code, error_code(page)) == (400, "session_context_missing")
    assert heading(page) == "Nothing was changed"
    assert linked_accounts(page) == []
    assert GRACE_ID not in site.amazon_links()


def test_the_lockout_row_works_after_the_link_by_password_row(site, browser):
    # The README's table in one run, "link by password" first: the lockout
    # has its own identity, so it can still be tried.
    link_grace_by_password(browser, site)
    with requests.Session() as other:
        prompt = other.get(amazon_callback(other, site, MARY_ID))
        assert "/link/amazon/password" in prompt.url
        for _ in range(5):
            answer = post_first_form(other, prompt, password="not-marys-password")
        right = post_first_form(other, answer, password="mary-password-1")
    assert (right.status_code, error_code(right)) == (429, "too_many_attempts")
    assert MARY_ID not in site.amazon_links()
