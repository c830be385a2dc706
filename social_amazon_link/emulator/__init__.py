"""An emulator of Amazon's Login with Amazon endpoints, for development and tests.

Amazon's paths on a host of your choosing, built on Authlib's OAuth2 server,
with a JSON control surface (``/_emulator/...``) to seed accounts and apps,
mint tokens, and inject faults. Run it with ``python -m
social_amazon_link.emulator --port 5001``, serve it in-process with
:func:`serve`, or use the ``lwa_emulator`` pytest fixture.
"""

from __future__ import annotations

from .app import create_app
from .client import EmulatorControlError, LWAEmulator
from .server import EmulatorServer, serve

__all__ = ["EmulatorControlError", "EmulatorServer", "LWAEmulator", "create_app", "serve"]
