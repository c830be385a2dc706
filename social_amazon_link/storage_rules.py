"""What every storage of the contract computes the same way, whatever its database layer.

The SQLAlchemy storage (:mod:`.sqlalchemy_storage`) and the Django one
(:mod:`.django.storage`) each turn these into their own queries: the lock
names and keys, the email pattern that narrows a folded match, the link-id
rule of an unlink, the emailed codes' alphabet and keyed hash, the
wrong-password reservation's answer, and which SQLite errors mean "not now".
Framework-free: imports no web framework and no database layer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from social_core.exceptions import AuthPolicyError
from social_core.storage import BaseStorage, CodeMixin

from .accounts import has_usable_password
from .errors import DatabaseUnavailable, UnknownLink
from .pipelines.events import DEFAULT_EVENTS_MAX_AGE
from .text import email_key

__all__ = [
    "ASCII_UPPER",
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "MAX_ASSOCIATION_ID",
    "STALE_TRY_SECONDS",
    "AttemptCounterRules",
    "EventLogRules",
    "PurgeBefore",
    "Reservation",
    "SentCode",
    "StorageRules",
    "UnlinkRules",
    "advisory_lock_keys",
    "chosen_links",
    "generate_code",
    "identity_lock_names",
    "keeps_a_way_in",
    "key_candidates_pattern",
    "keyed_code_digest",
    "normal_code",
    "parse_association_id",
    "refusal",
    "reserve_waiting",
    "sqlite_unavailable_reason",
    "sqlstate_reason",
]

# -- matching by email_key in SQL ---------------------------------------------------

#: ASCII letters that a non-ASCII character folds to (U+212A KELVIN SIGN to
#: ``k``, U+017F LONG S to ``s``): where a key has one, a stored address may
#: have that other character. tests/test_emails.py checks the list is whole.
_ASCII_FOLDED_FROM_OTHERS = frozenset("ks")
ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def key_candidates_pattern(key: str) -> str:
    """A ``LIKE`` pattern (escape ``\\``) met by every value, its ASCII letters
    lowered, whose :func:`~social_amazon_link.text.email_key` is ``key`` (and
    rarely by a few others: the caller compares the keys in Python).

    Simple case folding maps one character to one, so such a value has the
    key's length, and at each ASCII position of the key the same ASCII letter
    in either case: the key's ASCII characters, ``_`` (any one character) at
    the others. The column is lowered for ASCII only: no database's
    ``lower()`` is trusted past ASCII (SQLite's stops there, PostgreSQL's
    follows the database's locale; a Turkish one lowers ``I`` to a dotless
    i), so on PostgreSQL the storages lower with ``translate(column,
    ASCII_UPPER, ascii_lower)``. PostgreSQL needs a UTF8 database (with
    SQL_ASCII, ``_`` is one byte, not one character).
    """
    return "".join(
        "\\" + char
        if char in "\\%_"
        else char
        if char < "\x80" and char not in _ASCII_FOLDED_FROM_OTHERS
        else "_"
        for char in key
    )


# -- locks --------------------------------------------------------------------------


def identity_lock_names(provider: str, uid: str, email: str | None) -> list[str]:
    """The locks ``lock_identity`` takes, in this order: the identity's, then the
    email's (by ``email_key``). Always in that order, so no two sign-ins wait
    on each other."""
    names = [f"{provider}\0{uid}"]
    if email:
        names.append(f"email\0{email_key(email.strip())}")
    return names


def advisory_lock_keys(names: list[str]) -> list[int]:
    """PostgreSQL advisory lock keys (signed 64-bit) for lock names: the same
    names give the same keys in every storage, so they exclude each other."""
    return [
        int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        for name in names
    ]


# -- unlinking ----------------------------------------------------------------------

#: The largest id an ``Integer`` column holds on every database (PostgreSQL's int4).
MAX_ASSOCIATION_ID = 2**31 - 1
_CANONICAL_ID = re.compile(r"[1-9][0-9]*", re.ASCII)


def parse_association_id(value: Any) -> int:
    """A link's id from a URL or a caller: a positive whole number that fits
    the column, written plainly (``54``; not ``054``, ``+54``, ``54.0``, ``٥٤``).

    Anything else is :class:`UnknownLink` (404), so no spelling can make a
    check and a delete disagree, and none reaches the database as a 500.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _CANONICAL_ID.fullmatch(value):
        number = int(value)
    else:
        raise UnknownLink(reason="malformed_id", stage="disconnect")
    if not 0 < number <= MAX_ASSOCIATION_ID:
        raise UnknownLink(reason="malformed_id", stage="disconnect")
    return number


def chosen_links(links: list[Any], backend_name: str, association_id: Any) -> list[Any]:
    """The links an unlink removes: the one numbered ``association_id`` (which
    must be one of ``links`` for ``backend_name``), else every one of the backend."""
    if association_id is None:
        return [link for link in links if link.provider == backend_name]
    wanted = parse_association_id(association_id)
    chosen = [link for link in links if link.id == wanted and link.provider == backend_name]
    if not chosen:
        raise UnknownLink(reason="not_the_users", stage="disconnect")
    return chosen


def keeps_a_way_in(user: Any, links: list[Any], removed: list[Any]) -> bool:
    """Whether the user can still sign in (a password, or a link kept) once ``removed`` go."""
    return has_usable_password(user) or any(link not in removed for link in links)


class UnlinkRules:
    """``storage.user``'s unlink checks, the same on every storage: over its own
    ``get_social_auth_for_user`` and ``_lock_links`` (and ``_refused_unlink``)."""

    @classmethod
    def allowed_to_disconnect(
        cls: Any, user: Any, backend_name: str, association_id: Any = None
    ) -> bool:
        """Only when the user keeps a way to sign in: a password or another link.

        ``association_id`` is parsed as ``get_social_auth_for_user`` parses
        it, so the check and the removal see the same row; one that is not the
        user's link of ``backend_name`` is :class:`UnknownLink`.
        """
        links = cls.get_social_auth_for_user(user)
        return keeps_a_way_in(user, links, chosen_links(links, backend_name, association_id))

    @classmethod
    def disconnect_entries(
        cls: Any, user: Any, backend_name: str, association_id: Any = None
    ) -> list[Any]:
        """The links an unlink removes, loaded once and checked under the user's lock.

        The objects the check counted are the ones removed (social-core's
        ``allowed_to_disconnect`` and ``get_entries`` steps each load them
        again), and until the removal commits no other unlink of this user
        runs: two at once must not each count the other's link as the one that
        remains. Raises :class:`UnknownLink`, or social-core's
        ``disconnect_disallowed`` when the user would have no way left to sign in.
        """
        cls._lock_links(user)
        links = cls.get_social_auth_for_user(user)
        chosen = chosen_links(links, backend_name, association_id)
        if not keeps_a_way_in(user, links, chosen):
            cls._refused_unlink()
            raise AuthPolicyError(code="disconnect_disallowed", stage="disconnect")
        return chosen

    @classmethod
    def _refused_unlink(cls) -> None:
        """After a refused unlink: nothing to undo unless the storage says so."""


# -- emailed codes ------------------------------------------------------------------

#: The characters of an emailed code: no 0/O, no 1/I/L.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
#: Characters per code: short enough to type from an email.
CODE_LENGTH = 8
_CODE_CONTEXT = b"social-amazon-link/email-codes/v1\x00"


class SentCode(CodeMixin):
    """A one-time code as the person received it: the plain ``code`` beside its
    stored row's fields (``row``: the row that holds its digest). Never stored
    itself; a storage's subclass saves ``verified`` alone (social-core's ``verify()``)."""

    def __init__(self, row: Any, code: str) -> None:
        self._model = type(row)
        self.id = row.id
        self.email = row.email
        self.code = code
        self.verified = bool(row.verified)
        self.timestamp = row.timestamp


def generate_code() -> str:
    """A new code: :data:`CODE_LENGTH` random characters of :data:`CODE_ALPHABET`."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normal_code(code: str) -> str:
    """A code as typed, as it was sent: upper case, without spaces or dashes."""
    return re.sub(r"[\s-]+", "", code).upper()


def keyed_code_digest(secret: str | bytes | None, code: str) -> str:
    """The keyed hash kept of a code: an HMAC-SHA256 (its first 128 bits, hex)
    under a key derived from the app's secret (``SECRET_KEY``)."""
    if not secret:
        raise RuntimeError("emailed codes need the app's secret: set SECRET_KEY")
    raw = secret.encode() if isinstance(secret, str) else secret
    key = hashlib.sha256(_CODE_CONTEXT + raw).digest()
    return hmac.new(key, normal_code(code).encode(), hashlib.sha256).hexdigest()[:32]


# -- wrong-password counts ----------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    """The answer of ``link_attempts.reserve``."""

    allowed: bool
    #: Wrong tries counted so far (confirmed ones; this one is not yet).
    failures: int
    #: Seconds until the lock ends, when locked.
    retry_after: int = 0
    #: Refused only because other tries are being checked right now: none of
    #: them may be wrong, so ask again in a moment (the account is not locked).
    busy: bool = False
    #: When the lock began (epoch seconds), when locked.
    locked_since: int = 0


#: A try still pending this long after it was reserved never reported back
#: (its process died): it no longer holds a place.
STALE_TRY_SECONDS = 60


class AttemptCounterRules:
    """``storage.link_attempts``'s calls, the same on every storage: over its own
    ``_reserve(user_id, max_attempts, lockout_seconds, now, scope)``,
    ``_fail(user_id, scope, max_attempts, lockout_seconds, now)`` and
    ``_settle(user_id, scope, **values)`` (one less pending, ``values`` set).

    A try is *reserved* before the password is checked, by one conditional
    ``UPDATE``: the tries being checked (``pending``) and the wrong ones
    counted (``failures``) together never exceed ``max_attempts``, so however
    many requests race, at most ``max_attempts`` passwords are checked before
    the lock. The outcome is then reported: :meth:`fail` counts the try (and
    the one that reaches ``max_attempts`` locks the account), :meth:`clear`
    forgets every failure. A refusal while tries are pending but the account
    is not locked says ``busy``: a right password waits for them instead of
    being refused (the steps retry), and is refused only once wrong ones locked it.

    ``scope`` keeps separate counts for separate doors: ``"link"`` (this
    library's password prompt) and, say, ``"sign_in"`` (the app's own sign-in
    page), so that locking one does not lock the other.
    """

    @classmethod
    def reserve(
        cls: Any,
        user_id: Any,
        *,
        max_attempts: int,
        lockout_seconds: int,
        now: int | None = None,
        scope: str = "link",
        wait: float = 0.0,
    ) -> Reservation:
        """Reserve a try; while only tries being checked stand in the way, wait up to ``wait`` s.

        Report its outcome with :meth:`fail`, :meth:`clear` or :meth:`release`.
        """
        return reserve_waiting(
            lambda: cls._reserve(user_id, max_attempts, lockout_seconds, now, scope), wait
        )

    @classmethod
    def fail(
        cls: Any,
        user_id: Any,
        *,
        max_attempts: int,
        lockout_seconds: int,
        now: int | None = None,
        scope: str = "link",
    ) -> int:
        """The reserved try was wrong: count it. Returns the failures counted, this one included.

        The try that brings the count to ``max_attempts`` locks the account
        for ``lockout_seconds`` (in whole seconds: one more, so a lock never
        lasts less than asked): exactly one try does, so the caller that gets
        ``max_attempts`` back records the lock, once.
        """
        now = int(time.time()) if now is None else now
        return int(cls._fail(user_id, scope, max_attempts, lockout_seconds, now))

    @classmethod
    def clear(cls: Any, user_id: Any, *, scope: str = "link") -> None:
        """The reserved try was right: forget the failures (and that try)."""
        cls._settle(user_id, scope, failures=0, locked_until=0)

    @classmethod
    def release(cls: Any, user_id: Any, *, scope: str = "link") -> None:
        """The reserved try was not checked after all: give its place back, count nothing."""
        cls._settle(user_id, scope)


def reserve_waiting(attempt: Callable[[], Reservation], wait: float) -> Reservation:
    """``attempt()`` until it is not ``busy``, for up to ``wait`` seconds.

    If the tries being checked are right, this one gets its turn; if wrong,
    the account locks and this one is refused for that.
    """
    deadline = time.monotonic() + wait
    pause = 0.02
    while True:
        reservation = attempt()
        if not reservation.busy or time.monotonic() + pause > deadline:
            return reservation
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def refusal(
    *,
    failures: int,
    locked_until: int,
    last_failure_at: int,
    max_attempts: int,
    lockout_seconds: int,
    now: int,
) -> Reservation:
    """The answer when no try could be reserved, from the counter's row."""
    if locked_until == 0 and failures < max_attempts:
        return Reservation(allowed=False, failures=failures, retry_after=1, busy=True)
    # Locked; or failures counted under a higher max_attempts, which hold
    # until they are forgotten.
    locked_until = locked_until or last_failure_at + lockout_seconds + 1
    return Reservation(
        allowed=False,
        failures=failures,
        retry_after=max(1, locked_until - now),
        locked_since=locked_until - lockout_seconds - 1,
    )


# -- link events --------------------------------------------------------------------


class EventLogRules:
    """``storage.link_events``'s writes, the same on every storage: over its own
    ``_add(row)`` and ``_add_repeat(row, since, lock_name)`` (``row``: the
    columns ``event``, ``user_id``, ``amazon_user_id``, ``detail``)."""

    @classmethod
    def record(
        cls: Any, event: str, *, user_id: Any, amazon_user_id: str | None, detail: str = ""
    ) -> None:
        """Write one event and commit (``detail`` cut to 200 characters)."""
        cls._add(_event_row(event, user_id, amazon_user_id, detail))

    @classmethod
    def record_repeat(
        cls: Any,
        event: str,
        *,
        user_id: Any,
        amazon_user_id: str | None,
        detail: str = "",
        since: datetime,
    ) -> bool:
        """The same event again (a refusal while locked, say): counted, not written again.

        Adds one to ``repeats`` of the user's latest ``event`` row with this
        detail written at or after ``since`` (when the lock began); writes
        that row only when there is none, and then returns True. Serialised
        per user and event (a lock named alike in every storage), so
        simultaneous refusals never write two rows.
        """
        lock_name = f"amazon_link_events\0{user_id}\0{event}\0{detail}"
        row = _event_row(event, user_id, amazon_user_id, detail)
        return bool(cls._add_repeat(row, since, lock_name))


def _event_row(event: str, user_id: Any, amazon_user_id: str | None, detail: str) -> dict[str, Any]:
    return {
        "event": event,
        "user_id": user_id,
        "amazon_user_id": amazon_user_id,
        "detail": detail[:200],
    }


# -- the whole storage ----------------------------------------------------------------


@dataclass(frozen=True)
class PurgeBefore:
    """What :meth:`StorageRules.purge` deletes: rows older than these."""

    #: Nonces whose ``timestamp`` (epoch seconds) is below this.
    nonces: int
    #: Partials and emailed codes written before this.
    pauses: datetime
    #: Counters whose lock ended by this (epoch seconds) ...
    now: int
    #: ... and whose last failure is before this, but not 0 (being reserved).
    last_failure: int
    #: Events written before this; None keeps them.
    events: datetime | None


class StorageRules(BaseStorage):
    """The storage class's calls, the same on every storage: over its own
    ``integrity_error``, ``_unavailable_reason(exception)`` and
    ``_purge(before) -> counts``."""

    #: The database layer's exception for a refused duplicate (a unique key).
    integrity_error: ClassVar[type[BaseException]]

    @classmethod
    def is_integrity_error(cls, exception: BaseException) -> bool:
        return isinstance(exception, cls.integrity_error)

    @classmethod
    def database_unavailable(cls: Any, exception: BaseException) -> DatabaseUnavailable | None:
        """``database_unavailable`` when ``exception`` says the database is out of reach.

        The one place that decides it, as ``is_integrity_error`` does for
        conflicts: a connection refused or dropped, no pooled connection in
        time, SQLite busy, locked or unable to open its file. Not an error
        about the SQL itself (SQLite's ``no such table``): that is a bug, and
        stays one.
        """
        reason = cls._unavailable_reason(exception)
        return None if reason is None else DatabaseUnavailable(reason=reason)

    @classmethod
    def purge(
        cls: Any,
        *,
        state_max_age: int = 1800,
        pause_max_age: int = 900,
        lockout_seconds: int = 900,
        events_max_age: int = DEFAULT_EVENTS_MAX_AGE,
        now: float | None = None,
    ) -> dict[str, int]:
        """Delete what abandoned sign-ins and old events left behind; returns the count per table.

        A sign-in started and never completed leaves its OAuth2 state nonce;
        a pause never answered leaves its partial, and the emailed code it
        sent. None can be used once older than its lifetime (social-core's
        ``STATE_LIFETIME``, this library's ``LINK_PROMPT_MAX_AGE``: a code
        counts only for the pause that sent it), so they go. A password-attempt
        counter goes once it counts nothing any more: no lock running and its
        last failure older than ``LINK_LOCKOUT_SECONDS`` (the next try starts
        from zero either way). Link events go once older than ``events_max_age``
        (``LINK_EVENTS_MAX_AGE``; 0 keeps them forever). Run it from cron
        (``flask amazon-link purge``, ``manage.py amazon_link_purge``).
        """
        now = time.time() if now is None else now
        before = PurgeBefore(
            nonces=int(now - state_max_age),
            pauses=datetime.fromtimestamp(now - pause_max_age, UTC),
            now=int(now),
            last_failure=int(now) - lockout_seconds,
            events=datetime.fromtimestamp(now - events_max_age, UTC)
            if events_max_age > 0
            else None,
        )
        counts: dict[str, int] = cls._purge(before)
        return counts


# -- outages ------------------------------------------------------------------------

#: SQLite failures that say "not now" rather than "wrong SQL".
_SQLITE_UNAVAILABLE = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_PROTOCOL",
)


def sqlite_unavailable_reason(error: sqlite3.Error) -> str | None:
    """``sqlite_busy``... when SQLite's ``error`` says "not now"; None for wrong SQL
    (``no such table``), which is a bug and stays one."""
    name = str(getattr(error, "sqlite_errorname", ""))
    return name.lower() if name.startswith(_SQLITE_UNAVAILABLE) else None


def sqlstate_reason(kind: str, driver_error: Any) -> str:
    """``kind``, with the driver's SQLSTATE when it has one (psycopg's 57P01:
    the server is shutting down); never the message."""
    state = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)
    return f"{kind}_{state}" if isinstance(state, str) and state.isalnum() else kind
