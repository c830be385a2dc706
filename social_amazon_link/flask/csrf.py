"""A per-session CSRF token for the integration's forms (hidden field ``csrf_token``).

When the app protects itself with Flask-WTF's ``CSRFProtect``, its token is
used instead (one ``csrf_token`` per form), and checked here too: an app may
have turned Flask-WTF's check of every view off (``WTF_CSRF_CHECK_DEFAULT``)
to protect only some. Otherwise this module keeps its own in the session.

Signing in or out rotates the token (:func:`rotate_csrf`, Flask-WTF's too):
a page the previous person left open holds a token that no longer works.
"""

from __future__ import annotations

import hmac
import secrets

from flask import current_app, g, session

from ..errors import InvalidRequest
from ..flow.prompts import FORM_EXPIRED

__all__ = ["check_csrf", "csrf_token", "rotate_csrf"]

SESSION_KEY = "_amazon_link_csrf"


def _flask_wtf_protects() -> bool:
    return "csrf" in current_app.extensions


def csrf_token() -> str:
    """This session's token, created on first use."""
    if _flask_wtf_protects():
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf(sent: object) -> None:
    """Refuse a form whose ``csrf_token`` is not this session's."""
    if _flask_wtf_protects():
        from flask_wtf.csrf import validate_csrf
        from wtforms import ValidationError

        try:
            validate_csrf(sent)
        except ValidationError:
            raise InvalidRequest(FORM_EXPIRED) from None
        return
    expected = session.get(SESSION_KEY)
    if (
        not isinstance(sent, str)
        or not isinstance(expected, str)
        or not hmac.compare_digest(sent, expected)
    ):
        raise InvalidRequest(FORM_EXPIRED)


def rotate_csrf() -> None:
    """Forget this session's token: the next form gets a new one."""
    session.pop(SESSION_KEY, None)
    if _flask_wtf_protects():
        # Flask-WTF keeps its raw token in the session and caches the signed
        # one for the request, both under WTF_CSRF_FIELD_NAME.
        name = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        session.pop(name, None)
        g.pop(name, None)
