"""`python -m demo` (what `make demo` runs) serves the demo and its emulator."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.browser_support import REPO, DemoProcess, start_with_amazon
from tests.forms import first_form


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def python_m_demo(
    cwd: Path, port: int, emulator_port: int, framework: str = "flask", **env: str
) -> Iterator[str]:
    """Run ``python -m demo`` in ``cwd`` with ``env``; yield its URL once it says it serves."""
    ports = ("--port", str(port), "--emulator-port", str(emulator_port))
    demo = DemoProcess(cwd, "--framework", framework, *ports, **env)
    try:
        base = f"http://127.0.0.1:{port}"
        assert demo.line_starting("Demo on ") == f"Demo on {base}  (Ctrl-C to stop)"
        # Said only once it serves: the first request is answered at once.
        assert requests.get(f"{base}/login", timeout=5).status_code == 200
        yield base
    finally:
        demo.stop()


def allow_first_identity(
    browser: requests.Session, amazon: requests.Response
) -> tuple[requests.Response, str]:
    """On the emulator's sign-in page: choose its first identity, Allow; (answer, user_id)."""
    action, fields, radios = first_form(amazon.text, amazon.url)
    user_id = radios["user_id"][0]
    answer = browser.post(action, data={**fields, "user_id": user_id, "decision": "allow"})
    return answer, user_id


def test_python_m_demo_serves_and_signs_in_with_amazon(tmp_path, db_kind, database_url, framework):
    port, emulator_port = free_port(), free_port()
    # A URL left in the shell by an earlier run: the demo uses the emulator it starts.
    env = {"LWA_EMULATOR_URL": f"http://127.0.0.1:{free_port()}"}
    if db_kind == "sqlite":  # the default: a file under ./instance
        database_url = f"sqlite:///{tmp_path / 'instance' / 'demo.sqlite3'}"
    else:
        env["DATABASE_URL"] = database_url
    with python_m_demo(tmp_path, port, emulator_port, framework, **env) as base:
        browser = requests.Session()
        login = browser.get(f"{base}/login")
        assert 'id="demo-hint"' in login.text and "Login with Amazon" in login.text

        amazon = start_with_amazon(browser, f"{base}/login")
        assert amazon.url.startswith(f"http://127.0.0.1:{emulator_port}/ap/oa")
        account, ada = allow_first_identity(browser, amazon)
        assert account.url == f"{base}/account"
        shown = dict(re.findall(r'id="account-(\w+)">([^<]*)<', account.text))
        assert shown["email"] == "ada@example.com"
        assert re.findall(r'class="amazon-uid">([^<]*)<', account.text) == [ada]

        # Opened as localhost, not 127.0.0.1: the emulator knows that callback too.
        other = requests.Session()
        amazon = start_with_amazon(other, f"http://localhost:{port}/login")
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


def test_python_m_demo_with_real_amazon_seeds_no_demo_accounts(tmp_path, framework):
    port, emulator_port = free_port(), free_port()
    real = {"AMAZON_CLIENT_ID": "amzn1.application-oa2-client.real", "AMAZON_CLIENT_SECRET": "s"}
    with python_m_demo(tmp_path, port, emulator_port, framework, **real, AMAZON_REGION="") as base:
        login = requests.get(f"{base}/login")
        assert "Login with Amazon" in login.text and 'id="demo-hint"' not in login.text
        assert requests.get(f"{base}/demo/outbox").status_code == 404
        amazon = start_with_amazon(requests.Session(), f"{base}/login", allow_redirects=False)
        assert amazon.headers["Location"].startswith("https://www.amazon.com/ap/oa?")
        with socket.socket() as sock:  # no emulator
            assert sock.connect_ex(("127.0.0.1", emulator_port)) != 0
        # No local accounts with the README's passwords, no links to emulated identities.
        with closing(sqlite3.connect(tmp_path / "instance" / "demo.sqlite3")) as db:
            assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM social_auth_usersocialauth").fetchone() == (0,)


def seeded_usernames() -> list[str]:
    from demo.seed import LOCAL_USERS

    return sorted(local.username for local in LOCAL_USERS)


def usernames(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            return sorted(db.execute(text("SELECT username FROM users")).scalars())
    finally:
        engine.dispose()


def sign_in_as_ada(base: str) -> None:
    browser = requests.Session()
    account, _ada = allow_first_identity(browser, start_with_amazon(browser, f"{base}/login"))
    assert account.url == f"{base}/account"


def test_each_run_starts_on_a_fresh_seeded_database(tmp_path, framework):
    database = tmp_path / "instance" / "demo.sqlite3"
    with python_m_demo(tmp_path, free_port(), free_port(), framework) as base:
        sign_in_as_ada(base)
    assert usernames(f"sqlite:///{database}") == sorted([*seeded_usernames(), "AdaLovelace"])

    ports = ("--port", str(free_port()), "--emulator-port", str(free_port()))
    demo = DemoProcess(tmp_path, "--framework", framework, *ports)
    try:
        line = demo.line_starting("Database: ")
        assert line == (
            "Database: instance/demo.sqlite3, made anew for this run (DATABASE_URL keeps one)"
        )
        demo.line_starting("Demo on ")
        # The table's paths work again: no Ada from the last run, Katherine's
        # link back as seeded.
        assert usernames(f"sqlite:///{database}") == seeded_usernames()
    finally:
        demo.stop()


def test_with_database_url_the_database_is_kept_and_said_so(
    tmp_path, db_kind, database_url, framework
):
    if db_kind == "sqlite":  # not the default file: one the person chose
        database_url = f"sqlite:///{tmp_path / 'mine.sqlite3'}"
    for run in range(2):
        demo = DemoProcess(
            tmp_path,
            "--framework",
            framework,
            *("--port", str(port := free_port()), "--emulator-port", str(free_port())),
            DATABASE_URL=database_url,
        )
        try:
            line = demo.line_starting("Database: ")
            assert line.endswith(
                "(DATABASE_URL), kept between runs: the seed adds only the accounts and "
                "links that are missing"
            )
            demo.line_starting("Demo on ")
            if run == 0:
                sign_in_as_ada(f"http://127.0.0.1:{port}")
        finally:
            demo.stop()
    assert usernames(database_url) == sorted([*seeded_usernames(), "AdaLovelace"])
    assert not (tmp_path / "instance" / "demo.sqlite3").exists()


def test_database_url_is_shown_without_its_password(monkeypatch):
    from demo.__main__ import fresh_database

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://me:s3cr%40t@db.example/demo")
    line = fresh_database()
    assert line.startswith("Database: postgresql+psycopg://me:***@db.example/demo (DATABASE_URL)")
    assert "s3cr" not in line


@pytest.mark.parametrize("busy", ["demo", "emulator"])
def test_a_busy_port_is_one_line_that_says_what_to_do(tmp_path, busy):
    # A database left by the demo still running on that port: not wiped.
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "demo.sqlite3").write_bytes(b"the running demo's data")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port, emulator_port = free_port(), free_port()
        if busy == "demo":
            port = taken.getsockname()[1]
        else:
            emulator_port = taken.getsockname()[1]
        demo = DemoProcess(tmp_path, "--port", str(port), "--emulator-port", str(emulator_port))
        code, output = demo.finish()
    whose = "the demo's" if busy == "demo" else "the LWA emulator's"
    used = port if busy == "demo" else emulator_port
    assert code == 1
    assert output == [
        f"python -m demo: {whose} port {used} on 127.0.0.1 is already in use (another demo "
        "still running?): stop that program, or pick free ports, e.g. make demo PORT=5050 "
        "EMULATOR_PORT=5051 (python -m demo --port 5050 --emulator-port 5051)"
    ]
    assert (instance / "demo.sqlite3").read_bytes() == b"the running demo's data"


def test_port_zero_serves_on_a_free_port_and_says_which(tmp_path, framework):
    demo = DemoProcess(tmp_path, "--framework", framework, "--port", "0", "--emulator-port", "0")
    try:
        emulator = demo.line_starting("LWA emulator on http://127.0.0.1:").split()[-1]
        served = re.fullmatch(
            r"Demo on (http://127\.0\.0\.1:(\d+))  \(Ctrl-C to stop\)",
            demo.line_starting("Demo on "),
        )
        assert served is not None and served.group(2) != "0"
        browser = requests.Session()
        amazon = start_with_amazon(browser, f"{served.group(1)}/login")
        assert amazon.url.startswith(f"{emulator}/ap/oa?")
        assert '<strong id="app-name">Acme Books</strong>' in amazon.text
    finally:
        demo.stop()


@pytest.mark.parametrize(
    ("make_args", "demo_args"),
    [
        ([], ""),
        (["PORT=5050", "EMULATOR_PORT=5051"], " --port 5050 --emulator-port 5051"),
        (["PORT=5050"], " --port 5050"),
        (["FRAMEWORK=django", "PORT=5050"], " --framework django --port 5050"),
    ],
)
def test_make_demo_passes_the_ports_on(make_args, demo_args):
    # Not the variables of a make this suite may run under (`make test`):
    # they would change what the inner make prints.
    ignored = ("PORT", "EMULATOR_PORT", "FRAMEWORK", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "--always-make", "-n", "demo", *make_args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert dry_run.stdout.splitlines()[-1].rstrip() == f".venv/bin/python -m demo{demo_args}"


def two_free_ports() -> tuple[int, int]:
    """Two ports free now, and not the same one (both held while they are picked)."""
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return int(first.getsockname()[1]), int(second.getsockname()[1])


def test_the_django_demo_starts_a_sign_in_on_a_post_only(tmp_path):
    with python_m_demo(tmp_path, *two_free_ports(), "django") as base:
        # social_django 8: a GET of /login/amazon/ starts nothing, 405.
        refused = requests.get(f"{base}/login/amazon/", allow_redirects=False)
        assert refused.status_code == 405
        # Nor does a POST without the page's CSRF token.
        assert requests.post(f"{base}/login/amazon/", allow_redirects=False).status_code != 302
        # The page's form (its token) does: to the emulator's sign-in page.
        started = start_with_amazon(requests.Session(), f"{base}/login", allow_redirects=False)
        assert started.status_code == 302 and "/ap/oa?" in started.headers["Location"]


def test_manage_py_check_is_clean_on_the_django_demo(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    checked = subprocess.run(
        [sys.executable, str(REPO / "demo" / "manage.py"), "check", "--fail-level", "WARNING"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (checked.returncode, checked.stdout.strip(), checked.stderr) == (
        0,
        "System check identified no issues (0 silenced).",
        "",
    )
