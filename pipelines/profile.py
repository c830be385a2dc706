"""Rule 2: the profile comes from Amazon, fetched by this server, and is checked."""

from __future__ import annotations

from typing import Any

from social_amazon_link.errors import InvalidToken
from social_amazon_link.lwa import Profile, parse_profile
from social_amazon_link.sealing import SEALED_TOKENS_KEY, seal
from social_amazon_link.text import one_line, valid_email

__all__ = ["SEALED_TOKENS_KEY", "TOKEN_FIELDS", "fetch_profile"]

#: Token fields of an LWA token response; kept out of the pipeline's data.
TOKEN_FIELDS = ("access_token", "refresh_token")


#: Longer than any postal code; a longer value is not one.
POSTAL_CODE_MAX_LENGTH = 32


def _name(value: str | None) -> str | None:
    return (one_line(value) if value else "") or None


def _email(value: str | None) -> str | None:
    """The address, trimmed; None when it is not one (nothing is matched on it)."""
    value = value.strip() if value else ""
    return value if valid_email(value) else None


def _postal_code(value: str | None) -> str | None:
    value = one_line(value) if value else ""
    return value if 0 < len(value) <= POSTAL_CODE_MAX_LENGTH else None


def fetch_profile(
    backend: Any, response: dict[str, Any], *args: Any, **kwargs: Any
) -> dict[str, Any] | None:
    """Validate and normalise the Amazon profile; keep tokens out of what is stored.

    The backend fetched the profile from Amazon with the access token in this
    request (after a tokeninfo audience check when a client sent the token);
    when a pipeline is started without it, this step fetches it. Profile data
    is never taken from request parameters. The email is trimmed and dropped when it
    is not an address in canonical spelling (``valid_email``: so nothing is
    matched or copied on it); the name is put on one line (control characters
    as spaces); ``postal_code`` is kept only when the ``postal_code`` scope was
    asked for, and only when it can be one.

    The access and refresh tokens are removed from ``response``: a paused
    sign-in stores the pipeline's data in the database. With
    ``STORE_TOKENS = True`` they travel encrypted (:mod:`social_amazon_link.sealing`)
    and land in the link's ``extra_data`` as social-core's backend stored them.
    """
    if backend.name != "amazon":
        return None
    response = dict(response or {})
    if "user_id" not in response and "Profile" not in response:
        token = response.get("access_token")
        if not isinstance(token, str) or not token:
            raise InvalidToken(backend=backend, reason="missing_access_token", stage="pipeline")
        response.update(backend.user_data(token))

    fetched = parse_profile(response)
    profile = Profile(
        user_id=fetched.user_id,
        name=_name(fetched.name),
        email=_email(fetched.email),
        postal_code=_postal_code(fetched.postal_code)
        if "postal_code" in backend.get_scope()
        else None,
    )
    tokens = {key: response[key] for key in TOKEN_FIELDS if response.get(key)}
    clean = {
        key: value
        for key, value in response.items()
        if key not in TOKEN_FIELDS and key not in ("Profile", "name", "email", "postal_code")
    }
    clean.update(profile.as_dict())

    out: dict[str, Any] = {"response": clean, "amazon_profile": profile.as_dict()}
    if backend.setting("STORE_TOKENS", False) and tokens:
        _key, secret = backend.get_key_and_secret()
        out[SEALED_TOKENS_KEY] = seal(secret, tokens)
    return out
