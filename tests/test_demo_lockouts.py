"""Guessing limits as the demo's people meet them, over real HTTP (demo and emulator on loopback).

The linking prompt locks after five wrong passwords, and anyone whose Amazon
profile carries the address can cause that: the owner is told what still works,
and it does. The demo's own sign-in page is limited too, on a count of its own.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from demo.seed import GRACE_ID
from tests.browser_support import DemoSite
from tests.flows import answer_prompt, sign_in
from tests.forms import first_form

WRONG = "not-graces-password"
TOLD = (
    "If the account is yours, you can still sign in with your password as usual, "
    "then link Amazon from your account page."
)


def local_sign_in(client: requests.Session, site: DemoSite, username: str, password: str):
    page = client.get(f"{site.url}/login")
    action, fields, _radios = first_form(page.text, page.url)
    return client.post(action, data={**fields, "username": username, "password": password})


def lock_linking(client: requests.Session, site: DemoSite) -> requests.Response:
    """Five wrong passwords on the prompt of Grace's Amazon account: linking locks."""
    page = sign_in(client, site, GRACE_ID)
    for _ in range(5):
        page = answer_prompt(client, page, password=WRONG)
        assert page.status_code == 403
    return page


def locked_out_rows(site: DemoSite) -> list[tuple[str, int]]:
    rows = site.query(
        "SELECT u.username, e.repeats FROM amazon_link_events e JOIN users u ON u.id = e.user_id"
        " WHERE e.event = 'locked_out' ORDER BY e.id"
    )
    return [tuple(row) for row in rows]


def test_a_locked_prompt_tells_the_owner_the_way_that_still_works(site: DemoSite) -> None:
    # Mallory put grace's address on his Amazon profile and locked her linking.
    with requests.Session() as mallory:
        page = lock_linking(mallory, site)
        refused = answer_prompt(mallory, page, password="grace-password-1")
    assert refused.status_code == 429
    assert 'data-error-code="too_many_attempts"' in refused.text
    assert TOLD in refused.text
    assert "Try again in 15 minutes." in refused.text

    # Grace does what it says: her sign-in is not locked, and linking from
    # her account page needs no password prompt.
    with requests.Session() as grace:
        account = local_sign_in(grace, site, "grace", "grace-password-1")
        assert account.url == f"{site.url}/account"
        linked = sign_in(grace, site, GRACE_ID)
    assert linked.url == f"{site.url}/account"
    assert site.amazon_links()[GRACE_ID] == "grace"
    assert site.events("grace") == [
        *[("wrong_password", "wrong_password")] * 5,
        ("locked_out", ""),
        ("linked", "signed_in"),
    ]


def test_refusals_while_locked_are_counted_on_one_event(site: DemoSite) -> None:
    with requests.Session() as mallory:
        page = lock_linking(mallory, site)
        for _ in range(25):
            page = answer_prompt(mallory, page, password=WRONG)
            assert page.status_code == 429
    with requests.Session() as grace:
        local_sign_in(grace, site, "grace", "grace-password-1")
        sign_in(grace, site, GRACE_ID)
        account = grace.get(f"{site.url}/account")

    # 5 wrong passwords, one lock (25 refusals counted on it), the link: 7 rows, not 32.
    assert [event for event, _ in site.events("grace")] == [
        *["wrong_password"] * 5,
        "locked_out",
        "linked",
    ]
    assert locked_out_rows(site) == [("grace", 25)]
    # The account page shows the link, and the lock with its count.
    assert "Amazon account linked" in account.text
    assert "Linking locked after too many wrong passwords" in account.text
    assert "(and 25 more tries refused)" in account.text


def test_the_demo_sign_in_locks_after_five_wrong_passwords(site: DemoSite) -> None:
    with requests.Session() as mallory:
        for _ in range(5):
            wrong = local_sign_in(mallory, site, "grace", WRONG)
            assert wrong.status_code == 200
            assert "Wrong username or password." in wrong.text
        locked = local_sign_in(mallory, site, "grace", "grace-password-1")
        assert locked.status_code == 429
        assert 'data-error-code="too_many_attempts"' in locked.text
        assert "Too many wrong passwords were tried for this account" in locked.text
        assert "Try again in 15 minutes." in locked.text
        assert 895 <= int(locked.headers["Retry-After"]) <= 901
        assert mallory.get(f"{site.url}/account").url.startswith(f"{site.url}/login")

    # Another account is not locked; and linking keeps its own count.
    with requests.Session() as alan:
        assert local_sign_in(alan, site, "alan", "alan-password-1").url == f"{site.url}/account"
    with requests.Session() as grace:
        prompt = sign_in(grace, site, GRACE_ID)
        assert answer_prompt(grace, prompt, password="grace-password-1").url.endswith("/account")
    assert site.amazon_links()[GRACE_ID] == "grace"
    assert locked_out_rows(site) == []  # no linking lock


def test_simultaneous_sign_ins_get_five_checks_and_right_ones_all_pass(site: DemoSite) -> None:
    def at_once(username: str, password: str, count: int) -> list[requests.Response]:
        start = threading.Barrier(count)

        def one(_: int) -> requests.Response:
            with requests.Session() as client:
                page = client.get(f"{site.url}/login")
                action, fields, _radios = first_form(page.text, page.url)
                start.wait()
                data = {**fields, "username": username, "password": password}
                return client.post(action, data=data, timeout=60)

        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(one, range(count)))

    right = at_once("alan", "alan-password-1", 10)
    assert [answer.url for answer in right] == [f"{site.url}/account"] * 10

    wrong = at_once("grace", WRONG, 20)
    assert sorted(answer.status_code for answer in wrong) == [200] * 5 + [429] * 15
    assert sum("Wrong username or password." in answer.text for answer in wrong) == 5
    rows = site.query(
        "SELECT scope, failures, pending FROM amazon_link_password_attempts"
        " WHERE user_id = (SELECT id FROM users WHERE username = 'grace')"
    )
    assert [tuple(row) for row in rows] == [("sign_in", 5, 0)]
