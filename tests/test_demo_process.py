"""`python -m demo` (what `make demo` runs) serves the demo and its emulator."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from tests.forms import first_form

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the demo exited early"
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@contextmanager
def python_m_demo(cwd: Path, port: int, emulator_port: int, **env: str) -> Iterator[str]:
    """Run ``python -m demo`` in ``cwd`` with ``env`` added; yield its URL once it answers."""
    # Only what the test sets: no Amazon credentials, database or emulator
    # URL of the shell running the tests.
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AMAZON_") and k not in ("DATABASE_URL", "LWA_EMULATOR_URL")
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "demo", "--port", str(port), "--emulator-port", str(emulator_port)],
        cwd=cwd,  # the demo keeps its SQLite file in ./instance
        env={**inherited, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/login", process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def allow_first_identity(
    browser: requests.Session, amazon: requests.Response
) -> tuple[requests.Response, str]:
    """On the emulator's sign-in page: choose its first identity, Allow; (answer, user_id)."""
    action, fields, radios = first_form(amazon.text, amazon.url)
    user_id = radios["user_id"][0]
    answer = browser.post(action, data={**fields, "user_id": user_id, "decision": "allow"})
    return answer, user_id


def test_python_m_demo_serves_and_signs_in_with_amazon(tmp_path, db_kind, database_url):
    port, emulator_port = free_port(), free_port()
    # A URL left in the shell by an earlier run: the demo uses the emulator it starts.
    env = {"LWA_EMULATOR_URL": f"http://127.0.0.1:{free_port()}"}
    if db_kind == "sqlite":  # the default: a file under ./instance
        database_url = f"sqlite:///{tmp_path / 'instance' / 'demo.sqlite3'}"
    else:
        env["DATABASE_URL"] = database_url
    with python_m_demo(tmp_path, port, emulator_port, **env) as base:
        browser = requests.Session()
        login = browser.get(f"{base}/login")
        assert 'id="demo-hint"' in login.text and "Login with Amazon" in login.text

        amazon = browser.get(f"{base}/login/amazon/")
        assert amazon.url.startswith(f"http://127.0.0.1:{emulator_port}/ap/oa")
        account, ada = allow_first_identity(browser, amazon)
        assert account.url == f"{base}/account"
        shown = dict(re.findall(r'id="account-(\w+)">([^<]*)<', account.text))
        assert shown["email"] == "ada@example.com"
        assert re.findall(r'class="amazon-uid">([^<]*)<', account.text) == [ada]

        # Opened as localhost, not 127.0.0.1: the emulator knows that callback too.
        other = requests.Session()
        amazon = other.get(f"http://localhost:{port}/login/amazon/")
        assert amazon.status_code == 200
        assert "redirect_uri=http://localhost:" in amazon.url
        answer, _ = allow_first_identity(other, amazon)
        assert answer.url == f"http://localhost:{port}/account"
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            query = "SELECT u.username, a.uid FROM users u JOIN social_auth_usersocialauth a"
            rows = db.execute(
                text(f"{query} ON a.user_id = u.id WHERE u.email = :e"), {"e": "ada@example.com"}
            )
            assert [tuple(row) for row in rows] == [("AdaLovelace", ada)]
    finally:
        engine.dispose()


def test_python_m_demo_with_real_amazon_seeds_no_demo_accounts(tmp_path):
    port, emulator_port = free_port(), free_port()
    real = {"AMAZON_CLIENT_ID": "amzn1.application-oa2-client.real", "AMAZON_CLIENT_SECRET": "s"}
    with python_m_demo(tmp_path, port, emulator_port, **real, AMAZON_REGION="") as base:
        login = requests.get(f"{base}/login")
        assert "Login with Amazon" in login.text and 'id="demo-hint"' not in login.text
        amazon = requests.get(f"{base}/login/amazon/", allow_redirects=False)
        assert amazon.headers["Location"].startswith("https://www.amazon.com/ap/oa?")
        with socket.socket() as sock:  # no emulator
            assert sock.connect_ex(("127.0.0.1", emulator_port)) != 0
        # No local accounts with the README's passwords, no links to emulated identities.
        with closing(sqlite3.connect(tmp_path / "instance" / "demo.sqlite3")) as db:
            assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM social_auth_usersocialauth").fetchone() == (0,)
