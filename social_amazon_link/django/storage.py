"""The storage contract on social_django's models and this app's own tables.

``SOCIAL_AUTH_STORAGE = "social_amazon_link.django.storage.DjangoStorage"``.
social_django's own storage leaves out what this library relies on: its
username check and email match are the database's (case-sensitive names; no
Unicode folding; inactive accounts left out of the match), it has no identity
lock, it saves a new account before its link, and it keeps emailed codes in
plain text. This one implements :mod:`social_amazon_link.storage_contract` on
the same tables, with the semantics of :mod:`social_amazon_link.sqlalchemy_storage`
(the rules both share live in :mod:`social_amazon_link.storage_rules`).

Transactions, as Django runs them:

- Outside any transaction (Django's autocommit), each write commits at once.
  :meth:`DjangoUserStorage.lock_identity` and ``create_user`` open a
  transaction (an atomic block) that the link's write commits, with the
  account: until then the identity lock is held (PostgreSQL: transaction
  advisory locks; SQLite: its write lock).
- Inside the app's transaction (``ATOMIC_REQUESTS``, an ``atomic`` block), the
  writes go with it, and the lock is held until it ends. The wrong-password
  counts and the link events do not: on PostgreSQL they are written through a
  second connection to the same database, committed at once, so a request
  rolled back after a wrong password still counted it. On SQLite, one writer
  at a time, a second connection would wait for the request's own write lock:
  there they go with the request, committed when the view answers (a wrong
  password is an answer, not an error) and lost only when it raises.
"""

from __future__ import annotations

import base64
import copy
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.signals import request_finished
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.backends.signals import connection_created
from django.db.models import Case, F, Func, Lookup, Max, Q, Value, When
from django.db.models.functions import Lower
from django.db.utils import ConnectionDoesNotExist, load_backend
from social_core.exceptions import AuthAssociationError
from social_core.storage import (
    AssociationMixin,
    CodeMixin,
    NonceMixin,
    PartialMixin,
    UserMixin,
)
from social_django.models import Association, Code, Nonce, Partial, UserSocialAuth

from .. import storage_rules as rules
from ..storage_rules import PurgeBefore, Reservation
from ..text import email_key, storable
from .models import LinkEvent, PasswordAttempts

__all__ = ["OWN_ALIAS_SUFFIX", "OWN_LOCK_TIMEOUT", "DjangoStorage"]

#: The second connection's alias: the write alias plus this (made from its settings).
OWN_ALIAS_SUFFIX = "__amazon_link"


# -- transactions -------------------------------------------------------------------

#: The atomic blocks this storage opened and has not ended yet, per connection
#: (a connection belongs to one thread).
_open_blocks: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _connection() -> Any:
    """The connection the accounts and links are written on."""
    return connections[router.db_for_write(UserSocialAuth)]


def _begin(conn: Any) -> None:
    """Open a transaction on ``conn`` unless one is open (the app's, or this storage's)."""
    if conn.in_atomic_block:
        return
    block = transaction.atomic(using=conn.alias)
    block.__enter__()
    _open_blocks[conn] = block


def _finish(conn: Any, *, commit: bool) -> None:
    """End the transaction this storage opened on ``conn`` (commit or roll back);
    nothing when the transaction is the app's, which ends it itself."""
    block = _open_blocks.get(conn)
    if block is None or conn.savepoint_ids:
        return  # not ours, or a block of the app's is open inside ours
    del _open_blocks[conn]
    if commit:
        block.__exit__(None, None, None)
    else:
        error = DatabaseError("rolled back by social_amazon_link")
        block.__exit__(DatabaseError, error, None)


def _end_request(**_: Any) -> None:
    """At the end of a request: roll back what this storage left open in this
    thread (a lock taken, an account added, then the view raised before the
    link), and close the thread's second connection as Django closes its own."""
    for conn in connections.all(initialized_only=True):
        block = _open_blocks.pop(conn, None)
        if block is not None:
            # Django closed the connection in its transaction already (its
            # autocommit was off): the block's end makes it usable again.
            with suppress(DatabaseError):  # a database gone: nothing to roll back
                block.__exit__(DatabaseError, DatabaseError("request ended"), None)
        with suppress(ConnectionDoesNotExist, AttributeError):
            connections[conn.alias + OWN_ALIAS_SUFFIX].close_if_unusable_or_obsolete()


# After Django's own close_old_connections (connected when django.db loads).
request_finished.connect(_end_request, dispatch_uid="social_amazon_link.django.storage")


@contextmanager
def _writing(conn: Any = None) -> Iterator[Any]:
    """A block whose writes commit at its end, with what this storage's open
    transaction holds (a new account); inside the app's transaction, a savepoint
    of it. On any error the block is undone (and this storage's transaction
    rolled back: the account goes with its link), then the error raised."""
    conn = _connection() if conn is None else conn
    try:
        with transaction.atomic(using=conn.alias):
            yield conn
    except BaseException:
        _finish(conn, commit=False)
        raise
    _finish(conn, commit=True)


def _own_connection(conn: Any) -> Any:
    """This thread's second connection to ``conn``'s database, outside its transaction.

    Made from ``conn``'s settings, and again when they change (a test run
    pointing ``default`` at its test database). Its alias is known to this
    thread's ``connections`` only, not to ``DATABASES``: Django's test runner
    makes no database for it and ``close_old_connections`` does not see it,
    so the end of each request closes it here (:func:`_end_request`).
    """
    alias = conn.alias + OWN_ALIAS_SUFFIX
    try:
        own = connections[alias]
    except ConnectionDoesNotExist:
        own = None
    if own is not None and own.settings_dict == conn.settings_dict:
        return own
    if own is not None:
        own.close()  # made for an earlier database
    own = load_backend(conn.settings_dict["ENGINE"]).DatabaseWrapper(
        copy.deepcopy(conn.settings_dict), alias
    )
    connections[alias] = own
    return own


#: Seconds the second connection waits for a row lock before giving up (an
#: ``OperationalError``: 503 ``database_unavailable``). It writes while the
#: request's own transaction is open and waiting on it: should that
#: transaction hold a lock the write needs (the user's row ``FOR UPDATE``,
#: taken by the app), waiting longer would only hang the request.
OWN_LOCK_TIMEOUT = 5.0


def _on_connection_created(sender: Any, connection: Any, **_: Any) -> None:
    if connection.alias.endswith(OWN_ALIAS_SUFFIX) and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(OWN_LOCK_TIMEOUT * 1000)}")


connection_created.connect(_on_connection_created, dispatch_uid="social_amazon_link.django")


def _counting_connection() -> Any:
    """Where the counts and events are written: committed on their own, even
    inside the app's transaction (see the module's docstring).

    Not inside a test of Django's ``TestCase``, which runs each test in a
    transaction it rolls back: there they stay in it (a second connection
    would not see the test's accounts, and its rows would outlive the test).
    """
    conn = _connection()
    if not conn.in_atomic_block or conn.vendor == "sqlite":
        return conn
    if getattr(conn.atomic_blocks[0], "_from_testcase", False):
        return conn
    return _own_connection(conn)


def _lock(conn: Any, names: list[str]) -> None:
    """Locks on ``names``, in order, until ``conn``'s transaction ends (open it first).

    PostgreSQL: transaction advisory locks (the same keys as the SQLAlchemy
    storage's). SQLite: its database write lock, taken by an update that
    changes nothing.
    """
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            keys = rules.advisory_lock_keys(names)
            calls = ", ".join("pg_advisory_xact_lock(%s)" for _ in keys)
            cursor.execute(f"SELECT {calls}", keys)
        elif conn.vendor == "sqlite":
            table = conn.ops.quote_name(UserSocialAuth._meta.db_table)
            cursor.execute(f"UPDATE {table} SET id = id WHERE id = -1")  # noqa: S608


class _LikeEscaped(Lookup):
    """``lhs LIKE rhs ESCAPE '\\'``: the pattern of :func:`key_candidates_pattern`."""

    lookup_name = "amazon_link_like"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


def _same_key_candidates(field: str, key: str) -> Any:
    """A filter met by every row whose ``field`` has :func:`email_key` ``key``
    (and rarely a few others: compare the keys in Python)."""
    if _connection().vendor == "postgresql":
        lowered = Func(
            F(field),
            Value(rules.ASCII_UPPER),
            Value(rules.ASCII_UPPER.lower()),
            function="translate",
        )
    else:
        lowered = Lower(F(field))
    return _LikeEscaped(lowered, Value(rules.key_candidates_pattern(key)))


# -- storage.user -------------------------------------------------------------------


class DjangoUserStorage(rules.UnlinkRules, UserMixin):
    """``storage.user`` on social_django's ``UserSocialAuth`` and the app's user model
    (``AUTH_USER_MODEL``): :class:`~social_amazon_link.storage_contract.UserStorage`.

    Links are social_django's ``UserSocialAuth`` rows (their ``set_extra_data``
    saves). :meth:`get_user` finds active accounts only, as Django's own
    backends do (``SOCIAL_AUTH_ACTIVE_USERS_FILTER`` as social_django reads it),
    so that a deactivated account's session ends; the email match includes them.
    """

    model: ClassVar[type[Any]] = UserSocialAuth

    @classmethod
    def user_model(cls) -> type[Any]:
        model: type[Any] = UserSocialAuth._meta.get_field("user").remote_field.model
        return model

    @classmethod
    def username_field(cls) -> str:
        return str(getattr(cls.user_model(), "USERNAME_FIELD", "username"))

    @classmethod
    def _email_field(cls) -> str:
        return str(getattr(cls.user_model(), "EMAIL_FIELD", "email"))

    @classmethod
    def username_max_length(cls) -> int:
        return cls.field_max_length(cls.username_field()) or 150

    @classmethod
    def field_max_length(cls, field: str) -> int | None:
        """The ``max_length`` of the user model's field; None when it has none."""
        try:
            found = cls.user_model()._meta.get_field(field)
        except FieldDoesNotExist:
            return None
        length = getattr(found, "max_length", None)
        return int(length) if length else None

    @classmethod
    def get_username(cls, user: Any) -> str:
        return str(getattr(user, cls.username_field()))

    @classmethod
    def _users(cls) -> Any:
        return cls.user_model()._default_manager.all()

    @classmethod
    def user_exists(cls, *args: Any, **kwargs: Any) -> bool:
        """Whether a user has these values; the username compared as emails are
        (:func:`email_key`, on every database, non-ASCII included)."""
        query = cls._users()
        username_key = None
        for field, value in kwargs.items():
            if isinstance(value, str) and not storable(value):
                return False  # no row can hold it
            name = cls.username_field() if field == "username" else field
            if field == "username" and isinstance(value, str):
                username_key = email_key(value)
                query = query.filter(_same_key_candidates(name, username_key))
            else:
                query = query.filter(**{name: value})
        if username_key is None:
            return bool(query.exists())
        return any(email_key(cls.get_username(user)) == username_key for user in query)

    @classmethod
    def create_user(cls, *args: Any, **kwargs: Any) -> Any:
        """Insert the user in a transaction the link's write commits (or this
        storage's rollback undoes): no account without its link."""
        if "username" in kwargs and cls.username_field() != "username":
            kwargs[cls.username_field()] = kwargs.pop("username")
        conn = _connection()
        _begin(conn)
        manager = cls.user_model()._default_manager
        try:
            with transaction.atomic(using=conn.alias):
                if callable(getattr(manager, "create_user", None)):
                    return manager.create_user(*args, **kwargs)
                return manager.create(**kwargs)
        except IntegrityError as error:
            _finish(conn, commit=False)
            raise AuthAssociationError(
                None, "username or email taken", code="username_in_use", stage="pipeline"
            ) from error
        except BaseException:
            _finish(conn, commit=False)
            raise

    @classmethod
    def lock_identity(cls, provider: str, uid: str, email: str | None = None) -> None:
        """Serialise making a new account for one identity, and one email (by
        :func:`email_key`), until the account and its link are committed (or the
        app's transaction ends). PostgreSQL: advisory locks, the identity's then
        the email's; SQLite: its write lock."""
        conn = _connection()
        _begin(conn)
        _lock(conn, rules.identity_lock_names(provider, uid, email))

    @classmethod
    def get_user(cls, pk: Any) -> Any:
        if pk is None:
            return None
        active = getattr(settings, "SOCIAL_AUTH_ACTIVE_USERS_FILTER", None)
        if active is None:
            active = {"is_active": True} if _has_field(cls.user_model(), "is_active") else {}
        try:
            return cls._users().filter(pk=pk, **active).first()
        except (ValueError, TypeError, ValidationError):
            return None  # not a key of this model

    @classmethod
    def get_users_by_email(cls, email: str) -> list[Any]:
        """Every account with this email (inactive ones too), by :func:`email_key`."""
        if not email or not storable(email):
            return []
        field = cls._email_field()
        key = email_key(email.strip())
        query = cls._users().filter(_same_key_candidates(field, key))
        return [user for user in query if email_key(getattr(user, field) or "") == key]

    @classmethod
    def changed(cls, user: Any) -> None:
        with _writing():
            user.save()

    @classmethod
    def get_social_auth(cls, provider: str, uid: str, id_key: str | None = None) -> Any:
        query = UserSocialAuth.objects.select_related("user").filter(
            provider=provider, uid=str(uid)
        )
        if id_key is not None:
            query = query.filter(id_key=id_key)
        return query.first()

    @classmethod
    def get_social_auth_by_extra_data(
        cls, provider: str, key: str, value: str, id_key: str = ""
    ) -> Any:
        found = UserSocialAuth.get_social_auth_by_extra_data(  # type: ignore[no-untyped-call]
            provider, key, value, id_key
        )
        return found

    @classmethod
    def get_social_auth_for_user(
        cls, user: Any, provider: str | None = None, id: int | str | None = None
    ) -> list[Any]:
        """The user's links; only the one numbered ``id`` when given (any other
        spelling than the plain number is :class:`UnknownLink`)."""
        query = UserSocialAuth.objects.filter(user_id=user.pk)
        if provider:
            query = query.filter(provider=provider)
        if id is not None:
            query = query.filter(id=rules.parse_association_id(id))
        return list(query.order_by("id"))

    @classmethod
    def create_social_auth(cls, user: Any, uid: str, provider: str, id_key: str = "") -> Any:
        """Write the link and commit it with the account ``create_user`` added."""
        with _writing():
            return UserSocialAuth.objects.create(
                user=user, uid=str(uid), provider=provider, id_key=id_key
            )

    @classmethod
    def migrate_social_auth(
        cls, social: Any, uid: str, id_key: str, *, evidence_key: str | None = None
    ) -> Any:
        """Re-key a legacy link, re-checking its evidence under a row lock."""
        uid = str(uid)
        with _writing():
            locked = UserSocialAuth.objects.select_for_update().get(pk=social.pk)
            if evidence_key is not None and str(locked.extra_data.get(evidence_key)) != uid:
                raise IntegrityError("identifier evidence changed")
            others = UserSocialAuth.objects.filter(provider=locked.provider, uid=uid)
            if others.exclude(pk=locked.pk).exists():
                raise IntegrityError("identifier migration conflict")
            locked.uid = uid
            locked.id_key = id_key
            locked.save(update_fields=["uid", "id_key", "modified"])
        return locked

    @classmethod
    def _lock_links(cls, user: Any) -> None:
        """The user's unlink lock, held until :meth:`disconnect` commits."""
        conn = _connection()
        _begin(conn)
        _lock(conn, [f"links\0{user.pk}"])

    @classmethod
    def _refused_unlink(cls) -> None:
        _finish(_connection(), commit=False)

    @classmethod
    def disconnect(cls, entry: Any) -> None:
        with _writing():
            entry.delete()


def _has_field(model: type[Any], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


# -- storage.nonce, .association, .partial ------------------------------------------


class DjangoNonceStorage(NonceMixin):
    """Single-use values (OAuth2 ``state``) on social_django's ``Nonce``."""

    @classmethod
    def use(cls, server_url: str, timestamp: Any, salt: str) -> bool:
        """Record a nonce; False when it was recorded already (its unique key)."""
        recorded = False
        with suppress(IntegrityError), _writing():
            Nonce.objects.create(server_url=server_url, timestamp=int(timestamp), salt=salt)
            recorded = True
        return recorded

    @classmethod
    def get(cls, server_url: str, salt: str) -> Any:
        found = Nonce.objects.filter(server_url=server_url, salt=salt)
        return found.first() if storable(server_url) and storable(salt) else None

    @classmethod
    def delete(cls, nonce: Any) -> None:
        with _writing():
            nonce.delete()

    @classmethod
    def consume(cls, server_url: str, timestamp: int, salt: str) -> bool:
        """Delete the nonce in one statement: of two racing callbacks, one wins."""
        if not storable(server_url) or not storable(salt):
            return False
        with _writing():
            deleted, _ = Nonce.objects.filter(
                server_url=server_url, timestamp=int(timestamp), salt=salt
            ).delete()
        return bool(deleted == 1)


class DjangoAssociationStorage(AssociationMixin):
    """OpenID associations (unused by Amazon) on social_django's ``Association``."""

    @classmethod
    def store(cls, server_url: str, association: Any) -> None:
        with _writing():
            row = Association.objects.filter(
                server_url=server_url, handle=association.handle
            ).first() or Association(server_url=server_url, handle=association.handle)
            row.secret = base64.encodebytes(association.secret).decode()
            row.issued = association.issued
            row.lifetime = association.lifetime
            row.assoc_type = association.assoc_type
            row.save()

    @classmethod
    def get(cls, server_url: str | None = None, handle: str | None = None) -> list[Any]:
        query = Association.objects.all()
        if server_url is not None:
            query = query.filter(server_url=server_url)
        if handle is not None:
            query = query.filter(handle=handle)
        return list(query)

    @classmethod
    def remove(cls, ids_to_delete: list[int]) -> None:
        with _writing():
            Association.objects.filter(pk__in=ids_to_delete).delete()


class DjangoPartialStorage(PartialMixin):
    """Paused pipelines on social_django's ``Partial``."""

    @classmethod
    def prepare(cls, backend: str, next_step: int, data: dict[str, Any]) -> Any:
        return Partial.prepare(backend, next_step, data)

    @classmethod
    def store(cls, partial: Any) -> Any:
        with _writing():
            partial.save()
        return partial

    @classmethod
    def load(cls, token: str) -> Any:
        """The partial, as a copy: what the caller writes into it is never saved."""
        if not token or not storable(token):
            return None
        return Partial.objects.filter(token=token).first()

    @classmethod
    def destroy(cls, token: str) -> None:
        if not token or not storable(token):
            return
        with _writing():
            Partial.objects.filter(token=token).delete()


# -- storage.code -------------------------------------------------------------------


class DjangoEmailCode(rules.SentCode):
    """A one-time code as the person received it: the plain ``code``, never stored."""

    def save(self) -> None:
        """Only ``verified`` changes (social-core's ``verify()``); the digest stays."""
        with _writing():
            Code.objects.filter(pk=self.id).update(verified=self.verified)


class DjangoCodeStorage(CodeMixin):
    """Emailed one-time codes on social_django's ``Code``, kept as keyed hashes only.

    The ``code`` column holds :meth:`digest` of the code (an HMAC under a key
    derived from ``SECRET_KEY``), as the SQLAlchemy storage's does.
    """

    @staticmethod
    def normal_code(code: str) -> str:
        return rules.normal_code(code)

    @staticmethod
    def digest(code: str) -> str:
        return rules.keyed_code_digest(settings.SECRET_KEY, code)

    @classmethod
    def make_code(cls, email: str) -> DjangoEmailCode:
        for _ in range(5):  # two live codes with one digest: practically never
            code = rules.generate_code()
            try:
                with _writing():
                    row = Code.objects.create(email=email, code=cls.digest(code), verified=False)
            except IntegrityError:
                continue
            return DjangoEmailCode(row, code)
        raise RuntimeError("could not store a new one-time code")

    @classmethod
    def get_code(cls, code: str) -> DjangoEmailCode | None:
        code = rules.normal_code(code)
        if not code or not storable(code):
            return None
        row = Code.objects.filter(code=cls.digest(code)).first()
        return DjangoEmailCode(row, code) if row is not None else None

    @classmethod
    def sent_since(cls, email: str, since: datetime) -> list[datetime]:
        """When codes were sent to ``email`` (by :func:`email_key`) since ``since``, in UTC."""
        if not email or not storable(email):
            return []
        key = email_key(email.strip())
        rows = (
            Code.objects.filter(_same_key_candidates("email", key), timestamp__gte=since)
            .order_by("timestamp")
            .values_list("timestamp", "email")
        )
        sent = [when for when, address in rows if email_key(address) == key]
        return [t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC) for t in sent]


# -- storage.link_attempts, .link_events --------------------------------------------


class DjangoPasswordAttempts(rules.AttemptCounterRules):
    """Wrong-password counters per account and door, shared by every process.

    The SQLAlchemy storage's algorithm (see
    :class:`~social_amazon_link.sqlalchemy_storage.SQLAlchemyPasswordAttempts`):
    a try is reserved by one conditional ``UPDATE``, so however many requests
    race, at most ``max_attempts`` are checked before the lock. Committed on
    their own (see the module's docstring).
    """

    @classmethod
    def _reserve(
        cls, user_id: Any, max_attempts: int, lockout_seconds: int, now: int | None, scope: str
    ) -> Reservation:
        now = int(time.time()) if now is None else now
        conn = _counting_connection()
        rows = PasswordAttempts.objects.using(conn.alias).filter(user_id=user_id, scope=scope)
        if not rows.exists():
            try:
                with _writing(conn):
                    PasswordAttempts.objects.using(conn.alias).create(user_id=user_id, scope=scope)
            except IntegrityError:
                pass  # another request created it first
        with _writing(conn):
            # A lock that has run out, or failures older than the lockout, start again.
            rows.filter(
                Q(locked_until__gt=0, locked_until__lte=now)
                | Q(locked_until=0, last_failure_at__lt=now - lockout_seconds)
            ).update(failures=0, locked_until=0)
            rows.filter(pending__gt=0, last_failure_at__lt=now - rules.STALE_TRY_SECONDS).update(
                pending=0
            )
            reserved = rows.filter(
                locked_until=0, failures__lt=Value(max_attempts) - F("pending")
            ).update(pending=F("pending") + 1, last_failure_at=now)
            state = rows.values("failures", "locked_until", "last_failure_at").get()
        if reserved:
            return Reservation(allowed=True, failures=int(state["failures"]))
        return rules.refusal(
            failures=int(state["failures"]),
            locked_until=int(state["locked_until"]),
            last_failure_at=int(state["last_failure_at"]),
            max_attempts=max_attempts,
            lockout_seconds=lockout_seconds,
            now=now,
        )

    @classmethod
    def _fail(
        cls, user_id: Any, scope: str, max_attempts: int, lockout_seconds: int, now: int
    ) -> int:
        conn = _counting_connection()
        rows = PasswordAttempts.objects.using(conn.alias).filter(user_id=user_id, scope=scope)
        with _writing(conn):
            # The update holds the row (or SQLite's write lock) until the commit:
            # the count read next is this try's.
            rows.update(
                pending=_one_less_pending(),
                failures=F("failures") + 1,
                last_failure_at=now,
                locked_until=Case(
                    When(failures__gte=max_attempts - 1, then=Value(now + lockout_seconds + 1)),
                    default=F("locked_until"),
                ),
            )
            failures = rows.values_list("failures", flat=True).first()
        return int(failures or 0)

    @classmethod
    def _settle(cls, user_id: Any, scope: str, **values: Any) -> None:
        conn = _counting_connection()
        with _writing(conn):
            PasswordAttempts.objects.using(conn.alias).filter(user_id=user_id, scope=scope).update(
                pending=_one_less_pending(), **values
            )


def _one_less_pending() -> Any:
    """``pending`` after a reported try: one less, never below zero."""
    return Case(When(pending__gt=0, then=F("pending") - 1), default=Value(0))


class DjangoLinkEvents(rules.EventLogRules):
    """The linking flow's security events (``amazon_link_events``), committed on their own."""

    @classmethod
    def _add(cls, row: dict[str, Any]) -> None:
        _write_event(lambda alias: LinkEvent.objects.using(alias).create(**row))

    @classmethod
    def _add_repeat(cls, row: dict[str, Any], since: datetime, lock_name: str) -> bool:
        def write(alias: str) -> bool:
            _lock(connections[alias], [lock_name])
            rows = LinkEvent.objects.using(alias).filter(
                user_id=row["user_id"], event=row["event"], detail=row["detail"], created__gte=since
            )
            latest = rows.aggregate(latest=Max("id"))["latest"]
            if latest is not None and rows.filter(id=latest).update(repeats=F("repeats") + 1):
                return False
            LinkEvent.objects.using(alias).create(**row)
            return True

        return _write_event(write)

    @classmethod
    def on_commit(cls, callback: Callable[[], Any]) -> None:
        """Run ``callback`` once the event this thread wrote last is committed: at
        once when it is (outside a transaction, or through the second
        connection), else when the app's transaction commits; never when that
        transaction rolls back (the event is gone with it)."""
        alias = getattr(_last_event, "alias", None) or _connection().alias
        if alias.endswith(OWN_ALIAS_SUFFIX):
            callback()
        else:
            transaction.on_commit(callback, using=alias)

    @classmethod
    def for_user(cls, user_id: Any, limit: int = 20) -> list[Any]:
        rows = LinkEvent.objects.filter(user_id=user_id).order_by("-created", "-id")
        return list(rows[:limit])


Written = TypeVar("Written")

#: The connection alias this thread's last event was written on (for ``on_commit``).
_last_event = threading.local()


def _write_event(write: Callable[[str], Written]) -> Written:
    """``write(alias)`` committed on its own; for an account the second
    connection cannot see yet (made in the app's open transaction), with it."""
    conn = _counting_connection()
    try:
        with _writing(conn):
            written = write(conn.alias)
    except IntegrityError:
        if conn is _connection():
            raise
        conn = _connection()
        with _writing(conn):
            written = write(conn.alias)
    _last_event.alias = conn.alias
    return written


# -- the storage --------------------------------------------------------------------


class DjangoStorage(rules.StorageRules):
    """``SOCIAL_AUTH_STORAGE``: the storage contract on social_django's models and this app's.

    Implements :class:`~social_amazon_link.storage_contract.Storage`
    (``tests/test_storage_contract.py`` runs the conformance suite on it).
    """

    user = DjangoUserStorage
    nonce = DjangoNonceStorage
    association = DjangoAssociationStorage
    code = DjangoCodeStorage
    partial = DjangoPartialStorage
    link_attempts = DjangoPasswordAttempts
    link_events = DjangoLinkEvents

    integrity_error = IntegrityError

    @staticmethod
    def _unavailable_reason(error: BaseException) -> str | None:
        """Why Django's ``error`` means the database is out of reach, or None."""
        cause = error.__cause__
        if isinstance(cause, sqlite3.Error):
            return rules.sqlite_unavailable_reason(cause)
        if isinstance(error, OperationalError):
            return rules.sqlstate_reason("operational", cause)
        if isinstance(error, InterfaceError):
            return rules.sqlstate_reason("interface", cause)
        return None

    @classmethod
    def end_transaction(cls) -> None:
        """Commit the transaction this storage opened (a lock taken, an account
        added), keeping loaded objects. The app's own transaction
        (``ATOMIC_REQUESTS``) is the app's to end: it is left as it is."""
        _finish(_connection(), commit=True)

    @classmethod
    def abandon_transaction(cls) -> None:
        """On a database out of reach: roll back the transaction this storage
        opened (nothing of it is written; the connection is left usable, or
        closed when the server is gone), and end the app's own by closing the
        connection (``ATOMIC_REQUESTS``: Django ends it once the view answers,
        and its commit, or its rollback and reconnect, on a database that is
        gone raise: Django's 500 in place of our 503). Closed inside it, the
        transaction is rolled back, and Django's end of it skips both."""
        conn = _connection()
        with suppress(DatabaseError):  # a connection gone: nothing to roll back
            _finish(conn, commit=False)
        if conn.in_atomic_block:
            with suppress(DatabaseError):
                conn.close()

    @classmethod
    def _purge(cls, before: PurgeBefore) -> dict[str, int]:
        with _writing():
            counts = {
                "nonces": Nonce.objects.filter(timestamp__lt=before.nonces),
                "partials": Partial.objects.filter(timestamp__lt=before.pauses),
                "codes": Code.objects.filter(timestamp__lt=before.pauses),
                "attempts": PasswordAttempts.objects.filter(
                    locked_until__lte=before.now,
                    # 0: reserve() made the row and is about to count on it.
                    last_failure_at__gt=0,
                    last_failure_at__lt=before.last_failure,
                ),
                "events": LinkEvent.objects.none()
                if before.events is None
                else LinkEvent.objects.filter(created__lt=before.events),
            }
            return {name: int(rows.delete()[0]) for name, rows in counts.items()}


if TYPE_CHECKING:
    # mypy checks that each class implements its part of the storage contract.
    from .. import storage_contract as contract

    _parts: tuple[
        contract.Storage,
        contract.UserStorage,
        contract.NonceStorage,
        contract.AssociationStorage,
        contract.CodeStorage,
        contract.PartialStorage,
        contract.LinkAttemptStorage,
        contract.LinkEventStorage,
    ] = (
        DjangoStorage,
        DjangoUserStorage,
        DjangoNonceStorage,
        DjangoAssociationStorage,
        DjangoCodeStorage,
        DjangoPartialStorage,
        DjangoPasswordAttempts,
        DjangoLinkEvents,
    )
