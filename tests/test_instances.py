"""Two app processes behind one database and one secret behave as one app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import sample_app
from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.flows import api_sign_ins_at_once, consent, start_sign_in
from tests.forms import first_form
from tests.test_demo_process import free_port

REPO = Path(__file__).resolve().parents[1]
ADA = "amzn1.account.AEADALOVELACE00001"
GRACE = "amzn1.account.AEGRACEHOPPER00001"
PASSWORD = "correct horse battery"


class Instance:
    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process

    def start_sign_in(self, browser: requests.Session) -> requests.Response:
        """The person clicks "Login with Amazon" on this instance (a link on Flask)."""
        return browser.get(f"{self.url}/login/amazon/", allow_redirects=False)


@pytest.fixture
def instances(database_url: str, lwa_emulator: Any) -> Iterator[tuple[Instance, Instance]]:
    ports = [free_port(), free_port()]
    settings = {
        "SECRET_KEY": "one secret for every instance",
        "SOCIAL_AUTH_AMAZON_KEY": CLIENT_ID,
        "SOCIAL_AUTH_AMAZON_SECRET": CLIENT_SECRET,
        "SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL": f"{lwa_emulator.url}/ap/oa",
        "SOCIAL_AUTH_AMAZON_API_URL": lwa_emulator.url,
    }
    lwa_emulator.add_client(
        CLIENT_ID,
        CLIENT_SECRET,
        redirect_uris=[f"http://127.0.0.1:{p}/complete/amazon/" for p in ports],
    )
    # The schema first, from one place, as a deployment's migration step would.
    setup = sample_app.create_app(database_url, settings)
    setup.extensions["test_session"].remove()
    setup.extensions["test_engine"].dispose()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_url,
        "SAL_TEST_SETTINGS": json.dumps(settings),
    }
    started = []
    for port in ports:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waitress",
                f"--listen=127.0.0.1:{port}",
                "--threads=8",
                "--call",
                "tests.instance_app:create",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started.append(Instance(f"http://127.0.0.1:{port}", process))
    try:
        for instance in started:
            _wait_until_up(instance)
        yield started[0], started[1]
    finally:
        for instance in started:
            instance.process.terminate()
            instance.process.wait(timeout=10)


def _wait_until_up(instance: Instance) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise AssertionError(instance.process.stderr.read().decode())  # type: ignore[union-attr]
        try:
            requests.get(f"{instance.url}/me", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{instance.url} did not start")


def _paused_on(browser: requests.Session, instance: Instance) -> requests.Response:
    callback = consent(browser, start_sign_in(browser, instance), GRACE, "allow")  # type: ignore[arg-type]
    prompt = browser.get(callback)
    assert "/link/amazon/password" in prompt.url
    return prompt


def _answer_on(
    browser: requests.Session, prompt: requests.Response, instance: Instance, password: str
) -> requests.Response:
    _action, fields, _ = first_form(prompt.text, prompt.url)
    return browser.post(
        f"{instance.url}/link/amazon/password", data={**fields, "password": password}
    )


@pytest.fixture
def grace(lwa_emulator: Any, database_url: str, instances: Any) -> int:
    """Grace's Amazon identity, and a local account with her email and a password."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session
    from werkzeug.security import generate_password_hash

    lwa_emulator.add_identity(GRACE, "Grace Hopper", "grace@example.com")
    engine = create_engine(database_url)
    with Session(engine) as session:
        user = sample_app.User(
            username="grace",
            email="grace@example.com",
            password_hash=generate_password_hash(PASSWORD),
        )
        session.add(user)
        session.commit()
        user_id = int(user.id)
    engine.dispose()
    return user_id


def test_a_sign_in_paused_on_one_instance_completes_on_the_other(instances, grace):
    first, second = instances
    with requests.Session() as browser:
        prompt = _paused_on(browser, first)
        done = _answer_on(browser, prompt, second, PASSWORD)
        assert done.url == f"{second.url}/me"
        assert done.json()["id"] == grace
        # The session is the same on both: signed in on the first too.
        assert browser.get(f"{first.url}/me").json()["id"] == grace


def test_the_lockout_counter_is_shared_by_the_instances(instances, grace):
    first, second = instances
    with requests.Session() as browser:
        prompt = _paused_on(browser, first)
        statuses = [
            _answer_on(browser, prompt, instance, "wrong").status_code
            for instance in (first, second, first, second, first)
        ]
        assert statuses == [403] * 5
        assert _answer_on(browser, prompt, second, PASSWORD).status_code == 429
        assert _answer_on(browser, prompt, first, PASSWORD).status_code == 429


def _rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_fifty_first_sign_ins_across_both_instances_make_one_account(
    instances, lwa_emulator, database_url
):
    lwa_emulator.add_identity(ADA, "Ada Lovelace", "ada@example.com")
    token = lwa_emulator.mint_token(CLIENT_ID, ADA)
    start = threading.Barrier(50)

    def sign_in_once(n: int) -> requests.Response:
        instance = instances[n % 2]
        with requests.Session() as client:
            start.wait()
            return client.post(
                f"{instance.url}/client-token", data={"access_token": token}, timeout=60
            )

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(sign_in_once, range(50)))

    assert [a.status_code for a in answers] == [200] * 50
    [(user_id,)] = _rows(database_url, "SELECT id FROM users")
    assert {a.json()["id"] for a in answers} == {user_id}
    assert _rows(database_url, "SELECT user_id, uid FROM social_auth_usersocialauth") == [
        (user_id, ADA)
    ]
    assert _rows(database_url, "SELECT event FROM amazon_link_events") == [("linked",)]


def test_twenty_wrong_passwords_across_both_instances_get_five_tries(
    instances, grace, database_url
):
    browsers = [requests.Session() for _ in range(20)]
    prompts = [_paused_on(browser, instances[0]) for browser in browsers]
    start = threading.Barrier(20)

    def guess(n: int) -> int:
        start.wait()
        return _answer_on(browsers[n], prompts[n], instances[n % 2], "a wrong guess").status_code

    try:
        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(guess, range(20)))
    finally:
        for browser in browsers:
            browser.close()

    assert statuses.count(403) == 5  # wrong_password: the five tries that were checked
    assert statuses.count(429) == 15  # too_many_attempts: never checked
    assert _rows(database_url, "SELECT user_id FROM social_auth_usersocialauth") == []
    events = sorted(e for (e,) in _rows(database_url, "SELECT event FROM amazon_link_events"))
    assert events.count("wrong_password") == 5


def test_first_sign_ins_on_two_processes_sharing_one_database_never_fail(
    instances, lwa_emulator, database_url
):
    # Two server processes on one database (one SQLite file, say): twenty
    # clients, each signing in ten new Amazon accounts and one returning one,
    # through both processes. Before, SQLite's write lock was taken for every
    # first sign-in and held by readers: a few answered 500 "database is locked".
    clients, rounds = 20, 10
    people = [f"amzn1.account.AEPROCESSES{n:05d}" for n in range(clients * rounds)]
    for n, person in enumerate(people):
        lwa_emulator.add_identity(person, f"Person {n}", f"person{n}@example.com")
    tokens = [lwa_emulator.mint_token(CLIENT_ID, person) for person in people]
    start = threading.Barrier(clients)

    def client(n: int) -> list[int]:
        mine = tokens[n * rounds : (n + 1) * rounds]
        with requests.Session() as session:
            start.wait()
            return [
                session.post(
                    f"{instances[(n + i) % 2].url}/client-token",
                    data={"access_token": token},
                    timeout=60,
                ).status_code
                for i, token in enumerate([*mine, mine[0]])
            ]

    with ThreadPoolExecutor(clients) as pool:
        statuses = [status for answers in pool.map(client, range(clients)) for status in answers]

    assert statuses == [200] * (clients * (rounds + 1))
    links = _rows(database_url, "SELECT user_id, uid FROM social_auth_usersocialauth")
    assert sorted(uid for _user, uid in links) == sorted(people)
    assert len({user for user, _uid in links}) == len(people)
    assert len(_rows(database_url, "SELECT id FROM users")) == len(people)


def test_twelve_amazon_accounts_with_one_new_email_across_both_instances_make_one_account(
    instances, lwa_emulator, database_url
):
    people = [f"amzn1.account.AEONEEMAILTWICE{n:05d}" for n in range(12)]
    for n, person in enumerate(people):
        lwa_emulator.add_identity(person, f"Person {n}", "Shared@Example.com")
    tokens = [lwa_emulator.mint_token(CLIENT_ID, person) for person in people]
    answers = api_sign_ins_at_once([instance.url for instance in instances], tokens)

    [(user_id,)] = _rows(database_url, "SELECT id FROM users")
    assert [body["user"]["id"] for status, body in answers if status == 200] == [user_id]
    # The others: what any later sign-in with that email gets (the account has
    # no password and signs in with another Amazon account).
    assert sorted(status for status, _ in answers) == [200] + [409] * 11
    [(linked_user, _uid)] = _rows(
        database_url, "SELECT user_id, uid FROM social_auth_usersocialauth"
    )
    assert linked_user == user_id
