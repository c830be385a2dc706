"""pytest plugin: the ``lwa_emulator`` fixture, a fresh LWA emulator per test.

Registered through the ``pytest11`` entry point, so any project with
social-amazon-link installed can use the fixture without importing anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from social_amazon_link.emulator import LWAEmulator


@pytest.fixture
def lwa_emulator() -> Iterator[LWAEmulator]:
    """A fresh emulator on a free loopback port, as an :class:`LWAEmulator` client.

    Point the app at it (``SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL =
    lwa_emulator.authorize_url``, ``SOCIAL_AUTH_AMAZON_API_URL =
    lwa_emulator.url``), register the app (``add_client``: without it the
    sign-in page says "The client does not exist on this server.") and an
    Amazon account (``add_identity``); then ``consent`` plays the person on
    the sign-in page, or ``mint_token`` hands a token as the LWA mobile SDK
    would. ``lwa_emulator.server.app`` is the emulator's Flask app. The server
    stops after the test; the README's "The LWA emulator" shows every method.
    """
    # Imported here: every pytest run in this environment loads the plugin,
    # and most never need Flask and Authlib.
    from social_amazon_link.emulator import LWAEmulator, serve

    server = serve()
    client = LWAEmulator(server.url, server=server)
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
