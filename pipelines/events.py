"""Security events of the linking flow, recorded for the app to read.

Each event names the local user (when there is one), the Amazon user_id and a
short detail; never a password, a code or a token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from social_core.exceptions import AuthConfigurationError

__all__ = [
    "DEFAULT_EVENTS_MAX_AGE",
    "EMAIL_SYNC_SKIPPED",
    "EMAIL_UPDATED",
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

#: How long events are kept (``LINK_EVENTS_MAX_AGE``; 0: forever): a year.
DEFAULT_EVENTS_MAX_AGE = 365 * 24 * 3600


def record(
    backend: Any, event: str, *, user: Any, amazon_user_id: str | None, detail: str = ""
) -> None:
    """Write one event through the storage's ``link_events``."""
    _events(backend).record(
        event,
        user_id=getattr(user, "id", None),
        amazon_user_id=amazon_user_id,
        detail=detail,
    )


def record_repeat(
    backend: Any,
    event: str,
    *,
    user: Any,
    amazon_user_id: str | None,
    since: datetime,
    detail: str = "",
) -> None:
    """The same event again since ``since`` (a refusal while locked): counted on its row.

    The row is written only when the user has none since then; otherwise its
    ``repeats`` goes up by one, so a lock leaves one row however often it refuses.
    """
    _events(backend).record_repeat(
        event,
        user_id=getattr(user, "id", None),
        amazon_user_id=amazon_user_id,
        detail=detail,
        since=since,
    )


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
    **kwargs: Any,
) -> None:
    """Record the link that ``associate_user`` just wrote, and how it was earned."""
    if user is None or not new_association:
        return
    method = link_method or ("new_account" if is_new else "signed_in")
    record(backend, LINKED, user=user, amazon_user_id=uid, detail=method)


def record_unlink(backend: Any, user: Any, *args: Any, entries: Any = (), **kwargs: Any) -> None:
    """Disconnect pipeline: record each Amazon link that was removed."""
    for entry in entries or ():
        record(backend, UNLINKED, user=user, amazon_user_id=entry.uid)
