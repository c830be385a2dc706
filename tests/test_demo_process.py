"""`python -m demo` (what `make demo` runs) serves the demo and its emulator."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

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


def test_python_m_demo_serves_and_signs_in_with_amazon(tmp_path):
    port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMAZON_")}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen(
        [sys.executable, "-m", "demo", "--port", str(port), "--emulator-port", str(emulator_port)],
        cwd=tmp_path,  # the demo keeps its SQLite file in ./instance
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/login", process)
        browser = requests.Session()
        login = browser.get(f"{base}/login")
        assert 'id="demo-hint"' in login.text and "Login with Amazon" in login.text

        amazon = browser.get(f"{base}/login/amazon/")
        assert amazon.url.startswith(f"http://127.0.0.1:{emulator_port}/ap/oa")
        action, fields, radios = first_form(amazon.text, amazon.url)
        account = browser.post(
            action, data={**fields, "user_id": radios["user_id"][0], "decision": "allow"}
        )
        assert account.url == f"{base}/account"
        shown = dict(re.findall(r'id="account-(\w+)">([^<]*)<', account.text))
        assert shown["email"] == "ada@example.com"
        assert shown["amazon"] == radios["user_id"][0]
        assert (tmp_path / "instance" / "demo.sqlite3").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
