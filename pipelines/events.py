"""Security events of the linking flow, recorded for the app to read, and announced.

Each event names the local user (when there is one), the Amazon user_id and a
short detail; never a password, a code or a token. Once an event is committed
it is announced (:func:`social_amazon_link.notifications.announce`): the
integration's signal of the same name, and for a link, an unlink, an email
change or a lockout the app's ``LINK_NOTIFY_FUNCTION``. An event that is not
committed (its write failed, or the storage's transaction was rolled back)
is never announced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from social_core.exceptions import AuthConfigurationError

from social_amazon_link.notifications import announce, link_details

__all__ = [
    "DEFAULT_EVENTS_MAX_AGE",
    "EMAIL_SYNC_SKIPPED",
    "EMAIL_UPDATED",
    "EVENTS",
    "LINKED",
    "LINK_REFUSED",
    "LOCKED_OUT",
    "UNLINKED",
    "WRONG_CODE",
    "WRONG_PASSWORD",
    "record",
    "record_link",
    "record_repeat",
    "record_unlink",
]

LINKED = "linked"
LINK_REFUSED = "link_refused"
WRONG_PASSWORD = "wrong_password"
WRONG_CODE = "wrong_code"
LOCKED_OUT = "locked_out"
EMAIL_UPDATED = "email_updated"
EMAIL_SYNC_SKIPPED = "email_sync_skipped"
UNLINKED = "unlinked"

#: Every event's name: the event table's ``event``, and the signals' names.
EVENTS = (
    LINKED,
    LINK_REFUSED,
    WRONG_PASSWORD,
    WRONG_CODE,
    LOCKED_OUT,
    EMAIL_UPDATED,
    EMAIL_SYNC_SKIPPED,
    UNLINKED,
)

#: How long events are kept (``LINK_EVENTS_MAX_AGE``; 0: forever): a year.
DEFAULT_EVENTS_MAX_AGE = 365 * 24 * 3600


def record(
    backend: Any,
    event: str,
    *,
    user: Any,
    amazon_user_id: str | None,
    detail: str = "",
    amazon: Mapping[str, Any] | None = None,
    old_email: str | None = None,
) -> None:
    """Write one event through the storage's ``link_events``, and announce it once committed.

    ``amazon``: the Amazon profile (``name``, ``email``) as Amazon gave it,
    for the message; ``old_email``: the address an ``email_updated`` replaced.
    """
    events = _events(backend)
    events.record(
        event,
        user_id=getattr(user, "id", None),
        amazon_user_id=amazon_user_id,
        detail=detail,
    )
    _announce_committed(backend, events, event, user, amazon_user_id, detail, amazon, old_email)


def record_repeat(
    backend: Any,
    event: str,
    *,
    user: Any,
    amazon_user_id: str | None,
    since: datetime,
    detail: str = "",
    amazon: Mapping[str, Any] | None = None,
) -> None:
    """The same event again since ``since`` (a refusal while locked): counted on its row.

    The row is written only when the user has none since then; otherwise its
    ``repeats`` goes up by one, so a lock leaves one row however often it
    refuses, and is announced once: when the row is written.
    """
    events = _events(backend)
    written = events.record_repeat(
        event,
        user_id=getattr(user, "id", None),
        amazon_user_id=amazon_user_id,
        detail=detail,
        since=since,
    )
    if written is True:
        _announce_committed(backend, events, event, user, amazon_user_id, detail, amazon, None)


def _announce_committed(
    backend: Any,
    events: Any,
    event: str,
    user: Any,
    amazon_user_id: str | None,
    detail: str,
    amazon: Mapping[str, Any] | None,
    old_email: str | None,
) -> None:
    """Announce the event once the storage has committed it.

    The storage's ``record`` commits before it returns (the storage contract);
    a storage whose write can still be rolled back after that (one inside the
    request's transaction, Django's ``ATOMIC_REQUESTS``) offers
    ``link_events.on_commit(callback)``, and the announcement waits for it.
    """
    details = link_details(
        event,
        user,
        amazon_user_id=amazon_user_id,
        amazon=amazon,
        detail=detail,
        old_email=old_email,
    )

    def send() -> None:
        announce(backend, event, user, details)

    on_commit: Callable[[Callable[[], None]], Any] | None = getattr(events, "on_commit", None)
    if callable(on_commit):
        on_commit(send)
    else:
        send()


def _events(backend: Any) -> Any:
    events = getattr(backend.strategy.storage, "link_events", None)
    if events is None:
        raise AuthConfigurationError(
            backend,
            "the storage keeps no link events (use social_amazon_link's storage)",
            code="invalid_setting",
            parameter="STORAGE",
            stage="pipeline",
        )
    return events


def record_link(
    backend: Any,
    uid: str,
    *args: Any,
    user: Any = None,
    new_association: bool = False,
    is_new: bool = False,
    link_method: str | None = None,
    amazon_profile: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Record the link that ``associate_user`` just wrote, and how it was earned."""
    if user is None or not new_association:
        return
    method = link_method or ("new_account" if is_new else "signed_in")
    record(backend, LINKED, user=user, amazon_user_id=uid, detail=method, amazon=amazon_profile)


def record_unlink(backend: Any, user: Any, *args: Any, entries: Any = (), **kwargs: Any) -> None:
    """Disconnect pipeline: record each Amazon link that was removed.

    The message names the Amazon account by what the link kept of it (the
    name and email Amazon gave at its last sign-in).
    """
    for entry in entries or ():
        kept = entry.extra_data if isinstance(entry.extra_data, dict) else {}
        record(backend, UNLINKED, user=user, amazon_user_id=entry.uid, amazon=kept)
