"""SQLAlchemy 2 storage for social-core 7, independent of any web framework.

social-storage-sqlalchemy (last released 2017) has no ``Nonce.consume``, no
``id_key`` and no ``migrate_social_auth``, which social-core 7's OAuth2 state
check and identifier handling need. This module implements the full storage
contract on SQLAlchemy 2; :mod:`social_amazon_link.flask.storage` binds it to
a Flask app (another framework would bind it the same way).

The tables live in the app's own ``MetaData`` (the one its user model is
declared on), so the app's ``create_all()`` or migrations create them beside
its users table, with a real foreign key to it. Table names are those of
social-auth-app-flask-sqlalchemy, so existing rows are found where they were.

Writes commit at once, as social-core expects (it relies on a unique
``(provider, uid)`` and on single-use nonces being visible to every process).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from social_core.storage import (
    AssociationMixin,
    BaseStorage,
    CodeMixin,
    NonceMixin,
    PartialMixin,
    UserMixin,
)
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    delete,
    func,
    inspect,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import Session, backref, mapped_column, relationship, scoped_session

__all__ = [
    "SQLAlchemyStorage",
    "SocialModels",
    "bind_session",
    "models_for",
    "use_models",
]

AnySession = Session | scoped_session[Session]
_session_provider: Callable[[], AnySession] | None = None


def bind_session(provider: Callable[[], AnySession]) -> None:
    """Tell the storage how to find the current session (set by the integration)."""
    global _session_provider
    _session_provider = provider


def _session() -> AnySession:
    if _session_provider is None:
        raise RuntimeError("no session bound: call init_social(app, session) first")
    return _session_provider()


def _now() -> datetime:
    return datetime.now(UTC)


def _commit(instance: Any = None) -> None:
    """Add ``instance`` and commit; on failure roll back so the session stays usable."""
    session = _session()
    try:
        if instance is not None:
            session.add(instance)
        session.commit()
    except Exception:
        session.rollback()
        raise


class _Saved:
    def save(self) -> None:
        _commit(self)


class SQLAlchemyUserSocialAuth(_Saved, UserMixin):
    """A link from a local user to a provider identity (``provider``, ``uid``)."""

    _user_model: ClassVar[type[Any]]

    @classmethod
    def user_model(cls) -> type[Any]:
        return cls._user_model

    @classmethod
    def username_max_length(cls) -> int:
        column = inspect(cls._user_model).columns.get("username")
        length = getattr(getattr(column, "type", None), "length", None)
        return int(length) if length else 150

    @classmethod
    def changed(cls, user: Any) -> None:
        _commit(user)

    @classmethod
    def get_username(cls, user: Any) -> str:
        return str(user.username)

    @classmethod
    def user_exists(cls, *args: Any, **kwargs: Any) -> bool:
        query = select(func.count()).select_from(cls._user_model).filter_by(**kwargs)
        return bool(_session().execute(query).scalar())

    @classmethod
    def create_user(cls, *args: Any, **kwargs: Any) -> Any:
        user = cls._user_model(**kwargs)
        _commit(user)
        return user

    @classmethod
    def get_user(cls, pk: Any) -> Any:
        if pk is None:
            return None
        return _session().get(cls._user_model, pk)

    @classmethod
    def get_users_by_email(cls, email: str) -> list[Any]:
        """Every local account with this email, compared case-insensitively."""
        if not email:
            return []
        model = cls._user_model
        query = select(model).where(func.lower(model.email) == email.strip().lower())
        return list(_session().scalars(query))

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
        id: int | None = None,
    ) -> list[Any]:
        query = select(cls).where(cls.user_id == user.id)
        if provider:
            query = query.where(cls.provider == provider)
        if id:
            query = query.where(cls.id == id)
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
        session = _session()
        uid = str(uid)
        try:
            locked = session.scalars(select(cls).where(cls.id == social.id).with_for_update()).one()
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
            session.commit()
        except Exception:
            session.rollback()
            raise
        return locked

    @classmethod
    def allowed_to_disconnect(
        cls, user: Any, backend_name: str, association_id: Any = None
    ) -> bool:
        """Only when the user keeps a way to sign in: a password or another link."""
        if _has_usable_password(user):
            return True
        links = cls.get_social_auth_for_user(user)
        if association_id is not None:
            remaining = [s for s in links if str(s.id) != str(association_id)]
        else:
            remaining = [s for s in links if s.provider != backend_name]
        return len(remaining) > 0

    @classmethod
    def disconnect(cls, entry: Any) -> None:
        session = _session()
        try:
            session.delete(entry)
            session.commit()
        except Exception:
            session.rollback()
            raise


def _has_usable_password(user: Any) -> bool:
    check = getattr(user, "has_usable_password", None)
    if callable(check):
        return bool(check())
    return bool(getattr(user, "password_hash", None) or getattr(user, "password", None))


class SQLAlchemyNonce(_Saved, NonceMixin):
    """Single-use values (social-core's OAuth2 ``state``)."""

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
        query = select(cls).where(cls.server_url == server_url, cls.salt == salt)
        return _session().scalars(query).first()

    @classmethod
    def delete(cls, nonce: Any) -> None:
        session = _session()
        session.delete(nonce)
        _commit()

    @classmethod
    def consume(cls, server_url: str, timestamp: int, salt: str) -> bool:
        """Delete the nonce in one statement: of two racing callbacks, one wins."""
        session = _session()
        try:
            result = session.execute(
                delete(cls).where(
                    cls.server_url == server_url,
                    cls.timestamp == int(timestamp),
                    cls.salt == salt,
                )
            )
            session.commit()
        except Exception:
            session.rollback()
            raise
        return getattr(result, "rowcount", 0) == 1


class SQLAlchemyAssociation(_Saved, AssociationMixin):
    """OpenID associations (unused by Amazon; part of the storage contract)."""

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
        _session().execute(delete(cls).where(cls.id.in_(ids_to_delete)))
        _commit()


class SQLAlchemyCode(_Saved, CodeMixin):
    """One-time codes sent by email (social-core's email validation)."""

    @classmethod
    def get_code(cls, code: str) -> Any:
        return _session().scalars(select(cls).where(cls.code == code)).first()


class SQLAlchemyPartial(_Saved, PartialMixin):
    """A paused pipeline, resumed by its token."""

    @classmethod
    def load(cls, token: str) -> Any:
        if not token:
            return None
        return _session().scalars(select(cls).where(cls.token == token)).first()

    @classmethod
    def destroy(cls, token: str) -> None:
        session = _session()
        try:
            session.execute(delete(cls).where(cls.token == token))
            session.commit()
        except Exception:
            session.rollback()
            raise


class SQLAlchemyStorage(BaseStorage):
    """The storage social-core uses; its models are set by :func:`use_models`."""

    user: ClassVar[type[Any]] = SQLAlchemyUserSocialAuth
    nonce: ClassVar[type[Any]] = SQLAlchemyNonce
    association: ClassVar[type[Any]] = SQLAlchemyAssociation
    code: ClassVar[type[Any]] = SQLAlchemyCode
    partial: ClassVar[type[Any]] = SQLAlchemyPartial

    @classmethod
    def is_integrity_error(cls, exception: BaseException) -> bool:
        return isinstance(exception, IntegrityError)


@dataclass(frozen=True)
class SocialModels:
    """The mapped classes created for one user model."""

    user: type[Any]
    nonce: type[Any]
    association: type[Any]
    code: type[Any]
    partial: type[Any]


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

    return SocialModels(UserSocialAuth, Nonce, Association, Code, Partial)


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
