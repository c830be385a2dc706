"""A per-session CSRF token for the integration's forms (hidden field ``csrf_token``)."""

from __future__ import annotations

import hmac
import secrets

from flask import session

from ..errors import InvalidRequest

__all__ = ["check_csrf", "csrf_token"]

SESSION_KEY = "_amazon_link_csrf"


def csrf_token() -> str:
    """This session's token, created on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf(sent: object) -> None:
    """Refuse a form whose ``csrf_token`` is not this session's."""
    expected = session.get(SESSION_KEY)
    if (
        not isinstance(sent, str)
        or not isinstance(expected, str)
        or not hmac.compare_digest(sent, expected)
    ):
        raise InvalidRequest("The form expired. Please reload the page and try again.")
