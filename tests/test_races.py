"""Concurrent sign-ins: the database decides, and it decides once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.conftest import CLIENT_ID
from tests.flows import answer_prompt, sign_in

ADA = "amzn1.account.AEADALOVELACE00001"
GRACE = "amzn1.account.AEGRACEHOPPER00001"


def test_fifty_simultaneous_first_sign_ins_make_one_account(serve_app, lwa_emulator):
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    app = serve_app()
    token = lwa_emulator.mint_token(CLIENT_ID, ADA)
    start = threading.Barrier(50)

    def sign_in_once(_: int) -> requests.Response:
        with requests.Session() as client:
            start.wait()
            return client.post(f"{app.url}/client-token", data={"access_token": token}, timeout=60)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(sign_in_once, range(50)))

    assert [a.status_code for a in answers] == [200] * 50
    [user] = app.query("SELECT id FROM users")
    assert {a.json()["id"] for a in answers} == {user.id}
    assert [tuple(r) for r in app.query("SELECT user_id, uid FROM social_auth_usersocialauth")] == [
        (user.id, ADA)
    ]
    assert [e[0] for e in app.events()] == ["linked"]


def test_fifty_simultaneous_first_sign_ins_through_the_api_make_one_account(
    serve_app, lwa_emulator
):
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    app = serve_app()
    # Fifty phones, each with its own cookie jar and its own token for Ada.
    tokens = [lwa_emulator.mint_token(CLIENT_ID, ADA) for _ in range(50)]
    start = threading.Barrier(50)

    def sign_in_once(token: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
        with requests.Session() as phone:
            start.wait()
            answer = phone.post(
                f"{app.url}/api/amazon/token", json={"access_token": token}, timeout=60
            )
            me = phone.get(f"{app.url}/me", timeout=60).json()
            return answer.status_code, answer.json(), me

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(sign_in_once, tokens))

    assert [status for status, _, _ in results] == [200] * 50
    assert {body["status"] for _, body, _ in results} == {"authenticated"}
    assert [body["new_user"] for _, body, _ in results].count(True) == 1
    [user] = app.query("SELECT id FROM users")
    assert {body["user"]["id"] for _, body, _ in results} == {user.id}
    assert {me["id"] for _, _, me in results} == {user.id}  # every phone is signed in
    assert app.links() == [(user.id, ADA)]
    assert app.events() == [("linked", user.id, ADA, "new_account")]
    assert app.query("SELECT token FROM social_auth_partial") == []


def test_twenty_simultaneous_wrong_passwords_get_at_most_five_tries(serve_app, lwa_emulator):
    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", "the right one")
    statuses = answered_at_once(app, [GRACE] * 20, "a wrong guess")

    assert statuses.count(403) == 5  # wrong_password: the five tries that were checked
    assert statuses.count(429) == 15  # too_many_attempts: never checked
    [row] = app.query(
        "SELECT failures FROM amazon_link_password_attempts WHERE user_id = :u", u=user_id
    )
    assert row.failures == 5
    events = [e[0] for e in app.events()]
    assert events.count("wrong_password") == 5
    assert app.query("SELECT id FROM social_auth_usersocialauth") == []


def test_ten_simultaneous_right_passwords_all_link(serve_app, lwa_emulator):
    # Ten Amazon accounts carrying Grace's email, each paused on her password
    # prompt; all ten answer with the right password at once. A right password
    # is refused only when wrong ones locked the account: none of these is.
    identities = [f"amzn1.account.AEGRACEHOPPER{n:05}" for n in range(10)]
    for amazon_id in identities:
        lwa_emulator.add_identity(amazon_id, "Grace Hopper", "grace@example.com")
    app = serve_app()
    user_id = app.add_user("grace", "grace@example.com", "the right one")
    statuses = answered_at_once(app, identities, "the right one")

    assert statuses == [200] * 10  # each signed in (/me), none 429
    assert sorted(app.links()) == sorted((user_id, amazon_id) for amazon_id in identities)
    assert [event for event, *_ in app.events()] == ["linked"] * 10
    assert app.query(
        "SELECT failures, pending, locked_until FROM amazon_link_password_attempts"
    ) == [(0, 0, 0)]


def answered_at_once(app: Any, amazon_ids: list[str], password: str) -> list[int]:
    """A password prompt paused for each Amazon account, then all answered at once: statuses."""
    clients = [requests.Session() for _ in amazon_ids]
    try:
        prompts = [
            sign_in(c, app, amazon_id) for c, amazon_id in zip(clients, amazon_ids, strict=True)
        ]
        start = threading.Barrier(len(clients))

        def answer(n: int) -> int:
            start.wait()
            return answer_prompt(clients[n], prompts[n], password=password).status_code

        with ThreadPoolExecutor(len(clients)) as pool:
            return list(pool.map(answer, range(len(clients))))
    finally:
        for client in clients:
            client.close()
