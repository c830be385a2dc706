"""The PKCE challenge of the mobile SDK's code grant, held for one session.

A mobile app asks for a challenge (``POST /api/amazon/code/challenge``),
hands it to the LWA SDK, and sends back the code the SDK got with it
(``POST /api/amazon/code``). The verifier must reach Amazon from this server
only, so it is stored nowhere, not even in the session (which may be a cookie
the app can read): the session keeps a random id, and the verifier is an
HMAC of that id under a key derived from ``SECRET``, which only this server
can compute again.

The id is also recorded as a nonce in the storage (social-core's, the one its
OAuth2 ``state`` uses), so that each challenge is good for one code exchange:
taking it consumes the nonce in one statement, so of two requests racing with
the same cookie one wins, and a cookie kept from before (a challenge already
used or replaced) finds nothing. ``purge`` deletes the nonces of challenges
never used, as it does abandoned states.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from ..errors import NoCodeChallenge

__all__ = ["CHALLENGE_LIFETIME", "issue_challenge", "take_verifier"]

#: Seconds a challenge may wait for its code (Amazon's codes last five minutes).
CHALLENGE_LIFETIME = 600

_CONTEXT = b"social-amazon-link/code-verifier/v1\x00"


def _session_key(backend: Any) -> str:
    # Under the "<name>_oauth2_" prefix: end_sign_ins ends it with the rest
    # of a sign-in's keys when the app signs someone in or out.
    return f"{backend.name}_oauth2_code_challenge"


def _nonce_scope(backend: Any) -> str:
    return f"social_amazon_link.code_challenge.{backend.name}"


def _verifier(backend: Any, challenge_id: str) -> str:
    """43 characters of ``[A-Za-z0-9_-]``: 256 bits, as RFC 7636 recommends."""
    _key, secret = backend.get_key_and_secret()
    key = hashlib.sha256(_CONTEXT + str(secret).encode()).digest()
    digest = hmac.new(key, challenge_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_challenge(strategy: Any, backend: Any) -> str:
    """A new S256 challenge for this session, replacing (and ending) the last one."""
    _end(strategy, backend, strategy.session_pop(_session_key(backend)))
    timestamp = int(time.time())
    for _ in range(3):
        challenge_id = strategy.random_string(32)
        if strategy.storage.nonce.use(_nonce_scope(backend), timestamp, challenge_id):
            strategy.session_set(_session_key(backend), {"id": challenge_id, "at": timestamp})
            return _s256(_verifier(backend, challenge_id))
    raise RuntimeError("no unused challenge id in three tries")  # pragma: no cover


def take_verifier(strategy: Any, backend: Any) -> str:
    """This session's verifier, used up; :class:`NoCodeChallenge` when there is none.

    ``reason``: ``missing``, ``expired``, or ``used`` (another request took it,
    or a newer challenge replaced it).
    """
    held = strategy.session_get(_session_key(backend))
    if held is None:
        raise NoCodeChallenge("missing")
    challenge_id = held.get("id") if isinstance(held, dict) else None
    timestamp = held.get("at") if isinstance(held, dict) else None
    if (
        not isinstance(challenge_id, str)
        or not isinstance(timestamp, int)
        or isinstance(timestamp, bool)
    ):
        strategy.session_pop(_session_key(backend))
        raise NoCodeChallenge("missing")
    consumed = strategy.storage.nonce.consume(_nonce_scope(backend), timestamp, challenge_id)
    if not consumed:
        # Another request took it (and removes it from the session it saves),
        # or a newer challenge replaced it: this request's copy of the session
        # is out of date, so it is not saved again. On Django, saving it would
        # even fail: the winner's sign-in gave the session a new key.
        raise NoCodeChallenge("used")
    strategy.session_pop(_session_key(backend))
    if not 0 <= time.time() - timestamp <= CHALLENGE_LIFETIME:
        raise NoCodeChallenge("expired")
    return _verifier(backend, challenge_id)


def _end(strategy: Any, backend: Any, held: Any) -> None:
    if isinstance(held, dict) and isinstance(held.get("id"), str):
        timestamp = held.get("at")
        if isinstance(timestamp, int) and not isinstance(timestamp, bool):
            strategy.storage.nonce.consume(_nonce_scope(backend), timestamp, held["id"])
