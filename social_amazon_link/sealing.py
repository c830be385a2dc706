"""Encrypt provider tokens that must wait in partial-pipeline data.

A paused sign-in is stored in the database until the person answers; an
access or refresh token waiting there must not be readable by whoever can
read that table. The key is derived from the LWA client secret, which every
deployment has and which never leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["SEALED_TOKENS_KEY", "seal", "unseal"]

#: The pipeline keyword that carries the sealed tokens (the step
#: ``social_amazon_link.pipelines.fetch_profile`` writes it, the backend's
#: ``extra_data`` reads it).
SEALED_TOKENS_KEY = "amazon_sealed_tokens"

_CONTEXT = b"social-amazon-link/sealed-tokens/v1\x00"


def _fernet(secret: str) -> Fernet:
    key = hashlib.sha256(_CONTEXT + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, values: dict[str, Any]) -> str:
    """Encrypt and authenticate ``values`` (JSON-serialisable)."""
    return _fernet(secret).encrypt(json.dumps(values).encode()).decode()


def unseal(secret: str, sealed: str, max_age: int | None = None) -> dict[str, Any] | None:
    """The values, or None when the box was tampered with, is too old or the key changed."""
    try:
        data = json.loads(_fernet(secret).decrypt(sealed.encode(), ttl=max_age))
    except (InvalidToken, ValueError):
        return None
    return data if isinstance(data, dict) else None
