"""pytest plugin: the ``lwa_emulator`` fixture, a fresh LWA emulator per test.

Registered through the ``pytest11`` entry point, so any project with
social-amazon-link installed can use the fixture without importing anything.
Every pytest run in such an environment loads this module, a Django app's
included: it imports nothing beyond pytest, and the emulator (Flask, Authlib:
the ``[emulator]`` extra) only when a test asks for the fixture.
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
    the sign-in page (``decline=`` unticks voluntary scopes), or
    ``mint_token`` hands a token as the LWA mobile SDK would; ``add_client(...,
    public=True)`` registers a mobile app's security profile (no secret, PKCE
    required, ``amzn://`` redirect URIs). ``lwa_emulator.server.app`` is the
    emulator's Flask app. The server stops after the test; the README's "The
    LWA emulator" shows every method.
    """
    # Imported here: every pytest run in this environment loads the plugin,
    # and most never need Flask and Authlib.
    try:
        from social_amazon_link.emulator import LWAEmulator, serve
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] == "social_amazon_link":
            raise
        # from None: the test's error is this one line, not ImportError's traceback too.
        raise pytest.fail.Exception(
            f"The lwa_emulator fixture needs the emulator's dependencies, and {error.name} is "
            'not installed. Install them with: pip install "social-amazon-link[emulator]"',
            pytrace=False,
        ) from None

    server = serve()
    client = LWAEmulator(server.url, server=server)
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
