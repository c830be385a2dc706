"""Rule 7: mark the user authenticated exactly as the app's own sign-in does.

Every way into an account ends here: the web callback and the prompt pages
pass :func:`login` to social-core's ``do_complete``, and the JSON API calls
:func:`sign_in`. Both reach the one hook the integration supplies,
``strategy.login_user(backend, user, social_user)``: on Flask, Flask-Login's
``login_user``, the call the app's own sign-in makes, so the app's session,
remember-me cookie and signals behave as for its own sign-in. The session
then records when the person signed in (``pipelines.reauth.mark_signed_in``),
for ``LINK_REAUTH_SECONDS``.
"""

from __future__ import annotations

from typing import Any

from social_core.exceptions import AuthPolicyError, AuthSessionError
from social_core.utils import user_is_active

from social_amazon_link.pipelines.reauth import mark_signed_in

__all__ = ["LAST_LOGIN_BACKEND", "allows_inactive", "check_may_sign_in", "login", "sign_in"]

#: The session key social-core's ``do_complete`` sets after a sign-in.
LAST_LOGIN_BACKEND = "social_auth_last_login_backend"


def login(backend: Any, user: Any, social_user: Any) -> Any:
    """``do_complete``'s ``login``: the integration's hook; the session's sign-in time."""
    signed_in = backend.strategy.login_user(backend, user, social_user)
    mark_signed_in(backend.strategy, user)
    return signed_in


def allows_inactive(backend: Any) -> bool:
    """Whether an inactive account may sign in (social-core's ``ALLOW_INACTIVE_USERS_LOGIN``)."""
    return bool(backend.strategy.setting("ALLOW_INACTIVE_USERS_LOGIN", False, backend))


def check_may_sign_in(backend: Any, user: Any, signed_in: Any) -> None:
    """Refuse what ``do_complete`` refuses: another user than the one signed in,
    or an inactive account (unless ``ALLOW_INACTIVE_USERS_LOGIN``)."""
    if signed_in is not None and user.id != signed_in.id:
        raise AuthSessionError(backend, code="user_mismatch", stage="pipeline")
    if signed_in is None and not (user_is_active(user) or allows_inactive(backend)):
        raise AuthPolicyError(backend, code="authentication_disallowed", stage="pipeline")


def sign_in(backend: Any, user: Any) -> None:
    """Sign ``user`` in, and record the backend, as ``do_complete`` does."""
    social = getattr(user, "social_user", None)
    login(backend, user, social)
    backend.strategy.session_set(LAST_LOGIN_BACKEND, getattr(social, "provider", backend.name))
