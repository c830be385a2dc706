"""The storage contract: every storage member the steps, the backend and the flow use.

social-core reaches the database through ``strategy.storage`` (the class named
by ``SOCIAL_AUTH_STORAGE``). Its ``BaseStorage`` names five parts (``user``,
``nonce``, ``association``, ``code``, ``partial``); this library's steps need
more of them, and two parts of their own (``link_attempts``, ``link_events``).
Each :class:`typing.Protocol` below lists what one part must have, with what it
must do. :mod:`social_amazon_link.sqlalchemy_storage` implements it; another
storage (Django's) implements it too, then runs ``tests/storage_conformance.py``.

Call :func:`check_storage` when the app starts: it names every member the
storage lacks, where each would otherwise be a 500 at the first sign-in that
needs it. Framework-free: imports no web framework and no SQLAlchemy.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from social_core import storage as core

from .errors import DatabaseUnavailable

__all__ = [
    "AssociationStorage",
    "CodeStorage",
    "EmailCode",
    "LinkAttemptStorage",
    "LinkEvent",
    "LinkEventStorage",
    "NonceStorage",
    "PartialStorage",
    "Reservation",
    "Storage",
    "StorageContractError",
    "UserStorage",
    "check_storage",
    "missing_members",
]


@runtime_checkable
class UserStorage(Protocol):
    """``storage.user``: the app's accounts and their links to provider identities.

    A user has ``id``, ``username`` and ``email`` (and a password, as
    :mod:`social_amazon_link.accounts` reads it). A *link* (social-core's
    ``UserMixin`` row) has ``id``, ``provider``, ``uid``, ``id_key``, ``user``
    and ``extra_data``, and its ``set_extra_data()`` saves. Each method that
    writes commits at once, except :meth:`create_user` (see there).
    """

    def user_model(self) -> type[Any]:
        """The app's user class (the API checks that a pipeline's result is one)."""
        ...

    def username_max_length(self) -> int:
        """The username column's length limit."""
        ...

    def field_max_length(self, field: str) -> int | None:
        """The length limit of the user model's column ``field``; None when it has
        none or there is no such column. The steps cut or refuse values to it, so
        that no insert fails on a value too long."""
        ...

    def clean_username(self, value: str) -> str:
        """``value`` made fit for a username (social-core's ``UserMixin`` has one)."""
        ...

    def get_username(self, user: Any) -> str:
        """The user's username."""
        ...

    def user_exists(self, *args: Any, **kwargs: Any) -> bool:
        """Whether a user has all these field values. ``username`` is compared as
        emails are (``email_key``: any case, non-ASCII included, the same on
        every database): "Alan" is taken when "alan" is. A value no row can
        hold (a NUL character) is False, never a database error."""
        ...

    def create_user(self, *args: Any, **kwargs: Any) -> Any:
        """Add a user with these fields, not yet committed: the link written next
        (:meth:`create_social_auth`) commits both, or neither. A row the database
        refuses (a unique username taken) is social-core's ``AuthAssociationError``
        (``username_in_use``), and the storage stays usable."""
        ...

    def get_user(self, pk: Any) -> Any:
        """The user with this primary key, or None (None for ``pk`` None)."""
        ...

    def get_users_by_email(self, email: str) -> Iterable[Any]:
        """Every account whose email is the same address, inactive ones included.

        "The same" is :func:`social_amazon_link.text.email_key` (Unicode simple
        case folding): ``Ü``/``ü``, the three sigmas, K and the Kelvin sign
        match; ``ß`` and ``ss`` do not. The same on every database and locale:
        never the database's ``lower()`` or collation alone. Surrounding spaces
        of ``email`` are ignored; an empty or unstorable one matches nothing.
        """
        ...

    def changed(self, user: Any) -> None:
        """Save and commit the user's changed fields."""
        ...

    def lock_identity(self, provider: str, uid: str, email: str | None = None) -> None:
        """Make a new account for this identity, and for this email (by ``email_key``),
        one at a time.

        Blocks while another transaction holds either lock, in this process or
        any other; held until the current transaction commits or rolls back
        (so, until the new account and its link are committed). Simultaneous
        first sign-ins then make one account: the later ones, looking again
        after the lock, find the first one's link or account.
        """
        ...

    def get_social_auth(self, provider: str, uid: str, id_key: str | None = None) -> Any:
        """The link of this identity (``id_key`` too, unless None), or None."""
        ...

    def get_social_auth_for_user(
        self, user: Any, provider: str | None = None, id: int | str | None = None
    ) -> list[Any]:
        """The user's links, of ``provider`` when given, only the one numbered ``id``
        when given (a malformed ``id`` is ``UnknownLink``, never a database error)."""
        ...

    def create_social_auth(self, user: Any, uid: str, provider: str, id_key: str = "") -> Any:
        """Write and commit a link (with the user :meth:`create_user` added). A link
        of this ``(provider, uid)`` already there is an integrity error
        (:meth:`Storage.is_integrity_error`)."""
        ...

    def migrate_social_auth(
        self, social: Any, uid: str, id_key: str, *, evidence_key: str | None = None
    ) -> Any:
        """Re-key a legacy link to ``uid``/``id_key`` (social-core 7), checking under a
        row lock that its evidence still holds and no other link has that uid."""
        ...

    def allowed_to_disconnect(
        self, user: Any, backend_name: str, association_id: Any = None
    ) -> bool:
        """Whether the user keeps a way to sign in (a password or another link) once
        these links are gone."""
        ...

    def disconnect_entries(
        self, user: Any, backend_name: str, association_id: Any = None
    ) -> list[Any]:
        """The links an unlink removes, checked under a per-user lock held until the
        removal commits: ``UnknownLink`` when ``association_id`` is not the user's
        link of that backend, ``disconnect_disallowed`` when no way to sign in is left."""
        ...

    def disconnect(self, entry: Any) -> None:
        """Delete this link and commit."""
        ...


@runtime_checkable
class NonceStorage(Protocol):
    """``storage.nonce``: single-use values (social-core's OAuth2 ``state``)."""

    def use(self, server_url: str, timestamp: Any, salt: str) -> bool:
        """Record the nonce; False when it was recorded already."""
        ...

    def consume(self, server_url: str, timestamp: int, salt: str) -> bool:
        """Delete the nonce; True only for the one caller that deleted it (of two
        racing callbacks, one wins). An unknown or unstorable nonce is False."""
        ...


@runtime_checkable
class AssociationStorage(Protocol):
    """``storage.association``: OpenID associations (social-core's; Amazon never uses them)."""

    def store(self, server_url: str, association: Any) -> None:
        """Save the association, replacing one with the same handle."""
        ...

    def get(self, server_url: str | None = None, handle: str | None = None) -> Any:
        """The associations of this server (and handle)."""
        ...

    def remove(self, ids_to_delete: list[int]) -> None:
        """Delete these associations."""
        ...


class EmailCode(Protocol):
    """One emailed code, as :meth:`CodeStorage.make_code` and ``get_code`` return it."""

    email: str
    #: The plain code: for the sender and for the check, never stored.
    code: str
    verified: bool
    timestamp: datetime | None

    def verify(self) -> None:
        """Mark it used (social-core's ``validate_email``); saved at once."""
        ...

    def is_expired(self, seconds: int) -> bool:
        """Whether it is older than ``seconds``."""
        ...


@runtime_checkable
class CodeStorage(Protocol):
    """``storage.code``: one-time codes sent by email, kept only as keyed hashes."""

    def make_code(self, email: str) -> EmailCode:
        """Store a new code for ``email`` (its :meth:`digest` only) and return it
        with the plain code, for the sender."""
        ...

    def get_code(self, code: str) -> EmailCode | None:
        """The code as typed (any case, spaces or dashes), or None. A code is used
        once: after ``verify()`` it comes back ``verified``, and social-core's
        ``validate_email`` refuses it."""
        ...

    def normal_code(self, code: str) -> str:
        """The code as typed, as it was sent: upper case, no spaces or dashes."""
        ...

    def digest(self, code: str) -> str:
        """The keyed hash kept of ``code`` (also in the pause that sent it): the same
        for every spelling :meth:`normal_code` maps together, and keyed by the
        app's secret, so the database alone gives no code away."""
        ...

    def sent_since(self, email: str, since: datetime) -> list[datetime]:
        """When codes were made for this address since ``since``, oldest first,
        timezone-aware UTC; the address matched as :meth:`UserStorage.get_users_by_email`
        matches (``email_key``). The steps allow a few per address per window."""
        ...


@runtime_checkable
class PartialStorage(Protocol):
    """``storage.partial``: paused pipelines (social-core's ``PartialMixin`` rows)."""

    def prepare(self, backend: str, next_step: int, data: dict[str, Any]) -> Any:
        """A new partial with a fresh random ``token``, not stored yet."""
        ...

    def store(self, partial: Any) -> Any:
        """Save and commit it."""
        ...

    def load(self, token: str) -> Any:
        """The partial with this token, or None (an empty or unstorable token too).
        Detached: what the caller writes into it is never saved by a later commit."""
        ...

    def destroy(self, token: str) -> None:
        """Delete it and commit; nothing happens for an unknown token."""
        ...


class Reservation(Protocol):
    """The answer of :meth:`LinkAttemptStorage.reserve`."""

    @property
    def allowed(self) -> bool: ...
    @property
    def failures(self) -> int: ...
    @property
    def retry_after(self) -> int: ...
    @property
    def busy(self) -> bool: ...
    @property
    def locked_since(self) -> int: ...


@runtime_checkable
class LinkAttemptStorage(Protocol):
    """``storage.link_attempts``: wrong passwords (and codes) counted per account.

    Shared by every process, and atomic: however many requests race, at most
    ``max_attempts`` tries are checked before the account locks, and every
    wrong one is counted exactly once. ``scope`` keeps separate counts per door
    (``"link"``: this library's prompt; ``"sign_in"``: the app's own page).
    """

    def reserve(
        self,
        user_id: Any,
        *,
        max_attempts: int,
        lockout_seconds: int,
        now: int | None = None,
        scope: str = "link",
        wait: float = 0.0,
    ) -> Reservation:
        """Reserve a try before checking a password: allowed while the failures
        counted plus the tries being checked stay under ``max_attempts``.

        Refused when locked (``retry_after``: seconds until it ends, at least
        1; ``locked_since``: when it began), or ``busy`` when only tries being
        checked stand in the way (waits up to ``wait`` seconds for them first).
        A lock that ran out, or failures older than ``lockout_seconds``, count
        nothing any more. Report the try's outcome with one of the three below.
        """
        ...

    def fail(
        self,
        user_id: Any,
        *,
        max_attempts: int,
        lockout_seconds: int,
        now: int | None = None,
        scope: str = "link",
    ) -> int:
        """The try was wrong: count it; returns the failures counted, this one
        included. Exactly one try returns ``max_attempts``: it locks the account
        for at least ``lockout_seconds``."""
        ...

    def clear(self, user_id: Any, *, scope: str = "link") -> None:
        """The try was right: forget the failures and the lock."""
        ...

    def release(self, user_id: Any, *, scope: str = "link") -> None:
        """The try was not checked after all: give its place back, count nothing."""
        ...


class LinkEvent(Protocol):
    """One security event, as :meth:`LinkEventStorage.for_user` lists it."""

    event: str
    user_id: Any
    amazon_user_id: str | None
    detail: str
    created: datetime
    #: How many times the same event came again (see ``record_repeat``).
    repeats: int


@runtime_checkable
class LinkEventStorage(Protocol):
    """``storage.link_events``: the linking flow's security events, for the app to show."""

    def record(
        self, event: str, *, user_id: Any, amazon_user_id: str | None, detail: str = ""
    ) -> None:
        """Write one event and commit (``detail`` cut to 200 characters)."""
        ...

    def record_repeat(
        self,
        event: str,
        *,
        user_id: Any,
        amazon_user_id: str | None,
        detail: str = "",
        since: datetime,
    ) -> bool:
        """The same event again (a refusal while locked): add one to ``repeats`` of
        the user's latest such event (same detail) written at or after ``since``,
        or write it when there is none, and commit. Simultaneous calls never write
        two rows. True when this call wrote the row (only then is the event
        announced: the app's notification and signal), False when it counted."""
        ...

    def for_user(self, user_id: Any, limit: int = 20) -> list[LinkEvent]:
        """The user's latest events, newest first, at most ``limit``."""
        ...


@runtime_checkable
class Storage(Protocol):
    """``strategy.storage``: the class named by ``SOCIAL_AUTH_STORAGE``."""

    # Read-only: a storage class holds its parts as class attributes.
    @property
    def user(self) -> UserStorage: ...
    @property
    def nonce(self) -> NonceStorage: ...
    @property
    def association(self) -> AssociationStorage: ...
    @property
    def code(self) -> CodeStorage: ...
    @property
    def partial(self) -> PartialStorage: ...
    @property
    def link_attempts(self) -> LinkAttemptStorage: ...
    @property
    def link_events(self) -> LinkEventStorage: ...

    def is_integrity_error(self, exception: BaseException) -> bool:
        """Whether ``exception`` is the database refusing a duplicate (a unique key)."""
        ...

    def database_unavailable(self, exception: BaseException) -> DatabaseUnavailable | None:
        """``DatabaseUnavailable`` when ``exception`` says the database is out of reach
        (refused or dropped connection, no pooled connection in time, busy or
        locked); None for anything else, a wrong statement included (a bug)."""
        ...

    def end_transaction(self) -> None:
        """Commit the current transaction, if any, keeping loaded objects usable: the
        backend calls it before each call to Amazon, so that no connection,
        snapshot or lock waits on Amazon, and ``claim_new_account`` once the
        identity lock has found the link made meanwhile (its lock is no longer
        needed)."""
        ...

    def purge(
        self,
        *,
        state_max_age: int = 1800,
        pause_max_age: int = 900,
        lockout_seconds: int = 900,
        events_max_age: int = 365 * 24 * 3600,
        now: float | None = None,
    ) -> dict[str, int]:
        """Delete what is too old to be used (states, pauses, codes, counters counting
        nothing, events; ``events_max_age`` 0 keeps events); the count per
        ``nonces``, ``partials``, ``codes``, ``attempts``, ``events``."""
        ...


#: The parts of a storage, by attribute name.
PARTS: dict[str, type[Any]] = {
    "user": UserStorage,
    "nonce": NonceStorage,
    "association": AssociationStorage,
    "code": CodeStorage,
    "partial": PartialStorage,
    "link_attempts": LinkAttemptStorage,
    "link_events": LinkEventStorage,
}


class StorageContractError(TypeError):
    """The storage lacks members the library uses: ``missing`` names each, dotted."""

    def __init__(self, storage: Any, missing: list[str]) -> None:
        self.missing = missing
        name = getattr(storage, "__qualname__", type(storage).__qualname__)
        wanted = ", ".join(f"{member}{_stated(member)}" for member in missing)
        super().__init__(
            f"the storage {name} does not implement social_amazon_link's storage contract "
            f"(social_amazon_link.storage_contract); missing or taking other arguments: {wanted}"
        )


def _methods(protocol: type[Any]) -> list[str]:
    """The methods ``protocol`` states (its own, not ``Protocol``'s)."""
    return [
        name
        for name, member in vars(protocol).items()
        if not name.startswith("_") and callable(member)
    ]


def _stubs() -> frozenset[Any]:
    """social-core's placeholder methods, which only raise ``NotImplementedError``."""
    found = set()
    for mixin in (
        core.UserMixin,
        core.NonceMixin,
        core.AssociationMixin,
        core.CodeMixin,
        core.PartialMixin,
        core.BaseStorage,
    ):
        for member in vars(mixin).values():
            function = getattr(member, "__func__", member)
            code = getattr(function, "__code__", None)
            if code is not None and "NotImplementedError" in code.co_names:
                found.add(function)
    return frozenset(found)


_SOCIAL_CORE_STUBS = _stubs()


def _stated(dotted: str) -> inspect.Signature:
    """The contract's parameters of a member (``user.lock_identity``), without ``self``
    and without annotations: what the callers pass."""
    part, _, name = dotted.rpartition(".")
    protocol = PARTS[part] if part else Storage
    signature = inspect.signature(vars(protocol)[name])
    return signature.replace(
        parameters=[
            parameter.replace(annotation=inspect.Parameter.empty)
            for parameter in list(signature.parameters.values())[1:]
        ],
        return_annotation=inspect.Signature.empty,
    )


def _takes_the_calls(member: Any, stated: inspect.Signature) -> bool:
    """Whether ``member`` accepts the arguments as the contract's callers pass them:
    positional parameters by position, keyword-only ones by name."""
    try:
        signature = inspect.signature(member)
    except (TypeError, ValueError):
        return True  # not introspectable (a builtin): taken on trust
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in stated.parameters.values():
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
            args.append(None)
        elif parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = None
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _lacks(owner: Any, dotted: str) -> bool:
    member = getattr(owner, dotted.rpartition(".")[2], None)
    if not callable(member) or getattr(member, "__func__", member) in _SOCIAL_CORE_STUBS:
        return True
    return not _takes_the_calls(member, _stated(dotted))


def missing_members(storage: Any) -> list[str]:
    """Every member of the contract that ``storage`` lacks, dotted (``user.lock_identity``).

    A method counts as missing when it is absent, not callable, still
    social-core's placeholder that raises ``NotImplementedError``, or unable
    to take the arguments the contract states. A missing part
    (``link_attempts``) lists each of its methods.
    """
    missing = [name for name in _methods(Storage) if _lacks(storage, name)]
    for part, protocol in PARTS.items():
        owner = getattr(storage, part, None)
        missing += [
            dotted
            for dotted in (f"{part}.{name}" for name in _methods(protocol))
            if _lacks(owner, dotted)
        ]
    return missing


def check_storage(storage: Any) -> None:
    """Raise :class:`StorageContractError` naming every member ``storage`` lacks.

    For an integration to call at start (``init_app``), so that a storage
    short of the contract fails there, not at the first sign-in.
    """
    missing = missing_members(storage)
    if missing:
        raise StorageContractError(storage, missing)
