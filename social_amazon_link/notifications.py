"""Telling the owner: notifications and signals for the linking flow's events.

Every security event the steps record (``social_amazon_link.pipelines.events``)
is announced once it is committed, through two doors the app may open:

- the app's sender, ``LINK_NOTIFY_FUNCTION``: dotted path of
  ``f(strategy, user, event, details)``, called for the events the owner must
  hear of (:data:`NOTIFIED`: a link, an unlink, an email copied from Amazon,
  a lockout), the way social-core's ``EMAIL_VALIDATION_FUNCTION`` sends codes;
- the integration's signals, for every event: the strategy's optional hook
  ``send_link_signal(event, user, details)`` (Flask: blinker signals in
  ``social_amazon_link.flask.signals``; Django: Django signals in
  ``social_amazon_link.django.signals``).

``details`` (:func:`link_details`) holds the event's name (the event table's),
when it happened, the Amazon account's name and email as Amazon gave them,
the recipients, a subject and a plain-words text saying what happened and what
to do if it was not the owner. Never a token, a password or a code. A sender
or a receiver that fails never fails the sign-in: it is logged (its
exception's class, never its text) and the sign-in goes on. Framework-free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from social_core.utils import module_member

__all__ = [
    "NOTIFIED",
    "announce",
    "link_details",
    "load_sender",
]

log = logging.getLogger("social_amazon_link")

#: The events the owner is told of through ``LINK_NOTIFY_FUNCTION``.
NOTIFIED: Final = ("linked", "unlinked", "email_updated", "locked_out")

#: Longest Amazon name a message quotes: it is whatever its owner typed.
_NAME_MAX_LENGTH = 80

_SUBJECTS: Final = {
    "linked": "An Amazon account was linked to your account",
    "unlinked": "An Amazon account was removed from your account",
    "email_updated": "Your account's email was changed from Amazon",
    "locked_out": "Linking an Amazon account to your account is paused",
}

_HOW_LINKED: Final = {
    "password": "after your password was entered",
    "email_code": "after the code we emailed you was entered",
    "new_account": "when your account was created with it",
    "signed_in": "while you were signed in",
}

_NOT_YOU: Final = {
    "linked": (
        "If this was not you, sign in with your password, remove the Amazon account from "
        "your account page, and change your password."
    ),
    "unlinked": (
        "If this was not you, sign in, change your password, and check the Amazon accounts "
        "on your account page."
    ),
    "email_updated": (
        "If this was not you, sign in, remove the Amazon account from your account page, "
        "and set your email back."
    ),
    "locked_out": (
        "You can still sign in as usual. If this was not you, someone may be trying to link "
        "their Amazon account to yours: nothing was linked, and changing your password keeps "
        "them out."
    ),
}


def load_sender(value: Any) -> Callable[..., Any] | None:
    """The ``LINK_NOTIFY_FUNCTION`` setting as a callable (None: no sender).

    A dotted path is imported (social-core's ``module_member``), a callable
    taken as it is. Raises what importing raises, or :class:`TypeError`;
    ``settings.check_settings`` turns either into a start-up error.
    """
    if value is None or value == "":
        return None
    sender = module_member(value) if isinstance(value, str) else value  # type: ignore[no-untyped-call]
    if not callable(sender):
        raise TypeError(f"{value!r} is not callable")
    return sender  # type: ignore[no-any-return]


def link_details(
    event: str,
    user: Any,
    *,
    amazon_user_id: str | None,
    amazon: Mapping[str, Any] | None = None,
    detail: str = "",
    old_email: str | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    """What a notification and a signal carry about ``event`` (see the module's doc)."""
    when = when or datetime.now(UTC)
    amazon = amazon or {}
    email = getattr(user, "email", None) or None
    details: dict[str, Any] = {
        "event": event,
        "when": when,
        "user_id": getattr(user, "id", None),
        "username": getattr(user, "username", None),
        "amazon_user_id": amazon_user_id,
        "amazon_name": _text_or_none(amazon.get("name")),
        "amazon_email": _text_or_none(amazon.get("email")),
        "detail": detail,
        "recipients": [email] if email else [],
    }
    if event == "email_updated":
        details["old_email"], details["new_email"] = old_email, email
        if old_email and old_email != email:
            details["recipients"].append(old_email)
    details["subject"] = _SUBJECTS.get(event, f"Login with Amazon: {event}")
    details["text"] = _text(details)
    return details


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _text(details: dict[str, Any]) -> str:
    """The message in plain words: what happened, when, which Amazon account, what to do."""
    event = details["event"]
    when = details["when"].strftime("%Y-%m-%d %H:%M UTC")
    who = _amazon_account(details)
    if event == "linked":
        how = _HOW_LINKED.get(details["detail"], "")
        said = f"On {when}, {who} was linked to your account{' ' + how if how else ''}. "
        said += "It can now sign you in."
    elif event == "unlinked":
        said = f"On {when}, {who} was removed from your account. It can no longer sign you in."
    elif event == "email_updated":
        said = (
            f"On {when}, your account's email was changed from {details['old_email'] or '(none)'} "
            f"to {details['new_email']}, the address {who} gives now. Messages about your "
            f"account go to {details['new_email']} from now on."
        )
    elif event == "locked_out":
        what = (
            "too many codes were asked for"
            if details["detail"] == "codes_sent"
            else "too many wrong passwords or codes were entered"
        )
        said = (
            f"On {when}, linking an Amazon account to your account was paused for a while "
            f"because {what} (for {who})."
        )
    else:
        said = f"On {when}: {event} ({who})."
    return f"{said}\n\n{_NOT_YOU.get(event, '')}".strip()


def _amazon_account(details: dict[str, Any]) -> str:
    name, email = details["amazon_name"], details["amazon_email"]
    if name and len(name) > _NAME_MAX_LENGTH:
        name = name[: _NAME_MAX_LENGTH - 3] + "..."
    if name and email:
        return f'the Amazon account "{name}" ({email})'
    if name or email:
        return f'the Amazon account "{name}"' if name else f"the Amazon account {email}"
    return "an Amazon account"


def announce(backend: Any, event: str, user: Any, details: dict[str, Any]) -> None:
    """A committed event: the integration's signal, then the app's sender (for :data:`NOTIFIED`)."""
    hook = getattr(backend.strategy, "send_link_signal", None)
    if callable(hook):
        # Each gets its own copy: a receiver cannot change whom the message goes to.
        _guarded("a receiver of the link signal", event, details, hook, event, user, _copy(details))
    if event in NOTIFIED and backend.setting("LINK_NOTIFY_FUNCTION"):
        _guarded("LINK_NOTIFY_FUNCTION", event, details, _notify, backend, user, event, details)


def _copy(details: dict[str, Any]) -> dict[str, Any]:
    return {**details, "recipients": list(details["recipients"])}


def _notify(backend: Any, user: Any, event: str, details: dict[str, Any]) -> None:
    sender = load_sender(backend.setting("LINK_NOTIFY_FUNCTION"))
    if sender is not None:
        sender(backend.strategy, user, event, details)


def _guarded(
    what: str, event: str, details: dict[str, Any], call: Callable[..., Any], *args: Any
) -> None:
    """Call it; an exception is logged (its class only: its text may quote anything)."""
    try:
        call(*args)
    except Exception as error:  # the event is committed: the sign-in goes on
        log.warning(
            "Login with Amazon: %s failed for the %s event of user %s (%s); the sign-in goes on",
            what,
            event,
            details.get("user_id"),
            type(error).__name__,
        )
