"""SQLAlchemy 2 storage for social-core 7, independent of any web framework.

social-storage-sqlalchemy (last released 2017) has no ``Nonce.consume``, no
``id_key`` and no ``migrate_social_auth``, which social-core 7's OAuth2 state
check and identifier handling need. This module implements the storage
contract (:mod:`social_amazon_link.storage_contract`: social-core's members
and this library's) on SQLAlchemy 2; :mod:`social_amazon_link.flask.storage`
binds it to a Flask app (another framework would bind it the same way).

The tables live in the app's own ``MetaData`` (the one its user model is
declared on), so the app's ``create_all()`` or migrations create them beside
its users table, with a real foreign key to it. Table names are those of
social-auth-app-flask-sqlalchemy, so existing rows are found where they were.

Writes commit at once, as social-core expects (it relies on a unique
``(provider, uid)`` and on single-use nonces being visible to every process).
"""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from social_core.exceptions import AuthAssociationError
from social_core.storage import (
    AssociationMixin,
    CodeMixin,
    NonceMixin,
    PartialMixin,
    UserMixin,
)
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    and_,
    case,
    delete,
    event,
    exc,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import Session, backref, mapped_column, relationship, scoped_session

from .pipelines.events import DEFAULT_EVENTS_MAX_AGE
from .storage_rules import (
    ASCII_UPPER,
    CODE_ALPHABET,
    CODE_LENGTH,
    MAX_ASSOCIATION_ID,
    STALE_TRY_SECONDS,
    AttemptCounterRules,
    EventLogRules,
    PurgeBefore,
    Reservation,
    SentCode,
    StorageRules,
    UnlinkRules,
    advisory_lock_keys,
    generate_code,
    identity_lock_names,
    key_candidates_pattern,
    keyed_code_digest,
    normal_code,
    parse_association_id,
    refusal,
    sqlite_unavailable_reason,
    sqlstate_reason,
)
from .text import email_key, storable

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "DEFAULT_EVENTS_MAX_AGE",
    "MAX_ASSOCIATION_ID",
    "SQLITE_BUSY_TIMEOUT",
    "EmailCode",
    "Reservation",
    "SQLAlchemyStorage",
    "SocialModels",
    "bind_secret",
    "bind_session",
    "code_digest",
    "configure_sqlite",
    "models_for",
    "parse_association_id",
    "use_models",
]

AnySession = Session | scoped_session[Session]
_session_provider: Callable[[], AnySession] | None = None


def bind_session(provider: Callable[[], AnySession]) -> None:
    """Tell the storage how to find the current session (set by the integration)."""
    global _session_provider
    _session_provider = provider


#: Seconds a SQLite connection waits for another's write lock before
#: "database is locked" (an OperationalError, as when any database is down).
SQLITE_BUSY_TIMEOUT = 5.0


def configure_sqlite(
    engine: Engine, *, wal: bool = True, busy_timeout: float = SQLITE_BUSY_TIMEOUT
) -> None:
    """Make an SQLite engine fit for several threads or processes (nothing on
    other databases); call it once, right after ``create_engine``.

    On each new connection: ``PRAGMA busy_timeout``, how long to wait for the
    write lock (then SQLite's "database is locked", an ``OperationalError``:
    answered as an unavailable database, never served as a 500 of its own);
    and, for a database file, ``PRAGMA journal_mode=WAL`` (kept in the file):
    readers no longer block the writer nor it them, so the write lock is held
    for as long as the writes take, with ``PRAGMA synchronous=NORMAL`` (a
    commit is not flushed to disk one by one: a power cut, not a crash of the
    app, may lose the last sign-ins' writes, never half of one). ``wal=False``
    leaves the journal and synchronous settings alone (a file on a network
    share, where WAL does not work). SQLite stays one writer at a time: fine
    for one process, or a few at a low sign-in rate; past that, PostgreSQL.
    """
    if engine.dialect.name != "sqlite":
        return
    file_based = engine.url.database not in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if wal and file_based:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()


def _session() -> AnySession:
    if _session_provider is None:
        raise RuntimeError("no session bound: call init_social(app, session) first")
    return _session_provider()


def _plain(session: AnySession) -> Session:
    """The session itself, behind a ``scoped_session``."""
    return session() if isinstance(session, scoped_session) else session


def _now() -> datetime:
    return datetime.now(UTC)


def _same_key_candidates(column: Any, key: str) -> Any:
    """A SQL condition met by every value (an address, a username) whose
    :func:`email_key` is ``key`` (and rarely by a few others: the caller
    compares the keys in Python): :func:`.storage_rules.key_candidates_pattern`
    over the column with its ASCII letters lowered.
    """
    pattern = key_candidates_pattern(key)
    lowered = (
        func.translate(column, ASCII_UPPER, ASCII_UPPER.lower())
        if _session().get_bind().dialect.name == "postgresql"
        else func.lower(column)
    )
    return lowered.like(pattern, escape="\\")


def _lock(names: list[str], table: Any) -> None:
    """Locks on ``names``, taken in order, until the current transaction ends
    (``table``: one with an ``id`` column, which the SQLite branch may write to).

    PostgreSQL: a transaction advisory lock on a hash of each name, in one
    statement. SQLite: its database write lock, taken by a write statement
    that changes nothing (with WAL, readers go on meanwhile; see
    :func:`configure_sqlite`).
    """
    session = _session()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        keys = advisory_lock_keys(names)
        session.execute(select(*(func.pg_advisory_xact_lock(key) for key in keys)))
    elif dialect == "sqlite":
        if getattr(session.connection().connection.dbapi_connection, "in_transaction", False):
            return  # a write of this transaction holds the lock already
        column = table.c.id
        session.execute(update(table).where(column == -1).values({column.name: column}))


@contextmanager
def _writing(*, expire: bool = True) -> Iterator[AnySession]:
    """The current session, committed at the end of the block.

    On any error it is rolled back instead, so the session stays usable and
    nothing of the block is half-written. ``expire=False`` keeps the loaded
    objects as they are after the commit, instead of reloading each on its
    next use (for a block that only adds or updates objects it holds).
    """
    session = _session()
    own = _plain(session)
    expire_on_commit = own.expire_on_commit
    try:
        yield session
        own.expire_on_commit = expire_on_commit and expire
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        own.expire_on_commit = expire_on_commit


def _commit(instance: Any = None) -> None:
    """Add ``instance`` (when given) and commit, without expiring the session.

    What was committed is what the objects in memory hold, so they are not
    expired: a first sign-in would otherwise reload its new user and link
    after each of its commits (four more ``SELECT`` statements).
    """
    with _writing(expire=False) as session:
        if instance is not None:
            session.add(instance)


class _Saved:
    def save(self) -> None:
        _commit(self)


class SQLAlchemyUserSocialAuth(_Saved, UnlinkRules, UserMixin):
    """A link from a local user to a provider identity (``provider``, ``uid``).

    The class is ``storage.user``: :class:`~.storage_contract.UserStorage`.
    """

    _user_model: ClassVar[type[Any]]

    def set_extra_data(self, extra_data: dict[str, Any] | None = None) -> bool:
        """Merge and save; social-core's ``load_extra_data`` relies on the storage saving.

        A returning user whose data did not change costs no write: a new
        ``auth_time`` alone is not saved (it then tells when the link's data
        last changed).
        """
        if extra_data and self.extra_data:
            current = self.extra_data
            if all(current.get(k) == v for k, v in extra_data.items() if k != "auth_time"):
                return False
        changed = super().set_extra_data(extra_data)
        if changed:
            _commit(self)
        return changed

    @classmethod
    def user_model(cls) -> type[Any]:
        return cls._user_model

    @classmethod
    def username_max_length(cls) -> int:
        return cls.field_max_length("username") or 150

    @classmethod
    def field_max_length(cls, field: str) -> int | None:
        """The length limit of the user model's column ``field``, if it has one."""
        column = inspect(cls._user_model).columns.get(field)
        length = getattr(getattr(column, "type", None), "length", None)
        return int(length) if length else None

    @classmethod
    def changed(cls, user: Any) -> None:
        _commit(user)

    @classmethod
    def get_username(cls, user: Any) -> str:
        return str(user.username)

    @classmethod
    def user_exists(cls, *args: Any, **kwargs: Any) -> bool:
        """Whether a user has these values; a username is compared as emails are
        (:func:`email_key`, on every database, non-ASCII included), so "Alan" is
        taken when "alan" is, and "Ülrich" when "ülrich" is (one person could
        not tell them apart)."""
        model = cls._user_model
        query = select(model)
        username_key = None
        for field, value in kwargs.items():
            if isinstance(value, str) and not storable(value):
                return False  # no row can hold it
            if field == "username" and isinstance(value, str):
                username_key = email_key(value)
                query = query.where(_same_key_candidates(model.username, username_key))
            else:
                query = query.filter_by(**{field: value})
        return any(
            username_key is None or email_key(user.username) == username_key
            for user in _session().scalars(query)
        )

    @classmethod
    def create_user(cls, *args: Any, **kwargs: Any) -> Any:
        """Insert the user without committing: the link that social-core's
        ``associate_user`` writes next commits both, or neither (no account is
        left without its link when the link fails)."""
        session = _session()
        user = cls._user_model(**kwargs)
        try:
            session.add(user)
            session.flush()
        except IntegrityError as error:
            session.rollback()
            raise AuthAssociationError(
                None, "username or email taken", code="username_in_use", stage="pipeline"
            ) from error
        return user

    @classmethod
    def lock_identity(cls, provider: str, uid: str, email: str | None = None) -> None:
        """Serialise making a new account for one identity, and for one email
        (by :func:`email_key`), until the next commit.

        Fifty simultaneous first sign-ins of one Amazon account must make one
        account, and so must twelve of different Amazon accounts with one new
        email: the first holds these locks until its user and link are
        committed; the others, looking again under them, find that link or
        that account. Taken only once the lookups say a new account will be
        written (not for a returning user, nor for a password prompt).
        PostgreSQL: transaction advisory locks, the identity's then the
        email's, in one statement (always in that order: no two sign-ins wait
        on each other). SQLite: its database write lock.
        """
        _lock(identity_lock_names(provider, uid, email), cls.__table__)

    @classmethod
    def get_user(cls, pk: Any) -> Any:
        if pk is None:
            return None
        return _session().get(cls._user_model, pk)

    @classmethod
    def get_users_by_email(cls, email: str) -> list[Any]:
        """Every local account with this email (inactive ones too), the same by
        :func:`~social_amazon_link.text.email_key` on every database."""
        if not email or not storable(email):
            return []
        model = cls._user_model
        key = email_key(email.strip())
        query = select(model).where(_same_key_candidates(model.email, key))
        return [user for user in _session().scalars(query) if email_key(user.email) == key]

    @classmethod
    def get_social_auth(cls, provider: str, uid: str, id_key: str | None = None) -> Any:
        query = select(cls).where(cls.provider == provider, cls.uid == str(uid))
        if id_key is not None:
            query = query.where(cls.id_key == id_key)
        return _session().scalars(query).first()

    @classmethod
    def get_social_auth_by_extra_data(
        cls, provider: str, key: str, value: str, id_key: str = ""
    ) -> Any:
        query = select(cls).where(
            cls.provider == provider,
            cls.id_key == id_key,
            cls.extra_data[key].as_string() == str(value),
        )
        matches = list(_session().scalars(query.limit(2)))
        if len(matches) > 1:
            raise ValueError("Multiple social-auth associations matched extra data")
        return matches[0] if matches else None

    @classmethod
    def get_social_auth_for_user(
        cls,
        user: Any,
        provider: str | None = None,
        id: int | str | None = None,
    ) -> list[Any]:
        """The user's links; only the one numbered ``id`` when it is given (any
        spelling but the canonical one, or 0, is :class:`UnknownLink`: never
        "every link", never a database error)."""
        query = select(cls).where(cls.user_id == user.id)
        if provider:
            query = query.where(cls.provider == provider)
        if id is not None:
            query = query.where(cls.id == parse_association_id(id))
        return list(_session().scalars(query))

    @classmethod
    def create_social_auth(cls, user: Any, uid: str, provider: str, id_key: str = "") -> Any:
        social = cls(user=user, uid=str(uid), provider=provider, id_key=id_key)
        _commit(social)
        return social

    @classmethod
    def migrate_social_auth(
        cls, social: Any, uid: str, id_key: str, *, evidence_key: str | None = None
    ) -> Any:
        """Re-key a legacy row, re-checking its evidence under a row lock."""
        uid = str(uid)
        with _writing() as session:
            # OF the link's table alone: its user is loaded by an outer join,
            # which PostgreSQL refuses to lock ("nullable side of an outer join").
            locked = session.scalars(
                select(cls).where(cls.id == social.id).with_for_update(of=cls)
            ).one()
            if evidence_key is not None and str(locked.extra_data.get(evidence_key)) != uid:
                raise IntegrityError("identifier evidence changed", None, ValueError())
            conflict = session.scalars(
                select(cls.id).where(
                    cls.provider == locked.provider,
                    cls.uid == uid,
                    cls.id != locked.id,
                )
            ).first()
            if conflict is not None:
                raise IntegrityError("identifier migration conflict", None, ValueError())
            locked.uid = uid
            locked.id_key = id_key
            locked.modified = _now()
        return locked

    @classmethod
    def _lock_links(cls, user: Any) -> None:
        """The user's unlink lock, until the removal commits."""
        _lock([f"links\0{user.id}"], cls.__table__)

    @classmethod
    def disconnect(cls, entry: Any) -> None:
        with _writing() as session:
            session.delete(entry)


class SQLAlchemyNonce(_Saved, NonceMixin):
    """Single-use values (OAuth2 ``state``): :class:`~.storage_contract.NonceStorage`."""

    @classmethod
    def use(cls, server_url: str, timestamp: Any, salt: str) -> bool:
        """Record a nonce; False when it was already recorded."""
        nonce = cls(server_url=server_url, timestamp=int(timestamp), salt=salt)
        try:
            _commit(nonce)
        except IntegrityError:
            return False
        return True

    @classmethod
    def get(cls, server_url: str, salt: str) -> Any:
        if not storable(server_url) or not storable(salt):
            return None
        query = select(cls).where(cls.server_url == server_url, cls.salt == salt)
        return _session().scalars(query).first()

    @classmethod
    def delete(cls, nonce: Any) -> None:
        with _writing() as session:
            session.delete(nonce)

    @classmethod
    def consume(cls, server_url: str, timestamp: int, salt: str) -> bool:
        """Delete the nonce in one statement: of two racing callbacks, one wins."""
        if not storable(server_url) or not storable(salt):
            return False  # from the request, and no nonce holds it
        with _writing() as session:
            result = session.execute(
                delete(cls).where(
                    cls.server_url == server_url,
                    cls.timestamp == int(timestamp),
                    cls.salt == salt,
                )
            )
        return getattr(result, "rowcount", 0) == 1


class SQLAlchemyAssociation(_Saved, AssociationMixin):
    """OpenID associations (unused by Amazon): :class:`~.storage_contract.AssociationStorage`."""

    @classmethod
    def store(cls, server_url: str, association: Any) -> None:
        query = select(cls).where(
            cls.server_url == server_url,
            cls.handle == association.handle,
        )
        assoc = _session().scalars(query).first() or cls(
            server_url=server_url, handle=association.handle
        )
        assoc.secret = base64.encodebytes(association.secret).decode()
        assoc.issued = association.issued
        assoc.lifetime = association.lifetime
        assoc.assoc_type = association.assoc_type
        _commit(assoc)

    @classmethod
    def get(cls, server_url: str | None = None, handle: str | None = None) -> list[Any]:
        query = select(cls)
        if server_url is not None:
            query = query.where(cls.server_url == server_url)
        if handle is not None:
            query = query.where(cls.handle == handle)
        return list(_session().scalars(query))

    @classmethod
    def remove(cls, ids_to_delete: list[int]) -> None:
        with _writing() as session:
            session.execute(delete(cls).where(cls.id.in_(ids_to_delete)))


class SQLAlchemyCode(_Saved, CodeMixin):
    """One-time codes sent by email (social-core's email validation), kept as keyed hashes.

    :class:`~.storage_contract.CodeStorage`.

    The table holds ``code_digest(code)`` only: an HMAC-SHA256 of the code
    (its first 128 bits, hex) under a key derived from the app's secret
    (``SECRET_KEY``, bound by the integration, :func:`bind_secret`). Whoever
    reads the table cannot type a code from it, nor test guesses against it
    without the key. :meth:`make_code` and :meth:`get_code` hand out an
    :class:`EmailCode`, which carries the plain code to the sender (social-core
    passes it to ``EMAIL_VALIDATION_FUNCTION``, which reads ``code.code``) and
    to social-core's ``validate_email``; it is not mapped, so no flush can
    write that code to the database.

    A code is :data:`CODE_LENGTH` characters of :data:`CODE_ALPHABET` (no 0/O,
    1/I/L to mistake for each other): 31**8, about 8.5e11 codes. A guess must
    be the one code its pause sent, and each costs a try: at most
    ``LINK_MAX_PASSWORD_ATTEMPTS`` (5) per ``LINK_LOCKOUT_SECONDS`` (900 s) for
    the account, so about 175,000 guesses a year, a chance of 2e-7 a year.
    """

    @staticmethod
    def normal_code(code: str) -> str:
        """A code as typed, as it was sent: upper case, without spaces or dashes."""
        return normal_code(code)

    @staticmethod
    def digest(code: str) -> str:
        """The keyed hash kept of ``code`` (by this table, and by the pause that sent it)."""
        return code_digest(code)

    @classmethod
    def generate_code(cls) -> str:
        return generate_code()

    @classmethod
    def make_code(cls, email: str) -> EmailCode:
        """Store a new code's digest for ``email``; the plain code only in the answer."""
        for _ in range(5):  # two live codes with one digest: practically never
            code = cls.generate_code()
            row = cls(email=email, code=code_digest(code), verified=False, timestamp=_now())
            try:
                _commit(row)
            except IntegrityError:
                continue
            return EmailCode(row, code)
        raise RuntimeError("could not store a new one-time code")

    @classmethod
    def get_code(cls, code: str) -> EmailCode | None:
        """The code as typed (any case, spaces or dashes), or None when no row has its digest."""
        code = normal_code(code)
        if not code or not storable(code):
            return None
        row = _session().scalars(select(cls).where(cls.code == code_digest(code))).first()
        return EmailCode(row, code) if row is not None else None

    @classmethod
    def sent_since(cls, email: str, since: datetime) -> list[datetime]:
        """When codes were sent to ``email`` since ``since``, oldest first (in UTC)."""
        if not email or not storable(email):
            return []
        table = cls.__table__
        key = email_key(email.strip())
        query = (
            select(table.c.timestamp, table.c.email)
            .where(_same_key_candidates(table.c.email, key), table.c.timestamp >= since)
            .order_by(table.c.timestamp)
        )
        sent = [row.timestamp for row in _session().execute(query) if email_key(row.email) == key]
        # SQLite hands back naive datetimes; they were written in UTC.
        return [t if t.tzinfo else t.replace(tzinfo=UTC) for t in sent]


class EmailCode(SentCode):
    """A one-time code as the person received it: the plain ``code``, never mapped or stored."""

    def save(self) -> None:
        """Only ``verified`` changes (social-core's ``verify()``); the digest stays."""
        with _writing() as session:
            session.execute(
                update(self._model.__table__)
                .where(self._model.__table__.c.id == self.id)
                .values(verified=self.verified)
            )


_secret_provider: Callable[[], str | bytes | None] | None = None


def bind_secret(provider: Callable[[], str | bytes | None]) -> None:
    """Tell the storage where the app's secret is (``SECRET_KEY``; set by the integration)."""
    global _secret_provider
    _secret_provider = provider


def code_digest(code: str) -> str:
    """The keyed hash kept of a code (the table's, and a pause's): 128 bits, hex."""
    return keyed_code_digest(_secret_provider() if _secret_provider is not None else None, code)


class SQLAlchemyPartial(_Saved, PartialMixin):
    """A paused pipeline, resumed by its token: :class:`~.storage_contract.PartialStorage`."""

    @classmethod
    def load(cls, token: str) -> Any:
        """A detached snapshot: social-core writes the resuming request (a
        password, say) into the loaded object, and that must never be flushed
        to the database by some later commit."""
        if not token or not storable(token):
            return None
        session = _session()
        partial = session.scalars(select(cls).where(cls.token == token)).first()
        if partial is not None:
            session.expunge(partial)
        return partial

    @classmethod
    def destroy(cls, token: str) -> None:
        if not token or not storable(token):
            return
        with _writing() as session:
            session.execute(delete(cls).where(cls.token == token))


class SQLAlchemyPasswordAttempts(AttemptCounterRules):
    """Wrong-password counters per local account, shared by every app process
    (:class:`~.storage_contract.LinkAttemptStorage`).

    The algorithm is :class:`.storage_rules.AttemptCounterRules`'s, in
    conditional ``UPDATE`` statements.
    """

    @classmethod
    def _reserve(
        cls, user_id: Any, max_attempts: int, lockout_seconds: int, now: int | None, scope: str
    ) -> Reservation:
        now = int(time.time()) if now is None else now
        table = cls.__table__
        row = cls._counter(user_id, scope)
        if _session().get(cls, (user_id, scope)) is None:
            try:
                _commit(
                    cls(
                        user_id=user_id,
                        scope=scope,
                        failures=0,
                        pending=0,
                        last_failure_at=0,
                        locked_until=0,
                    )
                )
            except IntegrityError:
                pass  # another request created it first
        with _writing() as session:
            # A lock that has run out, or failures older than the lockout
            # (in whole seconds, so never sooner than asked), start the count again.
            session.execute(
                update(table)
                .where(
                    row,
                    or_(
                        and_(table.c.locked_until > 0, table.c.locked_until <= now),
                        and_(
                            table.c.locked_until == 0,
                            table.c.last_failure_at < now - lockout_seconds,
                        ),
                    ),
                )
                .values(failures=0, locked_until=0)
            )
            session.execute(
                update(table)
                .where(row, table.c.pending > 0, table.c.last_failure_at < now - STALE_TRY_SECONDS)
                .values(pending=0)
            )
            reserved = session.execute(
                update(table)
                .where(
                    row,
                    table.c.locked_until == 0,
                    table.c.failures + table.c.pending < max_attempts,
                )
                .values(pending=table.c.pending + 1, last_failure_at=now)
                .returning(table.c.failures)
            ).scalar()
            state = (
                None
                if reserved is not None
                else session.execute(
                    select(table.c.failures, table.c.locked_until, table.c.last_failure_at).where(
                        row
                    )
                ).one()
            )
        if state is None:
            return Reservation(allowed=True, failures=int(reserved or 0))
        return refusal(
            failures=int(state.failures),
            locked_until=int(state.locked_until),
            last_failure_at=int(state.last_failure_at),
            max_attempts=max_attempts,
            lockout_seconds=lockout_seconds,
            now=now,
        )

    @classmethod
    def _counter(cls, user_id: Any, scope: str) -> Any:
        """The row that counts ``user_id``'s tries at the door ``scope``."""
        table = cls.__table__
        return and_(table.c.user_id == user_id, table.c.scope == scope)

    @classmethod
    def _one_less_pending(cls) -> Any:
        """``pending`` after a reported try: one less, never below zero."""
        pending = cls.__table__.c.pending
        return case((pending > 0, pending - 1), else_=0)

    @classmethod
    def _fail(
        cls, user_id: Any, scope: str, max_attempts: int, lockout_seconds: int, now: int
    ) -> int:
        table = cls.__table__
        with _writing() as session:
            failures = session.execute(
                update(table)
                .where(cls._counter(user_id, scope))
                .values(
                    # In SET, the columns hold their values before this update.
                    pending=cls._one_less_pending(),
                    failures=table.c.failures + 1,
                    last_failure_at=now,
                    locked_until=case(
                        (table.c.failures + 1 >= max_attempts, now + lockout_seconds + 1),
                        else_=table.c.locked_until,
                    ),
                )
                .returning(table.c.failures)
            ).scalar()
        return int(failures or 0)

    @classmethod
    def _settle(cls, user_id: Any, scope: str, **values: Any) -> None:
        """End a reserved try (one less pending), setting ``values`` besides."""
        with _writing() as session:
            session.execute(
                update(cls.__table__)
                .where(cls._counter(user_id, scope))
                .values(pending=cls._one_less_pending(), **values)
            )


class SQLAlchemyLinkEvent(EventLogRules):
    """Security events of the linking flow, for the app to read and show.

    :class:`~.storage_contract.LinkEventStorage`.
    """

    @classmethod
    def _add(cls, row: dict[str, Any]) -> None:
        _commit(cls(**row))

    @classmethod
    def _add_repeat(cls, row: dict[str, Any], since: datetime, lock_name: str) -> bool:
        table = cls.__table__
        with _writing() as session:
            _lock([lock_name], table)
            latest = (
                select(func.max(table.c.id))
                .where(
                    table.c.user_id == row["user_id"],
                    table.c.event == row["event"],
                    table.c.detail == row["detail"],
                    table.c.created >= since,
                )
                .scalar_subquery()
            )
            counted = session.execute(
                update(table).where(table.c.id == latest).values(repeats=table.c.repeats + 1)
            )
            written = not getattr(counted, "rowcount", 0)
            if written:
                session.add(cls(**row))
        return written

    @classmethod
    def for_user(cls, user_id: Any, limit: int = 20) -> list[Any]:
        query = (
            select(cls)
            .where(cls.user_id == user_id)
            .order_by(cls.created.desc(), cls.id.desc())
            .limit(limit)
        )
        return list(_session().scalars(query))


class SQLAlchemyStorage(StorageRules):
    """The storage social-core uses; its models are set by :func:`use_models`.

    Implements :class:`~.storage_contract.Storage` (mypy checks it, at the end
    of this module; ``tests/test_storage_contract.py`` runs the conformance suite).
    """

    user: ClassVar[type[SQLAlchemyUserSocialAuth]] = SQLAlchemyUserSocialAuth
    nonce: ClassVar[type[SQLAlchemyNonce]] = SQLAlchemyNonce
    association: ClassVar[type[SQLAlchemyAssociation]] = SQLAlchemyAssociation
    code: ClassVar[type[SQLAlchemyCode]] = SQLAlchemyCode
    partial: ClassVar[type[SQLAlchemyPartial]] = SQLAlchemyPartial
    #: Beyond social-core's contract: the state the linking steps keep.
    link_attempts: ClassVar[type[SQLAlchemyPasswordAttempts]] = SQLAlchemyPasswordAttempts
    link_events: ClassVar[type[SQLAlchemyLinkEvent]] = SQLAlchemyLinkEvent

    integrity_error = IntegrityError

    @staticmethod
    def _unavailable_reason(exception: BaseException) -> str | None:
        return _unavailable_reason(exception)

    @classmethod
    def end_transaction(cls) -> None:
        """End the bound session's transaction, keeping the objects it loaded.

        The backend calls it before each call to Amazon: loading the
        signed-in user opened a transaction, which would otherwise hold its
        connection "idle in transaction" (with its snapshot and locks) for as
        long as Amazon takes. Committed as every write of this storage is.
        """
        if _plain(_session()).in_transaction():
            with _writing(expire=False):
                pass

    @classmethod
    def _purge(cls, before: PurgeBefore) -> dict[str, int]:
        attempts = cls.link_attempts.__table__
        with _writing() as session:
            nonces = session.execute(delete(cls.nonce).where(cls.nonce.timestamp < before.nonces))
            partials = session.execute(
                delete(cls.partial).where(cls.partial.timestamp < before.pauses)
            )
            # A column of the mapped subclass (mypy sees CodeMixin's plain attribute).
            codes = session.execute(delete(cls.code).where(cls.code.timestamp < before.pauses))  # type: ignore[operator]
            counters = session.execute(
                delete(attempts).where(
                    attempts.c.locked_until <= before.now,
                    # 0: reserve() created the row and is about to count
                    # on it (a second transaction); never pulled from under it.
                    attempts.c.last_failure_at > 0,
                    attempts.c.last_failure_at < before.last_failure,
                )
            )
            events = (
                session.execute(
                    delete(cls.link_events).where(cls.link_events.created < before.events)
                )
                if before.events is not None
                else None
            )
        return {
            "nonces": int(getattr(nonces, "rowcount", 0)),
            "partials": int(getattr(partials, "rowcount", 0)),
            "codes": int(getattr(codes, "rowcount", 0)),
            "attempts": int(getattr(counters, "rowcount", 0)),
            "events": int(getattr(events, "rowcount", 0)),
        }


def _unavailable_reason(error: BaseException) -> str | None:
    """Why ``error`` means the database is out of reach, or None when it does not."""
    if isinstance(error, exc.TimeoutError):
        return "pool_timeout"
    if not isinstance(error, exc.DBAPIError):
        return None
    if isinstance(error.orig, sqlite3.Error) and not error.connection_invalidated:
        return sqlite_unavailable_reason(error.orig)
    if error.connection_invalidated:
        kind = "disconnected"
    elif isinstance(error, exc.OperationalError):
        kind = "operational"
    elif isinstance(error, exc.InterfaceError):
        kind = "interface"
    else:
        return None
    return sqlstate_reason(kind, error.orig)


@dataclass(frozen=True)
class SocialModels:
    """The mapped classes created for one user model."""

    user: type[Any]
    nonce: type[Any]
    association: type[Any]
    code: type[Any]
    partial: type[Any]
    link_attempts: type[Any]
    link_events: type[Any]


_models_by_user_model: dict[type[Any], SocialModels] = {}


def _build_models(user_model: type[Any]) -> SocialModels:
    registry = user_model.registry
    user_pk = inspect(user_model).primary_key[0]

    @registry.mapped
    class UserSocialAuth(SQLAlchemyUserSocialAuth):
        __tablename__ = "social_auth_usersocialauth"
        __table_args__ = (
            UniqueConstraint("provider", "uid", name="social_auth_usersocialauth_provider_uid"),
        )
        _user_model = user_model
        id = mapped_column(Integer, primary_key=True)
        provider = mapped_column(String(32), nullable=False)
        uid = mapped_column(String(255), nullable=False)
        # social-core 7 records which response key the uid came from.
        id_key = mapped_column(String(64), nullable=False, default="", server_default="")
        extra_data = mapped_column(MutableDict.as_mutable(JSON), nullable=False, default=dict)
        user_id = mapped_column(ForeignKey(user_pk, ondelete="CASCADE"), nullable=False, index=True)
        created = mapped_column(DateTime(timezone=True), nullable=False, default=_now)
        modified = mapped_column(
            DateTime(timezone=True), nullable=False, default=_now, onupdate=_now
        )
        # Joined: a returning user's sign-in loads the link and its user in
        # one statement.
        user = relationship(
            user_model,
            lazy="joined",
            backref=backref("social_auth", cascade="all, delete-orphan", passive_deletes=True),
        )

    @registry.mapped
    class Nonce(SQLAlchemyNonce):
        __tablename__ = "social_auth_nonce"
        __table_args__ = (
            UniqueConstraint("server_url", "timestamp", "salt", name="social_auth_nonce_once"),
        )
        id = mapped_column(Integer, primary_key=True)
        server_url = mapped_column(String(255), nullable=False)
        timestamp = mapped_column(Integer, nullable=False)
        salt = mapped_column(String(65), nullable=False)

    @registry.mapped
    class Association(SQLAlchemyAssociation):
        __tablename__ = "social_auth_association"
        __table_args__ = (
            UniqueConstraint("server_url", "handle", name="social_auth_association_handle"),
        )
        id = mapped_column(Integer, primary_key=True)
        server_url = mapped_column(String(255), nullable=False)
        handle = mapped_column(String(255), nullable=False)
        secret = mapped_column(String(255), nullable=False)
        issued = mapped_column(Integer, nullable=False)
        lifetime = mapped_column(Integer, nullable=False)
        assoc_type = mapped_column(String(64), nullable=False)

    @registry.mapped
    class Code(SQLAlchemyCode):
        __tablename__ = "social_auth_code"
        id = mapped_column(Integer, primary_key=True)
        email = mapped_column(String(254), nullable=False)
        code = mapped_column(String(32), nullable=False, unique=True)
        verified = mapped_column(Boolean, nullable=False, default=False)
        timestamp = mapped_column(DateTime(timezone=True), nullable=False, default=_now)

    @registry.mapped
    class Partial(SQLAlchemyPartial):
        __tablename__ = "social_auth_partial"
        id = mapped_column(Integer, primary_key=True)
        token = mapped_column(String(32), nullable=False, unique=True)
        data = mapped_column(MutableDict.as_mutable(JSON), nullable=False, default=dict)
        next_step = mapped_column(Integer, nullable=False)
        backend = mapped_column(String(32), nullable=False)
        timestamp = mapped_column(DateTime(timezone=True), nullable=False, default=_now)

    @registry.mapped
    class PasswordAttempts(SQLAlchemyPasswordAttempts):
        __tablename__ = "amazon_link_password_attempts"
        user_id = mapped_column(ForeignKey(user_pk, ondelete="CASCADE"), primary_key=True)
        # Which door the count is for: "link" (this library's prompt), or the
        # app's own ("sign_in", say).
        scope = mapped_column(String(16), primary_key=True, default="link")
        failures = mapped_column(Integer, nullable=False, default=0)
        # Tries reserved and being checked right now.
        pending = mapped_column(Integer, nullable=False, default=0)
        # Epoch seconds: compared inside UPDATE statements on every database.
        last_failure_at = mapped_column(Integer, nullable=False, default=0)
        locked_until = mapped_column(Integer, nullable=False, default=0)

    @registry.mapped
    class LinkEvent(SQLAlchemyLinkEvent):
        __tablename__ = "amazon_link_events"
        id = mapped_column(Integer, primary_key=True)
        user_id = mapped_column(ForeignKey(user_pk, ondelete="SET NULL"), nullable=True, index=True)
        event = mapped_column(String(32), nullable=False)
        amazon_user_id = mapped_column(String(255), nullable=True)
        detail = mapped_column(String(200), nullable=False, default="")
        created = mapped_column(DateTime(timezone=True), nullable=False, default=_now)
        # The same event again since, counted here instead of written again
        # (refusals while locked): see record_repeat.
        repeats = mapped_column(Integer, nullable=False, default=0, server_default="0")

    return SocialModels(
        UserSocialAuth, Nonce, Association, Code, Partial, PasswordAttempts, LinkEvent
    )


def models_for(user_model: type[Any]) -> SocialModels:
    """The social tables mapped beside ``user_model`` (created once per model)."""
    models = _models_by_user_model.get(user_model)
    if models is None:
        models = _models_by_user_model[user_model] = _build_models(user_model)
    return models


def use_models(storage: type[SQLAlchemyStorage], models: SocialModels) -> None:
    """Make ``storage`` (the class named by ``SOCIAL_AUTH_STORAGE``) use ``models``."""
    storage.user = models.user
    storage.nonce = models.nonce
    storage.association = models.association
    storage.code = models.code
    storage.partial = models.partial
    storage.link_attempts = models.link_attempts
    storage.link_events = models.link_events


if TYPE_CHECKING:
    # mypy checks that each class implements its part of the storage contract.
    from . import storage_contract as contract

    _storage: contract.Storage = SQLAlchemyStorage
    _user: contract.UserStorage = SQLAlchemyUserSocialAuth
    _nonce: contract.NonceStorage = SQLAlchemyNonce
    _association: contract.AssociationStorage = SQLAlchemyAssociation
    _code: contract.CodeStorage = SQLAlchemyCode
    _partial: contract.PartialStorage = SQLAlchemyPartial
    _link_attempts: contract.LinkAttemptStorage = SQLAlchemyPasswordAttempts
    _link_events: contract.LinkEventStorage = SQLAlchemyLinkEvent
