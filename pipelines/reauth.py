"""Proof before connecting: a signed-in session links another Amazon account
only soon after its sign-in (``LINK_REAUTH_SECONDS``), else after proving it
is still its owner.

A session left signed in on a shared computer, or stolen, must not be able to
link someone else's Amazon account to the account for good. So a signed-in
user who starts Login with Amazon for an Amazon account not linked to them
yet (one linked to them is just a sign-in, rule 3) must have signed in, or
re-entered their password, within ``LINK_REAUTH_SECONDS`` (default 600; 0
turns the check off). Otherwise the sign-in pauses on the usual prompt for the
signed-in user's *own* account first: its password (``password_required``),
or for an account without one the code emailed to its address
(``code_required``), counted against the lockout like any other try. Then the
link goes ahead.

When the session signed in is kept in the session itself (:data:`SIGNED_IN_AT_KEY`,
with who signed in): the integration sets it from the app's own sign-in
(:func:`mark_signed_in`: Flask-Login's ``user_logged_in`` on Flask, and
``social_amazon_link.flow.login`` for the sign-ins this library makes), and
``flow.paused.end_sign_ins`` forgets it at every sign-in and sign-out. A
session without it (one restored from a remember-me cookie, say) counts as
signed in too long ago.
"""

from __future__ import annotations

import time
from typing import Any

from social_amazon_link.accounts import has_usable_password
from social_amazon_link.errors import ReauthRequired

from .matching import DEFAULT_PASSWORD_URL, amazon_identity, ask_code, prove_code, prove_password
from .pause import DONE, PROMPT_KEY, answer_of, check_resumed_by, pause, resumed_prompt, user_key

__all__ = [
    "DEFAULT_REAUTH_SECONDS",
    "SIGNED_IN_AT_KEY",
    "mark_signed_in",
    "require_recent_sign_in",
    "signed_in_at",
]

#: The session key that says who signed in on this session, and when:
#: ``[user id as a string, POSIX time]``.
SIGNED_IN_AT_KEY = "amazon_link_signed_in_at"
DEFAULT_REAUTH_SECONDS = 600
#: A time this far in the future cannot have come from this server's clock.
_CLOCK_SKEW_SECONDS = 60
_KINDS = ("password", "email_code")


def mark_signed_in(strategy: Any, user: Any) -> None:
    """``user`` signed in on this session just now (or re-entered their password)."""
    strategy.session_set(SIGNED_IN_AT_KEY, [user_key(user), time.time()])


def signed_in_at(strategy: Any, user: Any) -> float | None:
    """When ``user`` signed in on this session, or None: not known (stale)."""
    value = strategy.session_get(SIGNED_IN_AT_KEY)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    who, when = value
    if who != user_key(user) or isinstance(when, bool) or not isinstance(when, (int, float)):
        return None
    return float(when)


def require_recent_sign_in(
    strategy: Any,
    backend: Any,
    pipeline_index: int,
    details: dict[str, Any],
    *args: Any,
    user: Any = None,
    social: Any = None,
    uid: str | None = None,
    **kwargs: Any,
) -> dict[str, Any] | Any:
    """A signed-in user connecting another Amazon account: a recent sign-in, or proof first.

    Security-sensitive. Runs after ``match_by_uid`` (an Amazon account linked
    to this user signs in; one linked to someone else is ``identity_in_use``)
    and before anything links: the signed-in user (``user``, with no
    ``social`` found) must have signed in within ``LINK_REAUTH_SECONDS``;
    otherwise it pauses on the password prompt for their own account (the
    emailed code for an account without a password; ``reauth_required`` when
    there is neither). The right answer counts as a fresh sign-in.
    """
    prompt = kwargs.get(PROMPT_KEY)
    ours = isinstance(prompt, dict) and bool(prompt.get("reauth"))
    if ours:
        # Only who was signed in when it paused may answer it.
        check_resumed_by(backend, kwargs, user, _KINDS)
    if user is None or social is not None:
        return None
    amazon = amazon_identity(uid, kwargs)
    resumed = _resumed(backend, kwargs) if ours else None
    if resumed is not None:
        answer = answer_of(kwargs)
        if resumed["kind"] == "email_code":
            prove_code(backend, user, amazon, resumed, answer)
        else:
            prove_password(backend, [user], user, amazon, answer)
        mark_signed_in(strategy, user)
        return dict(DONE)
    window = int(backend.setting("LINK_REAUTH_SECONDS", DEFAULT_REAUTH_SECONDS))
    if window == 0 or _recent(signed_in_at(strategy, user), window):
        return None
    rest = dict(kwargs, details=details, uid=uid, user=user, social=social)
    url = backend.setting("LINK_PASSWORD_URL", DEFAULT_PASSWORD_URL)
    shown = {"email": getattr(user, "email", None), "reauth": True}
    if has_usable_password(user):
        return pause(backend, pipeline_index, url, {"kind": "password", **shown}, rest)
    if getattr(user, "email", None) and backend.setting("EMAIL_VALIDATION_FUNCTION"):
        return ask_code(backend, pipeline_index, url, user, amazon, shown, rest)
    raise ReauthRequired(backend=backend, stage="pipeline")


def _resumed(backend: Any, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    return resumed_prompt(backend, kwargs, "password") or resumed_prompt(
        backend, kwargs, "email_code"
    )


def _recent(at: float | None, window: int) -> bool:
    """Whether a sign-in at ``at`` is at most ``window`` seconds old (None: unknown, no)."""
    return at is not None and -_CLOCK_SKEW_SECONDS <= time.time() - at <= window
