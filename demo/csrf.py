"""A per-session CSRF token for the demo's forms (every form carries ``csrf_token``)."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session


def csrf_token() -> str:
    token = session.get("_csrf")
    if not isinstance(token, str):
        token = session["_csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a POST whose ``csrf_token`` is not this session's."""
    sent = request.form.get("csrf_token", "")
    expected = session.get("_csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        abort(400, description="The form expired. Please reload the page and try again.")
