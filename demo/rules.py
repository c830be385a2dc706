"""The demo's own account rules, the same under Flask and Django.

What a registration must look like, how a sign-in's password check is counted
against the library's attempt limits, and how the account page words the
security events: each framework's pages (:mod:`demo.accounts`,
:mod:`demo.django_project.views`) only read the form, call these, and render.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from social_amazon_link.text import has_control_characters, valid_email

#: The attempt counter of the demo's sign-in page (the linking prompt's is "link").
SIGN_IN = "sign_in"

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,40}")
#: The registration form's fields besides the password, each a column of users.
FIELDS = ("username", "email", "name", "postal_code")
#: Optional, but when given it looks like a postal code of some country (and
#: fits its column).
POSTAL_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]+")
#: The users table's column lengths (the same under both frameworks).
MAX_LENGTHS = {"username": 80, "email": 254, "name": 120, "postal_code": 20}

#: How the account page words each security event of the linking flow.
EVENT_LABELS = {
    "linked": "Amazon account linked",
    "unlinked": "Amazon account unlinked",
    "wrong_password": "Wrong password while linking Amazon",
    "wrong_code": "Wrong emailed code while linking Amazon",
    "locked_out": "Linking locked after too many wrong passwords",
    "link_refused": "Amazon link refused",
    "email_updated": "Email updated from Amazon",
    "email_sync_skipped": "Email from Amazon not copied",
}
#: And the details the linking steps record with them.
DETAIL_LABELS = {
    "new_account": "new account made with Amazon",
    "signed_in": "connected while signed in",
    "password": "proved with this account's password",
    "email_code": "proved with an emailed code",
    "wrong_password": "",
    "wrong_code": "",
    "other_username": "a guess that named another username with this email",
    "no_password": "the account has no password to prove it is yours",
    "other_sign_in": "the account signs in with another Amazon account",
    "codes_sent": "too many codes emailed",
    "identity_in_use": "that Amazon account belongs to another account",
}


def attempt_limits(setting: Callable[[str, int], Any]) -> dict[str, Any]:
    """The sign-in page's limits: the linking prompt's settings, its own count.

    A lock that anyone with the account's email on their Amazon profile can
    cause on linking never stops the owner signing in here, and the other way
    round.
    """
    return {
        "max_attempts": int(setting("SOCIAL_AUTH_AMAZON_LINK_MAX_PASSWORD_ATTEMPTS", 5)),
        "lockout_seconds": int(setting("SOCIAL_AUTH_AMAZON_LINK_LOCKOUT_SECONDS", 900)),
        "scope": SIGN_IN,
    }


def counted_check(
    attempts: Any, user_id: Any, check: Callable[[], bool], limits: dict[str, Any]
) -> Any:
    """Check a password as one counted try: True, False, or the refusal (a reservation).

    ``attempts`` is the storage's ``link_attempts`` (the storage contract).
    Waits while other tries of this account are being checked: a right
    password is refused only once wrong ones locked the account.
    """
    reservation = attempts.reserve(user_id, wait=10.0, **limits)
    if not reservation.allowed:
        return reservation
    try:
        right = check()
    except BaseException:
        attempts.release(user_id, scope=SIGN_IN)
        raise
    if right:
        attempts.clear(user_id, scope=SIGN_IN)
    else:
        attempts.fail(user_id, **limits)
    return right


def locked_message(retry_after: int) -> str:
    minutes = max(1, round(retry_after / 60))
    wait = f"{retry_after} seconds" if retry_after < 90 else f"{minutes} minutes"
    return (
        "Too many wrong passwords were tried for this account, so signing in with its "
        f"password is paused. Try again in {wait}."
    )


def usable_username(username: str) -> str | None:
    """The username to look up, or None when no account could have it.

    Not even a query then: PostgreSQL refuses a NUL in a string (an error, not
    "no such user"), and a name longer than the column matches nothing.
    """
    username = username.strip()
    if has_control_characters(username) or len(username) > MAX_LENGTHS["username"]:
        return None
    return username


def registration_errors(
    form: dict[str, str], password: str, taken: Callable[[str], bool]
) -> dict[str, str]:
    """What to correct before the account can be created, by field."""
    # Control characters and lengths first, the lengths those of the columns:
    # PostgreSQL refuses a NUL or an over-long string with an error (a 500),
    # where SQLite would have stored it.
    errors = {
        name: "Remove the control characters."
        for name, value in [*form.items(), ("password", password)]
        if has_control_characters(value)
    }
    for name in ("email", "name"):  # the username's own rule is stricter
        if name not in errors and len(form[name]) > MAX_LENGTHS[name]:
            errors[name] = f"At most {MAX_LENGTHS[name]} characters."
    if "username" not in errors:
        if not USERNAME.fullmatch(form["username"]):
            errors["username"] = "3 to 40 letters, digits, dots, dashes or underscores."
        elif taken(form["username"]):
            errors["username"] = "This username is taken."
    postal_code, longest = form["postal_code"], MAX_LENGTHS["postal_code"]
    if "postal_code" not in errors and postal_code:
        if len(postal_code) > longest or not POSTAL_CODE.fullmatch(postal_code):
            errors["postal_code"] = f"Letters, digits, spaces or dashes, at most {longest}."
    # The library's rule: one canonical spelling per address (no trailing dot).
    if "email" not in errors and not valid_email(form["email"]):
        errors["email"] = "Enter an email address."
    if "password" not in errors and len(password) < 8:
        errors["password"] = "At least 8 characters."
    return errors


def account_page(user: Any, links: Any, storage: Any) -> dict[str, Any]:
    """What account.html shows: ``user``'s Amazon links, which may go, its recent events."""
    amazon_links = sorted((link for link in links if link.provider == "amazon"), key=_link_id)
    allowed = storage.user.allowed_to_disconnect
    return {
        "user": user,
        "amazon_links": amazon_links,
        # Asked of the storage the disconnect pipeline asks: never the last
        # way to sign in, so a link may go while a password or another stays.
        "can_unlink": {link.id for link in amazon_links if allowed(user, "amazon", link.id)},
        "events": storage.link_events.for_user(user.id, limit=10),
        "event_labels": EVENT_LABELS,
        "detail_labels": DETAIL_LABELS,
    }


def _link_id(link: Any) -> Any:
    return link.id
