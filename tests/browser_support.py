"""The demo and its LWA emulator, served for the Chromium tests, under either framework.

``DemoSite.start(database_url, framework)`` does what ``python -m demo`` does,
on free loopback ports and with a fresh database (SQLite or PostgreSQL): the
emulator with the demo's identities and client, the demo app pointed at it,
the same seed data. The Flask demo is served in-process; the Django demo is
``python -m demo --framework django`` itself (:class:`DemoProcess`), as a Django
project is configured once per process and the suite's own Django settings
(``tests.django_settings``) hold another user model.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

from demo import amazon_settings, create_app, demo_client, mobile_client
from demo.seed import AMAZON_IDENTITIES, seed
from social_amazon_link.emulator import create_app as create_emulator
from social_amazon_link.emulator import serve
from tests.forms import first_form

REPO = Path(__file__).resolve().parents[1]

#: Debian's Chromium (``apt-get install chromium``); Playwright's own builds
#: cannot be downloaded here.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Where the tests leave a picture of each main page: ``make screenshots``
#: sets ``SCREENSHOTS_DIR=docs/screenshots`` (the pictures of docs/demo.md); a plain
#: test run writes them to a scratch folder, so it changes no tracked file.
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "sal-screenshots"
).resolve()


class DemoProcess:
    """``python -m demo`` running in ``cwd``, its output read line by line."""

    def __init__(self, cwd: Path, *args: str, **env: str) -> None:
        # Only what the test sets: no Amazon credentials, database or emulator
        # URL of the shell running the tests.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AMAZON_") and k not in ("DATABASE_URL", "LWA_EMULATOR_URL")
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "demo", *args],
            cwd=cwd,  # the demo keeps its SQLite file in ./instance
            env={**inherited, "PYTHONPATH": str(REPO), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line_starting(self, prefix: str, seconds: float = 60.0) -> str:
        """The first output line that starts with ``prefix`` (AssertionError at exit)."""
        deadline = time.monotonic() + seconds
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"the demo exited: {self.output}"
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def finish(self, seconds: float = 60.0) -> tuple[int, list[str]]:
        """Wait for it to exit; its exit code and every line it printed."""
        code = self.process.wait(timeout=seconds)
        while (line := self.lines.get(timeout=seconds)) is not None:
            self.output.append(line)
        return code, self.output

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_with_amazon(
    browser: requests.Session, page_url: str, **request: Any
) -> requests.Response:
    """Press the page's Login with Amazon control, as a browser would, under either framework.

    The Flask demo's is a link (a GET of ``/login/amazon/``); the Django demo's
    is a form that POSTs there with its CSRF token (social_django starts a
    sign-in on a POST only).
    """
    page = browser.get(page_url)
    form = re.search(
        r'<form method="post" action="([^"]*/login/amazon/)"[^>]*>.*?</form>', page.text, re.S
    )
    if form is None:
        link = re.search(r'href="([^"]*/login/amazon/[^"]*)"', page.text)
        assert link is not None, f"no Login with Amazon on {page_url}"
        return browser.get(requests.compat.urljoin(page.url, link.group(1)), **request)
    action, fields, _radios = first_form(form.group(0), page.url)
    return browser.post(action, data=fields, **request)


class DemoSite:
    """The demo app and its emulator: served from threads (Flask) or by ``python -m demo``."""

    def __init__(
        self,
        framework: str,
        url: str,
        emulator_url: str,
        database_url: str,
        stop: Callable[[], None],
        app: Flask | None = None,
    ) -> None:
        self.framework = framework
        self.url = url
        self.emulator_url = emulator_url
        self.app = app
        self._stop = stop
        self.engine = create_engine(database_url)

    @classmethod
    def start(cls, database_url: str, framework: str = "flask") -> DemoSite:
        if framework == "django":
            return cls._start_django(database_url)
        # The demo's port must be known before the emulator registers its
        # redirect_uri, and the emulator's URL before the demo is configured:
        # bind the demo's socket first.
        listener = socket.create_server(("127.0.0.1", 0))
        demo_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        emulator = serve(
            create_emulator(
                identities=AMAZON_IDENTITIES,
                clients=[demo_client([f"{demo_url}/complete/amazon/"]), mobile_client()],
            )
        )
        try:
            app = create_app(
                {
                    **amazon_settings({"LWA_EMULATOR_URL": emulator.url}),
                    "DATABASE_URL": database_url,
                    "SECRET_KEY": "browser-tests-secret-key",
                }
            )
            seed(app)
            server = make_server("127.0.0.1", 0, app, threaded=True, fd=listener.fileno())
        except BaseException:
            emulator.shutdown()
            raise
        finally:
            listener.close()  # werkzeug serves on its own duplicate
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            emulator.shutdown()
            app.extensions["demo_engine"].dispose()

        return cls(
            "flask", f"http://127.0.0.1:{server.port}", emulator.url, database_url, stop, app
        )

    @classmethod
    def _start_django(cls, database_url: str) -> DemoSite:
        demo = DemoProcess(
            Path.cwd(),
            *("--framework", "django", "--port", "0", "--emulator-port", "0"),
            DATABASE_URL=database_url,
            SECRET_KEY="browser-tests-secret-key",
        )
        try:
            emulator_url = demo.line_starting("LWA emulator on ").split()[-1]
            url = demo.line_starting("Demo on ").split()[2]
        except BaseException:
            demo.stop()
            raise
        return cls("django", url, emulator_url, database_url, demo.stop)

    def close(self) -> None:
        self._stop()
        self.engine.dispose()

    def start_sign_in(self, browser: requests.Session) -> requests.Response:
        """The person presses the sign-in page's Login with Amazon (``tests.flows``)."""
        return start_with_amazon(browser, f"{self.url}/login", allow_redirects=False)

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Read the demo's database directly."""
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def user(self, username: str) -> Any:
        """The users row of ``username`` (None when there is none)."""
        rows = self.query(
            "SELECT id, username, email, name, postal_code, password_hash"
            " FROM users WHERE username = :u",
            u=username,
        )
        return rows[0] if rows else None

    def amazon_links(self) -> dict[str, str]:
        """Amazon user_id -> username of every link."""
        rows = self.query(
            "SELECT s.uid, u.username FROM social_auth_usersocialauth s "
            "JOIN users u ON u.id = s.user_id WHERE s.provider = 'amazon'"
        )
        return {row.uid: row.username for row in rows}

    def events(self, username: str) -> list[tuple[str, str]]:
        """(event, detail) of ``username``'s security events, oldest first."""
        return [(event, detail) for event, detail, _amazon in self.amazon_events(username)]

    def amazon_events(self, username: str) -> list[tuple[str, str, str | None]]:
        """(event, detail, Amazon user_id) of ``username``'s security events, oldest first."""
        rows = self.query(
            "SELECT e.event, e.detail, e.amazon_user_id FROM amazon_link_events e "
            "JOIN users u ON u.id = e.user_id WHERE u.username = :u ORDER BY e.id",
            u=username,
        )
        return [(row.event, row.detail, row.amazon_user_id) for row in rows]
