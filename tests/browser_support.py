"""The demo and its LWA emulator served in-process, for the Chromium tests.

``DemoSite.start(database_url)`` does what ``python -m demo`` does, on free
loopback ports and with a fresh database (SQLite or PostgreSQL): the emulator
with the demo's identities and client, the demo app pointed at it, the same
seed data.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import text
from werkzeug.serving import BaseWSGIServer, make_server

from demo import amazon_settings, create_app, demo_client, mobile_client
from demo.seed import AMAZON_IDENTITIES, seed
from social_amazon_link.emulator import EmulatorServer, serve
from social_amazon_link.emulator import create_app as create_emulator

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


class DemoSite:
    """The demo app and its emulator, each served over loopback from a thread."""

    def __init__(self, app: Flask, server: BaseWSGIServer, emulator: EmulatorServer) -> None:
        self.app = app
        self.server = server
        self.emulator = emulator
        self.url = f"http://127.0.0.1:{server.port}"
        self.thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @classmethod
    def start(cls, database_url: str) -> DemoSite:
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
        return cls(app, server, emulator)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.emulator.shutdown()
        self.app.extensions["demo_engine"].dispose()

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Read the demo's database directly."""
        with self.app.extensions["demo_engine"].connect() as conn:
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
