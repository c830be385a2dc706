"""An integration of the flow with no web framework at all, for tests.

``social_amazon_link.flow`` says it needs nothing but a social-core strategy
with the hooks of :class:`~social_amazon_link.flow.AdapterStrategy`; this is
the smallest one: a request is a few attributes, the session a dict (what a
cookie would keep between requests), the settings a dict, and "signing in"
writes the user's id into that session. The storage is the real SQLAlchemy
one, bound to one session here as ``social_amazon_link.flask.storage`` binds
it to a Flask app. Nothing here (nor what it imports) may load Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from social_amazon_link.pipelines import AMAZON_PIPELINE
from social_core.strategy import BaseStrategy
from sqlalchemy import create_engine, text
from sqlalchemy.orm import DeclarativeBase, scoped_session, sessionmaker

from social_amazon_link.flow.paused import end_sign_ins, load_backend
from social_amazon_link.sqlalchemy_storage import (
    SQLAlchemyStorage,
    bind_secret,
    bind_session,
    configure_sqlite,
    models_for,
    use_models,
)
from tests.accounts import AccountColumns

#: The session key the plain integration keeps the signed-in user's id under.
SIGNED_IN = "plain_user_id"
#: The server's secret (the key of the emailed codes' hashes).
SECRET = "plain-integration-secret"
#: The client id the app is registered with (the emulator mints tokens for any).
PLAIN_CLIENT_ID = "amzn1.application-oa2-client.9141a1nf1a5k0000"


class Base(DeclarativeBase):
    pass


class User(AccountColumns, Base):
    """An app's own accounts: what the storage and the steps need of a user model."""

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and hmac.compare_digest(
            str(self.password_hash), hash_password(password, str(self.password_hash))
        )


def hash_password(password: str, stored: str | None = None) -> str:
    """A salted PBKDF2 hash, ``salt$hex`` (a few rounds: these are tests)."""
    salt = stored.partition("$")[0] if stored else secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000)
    return f"{salt}${digest.hex()}"


class PlainStorage(SQLAlchemyStorage):
    """The SQLAlchemy storage, mapped beside :class:`User`."""


use_models(PlainStorage, models_for(User))


@dataclass
class Redirect:
    """A redirect answer (``strategy.redirect``)."""

    url: str


@dataclass
class Html:
    """A page answer (``strategy.html``)."""

    content: str
    headers: dict[str, str] = field(default_factory=dict)


class PlainStrategy(BaseStrategy[Any]):
    """social-core's strategy over plain values, with the adapter's hooks.

    One instance is one request; :meth:`next_request` makes the next one from
    the same client (the same session dict, the same record of sign-ins).
    """

    def __init__(
        self,
        settings: dict[str, Any],
        session: dict[str, Any] | None = None,
        *,
        data: dict[str, Any] | None = None,
        secure: bool = False,
        remote_addr: str | None = "127.0.0.1",
        host: str = "app.test",
        logins: list[Any] | None = None,
    ) -> None:
        super().__init__(PlainStorage)
        self.settings = settings
        self.session = {} if session is None else session
        self.data = dict(data or {})
        self.secure = secure
        self.remote_addr = remote_addr
        self.host = host
        #: The id of every user ``login_user`` signed in, in order (rule 7's hook).
        self.logins = [] if logins is None else logins

    def next_request(self, **request: Any) -> PlainStrategy:
        """The same client's next request (its session, and what it signed in, kept)."""
        return PlainStrategy(self.settings, self.session, logins=self.logins, **request)

    # -- social-core's strategy ------------------------------------------------

    def get_setting(self, name: str) -> Any:
        return self.settings[name]  # KeyError: BaseStrategy.setting tries the next name

    def get_request_data(self, merge: bool = True) -> dict[str, Any]:
        return dict(self.data)

    def request_get(self) -> dict[str, Any]:
        return dict(self.data)

    def request_post(self) -> dict[str, Any]:
        return dict(self.data)

    def request_host(self) -> str:
        return self.host

    def request_is_secure(self) -> bool:
        return self.secure

    def request_path(self) -> str:
        return "/"

    def request_port(self) -> int:
        return 443 if self.secure else 80

    def build_absolute_uri(self, path: str | None = None) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}{path or '/'}"

    def redirect(self, url: str) -> Redirect:
        return Redirect(url)

    def html(self, content: str) -> Html:
        return Html(content)

    def html_with_headers(self, content: str, headers: Any) -> Html:
        return Html(content, dict(headers))

    def session_get(self, name: str, default: Any = None) -> Any:
        return self.session.get(name, default)

    def session_set(self, name: str, value: Any) -> None:
        self.session[name] = value

    def session_pop(self, name: str) -> Any:
        return self.session.pop(name, None)

    def session_setdefault(self, name: str, value: Any) -> Any:
        return self.session.setdefault(name, value)

    # -- the adapter's hooks (social_amazon_link.flow.AdapterStrategy) ---------

    def signed_in_user(self) -> Any:
        user_id = self.session.get(SIGNED_IN)
        return None if user_id is None else self.storage.user.get_user(user_id)

    def login_user(self, backend: Any, user: Any, social_user: Any) -> bool:
        # As the Flask adapter's sign-in signal does: what the browser left
        # waiting ends when someone signs in.
        end_sign_ins(self)
        self.session[SIGNED_IN] = user.id
        self.logins.append(user.id)
        return True

    def complete_url(self, backend_name: str) -> str:
        return f"/complete/{backend_name}/"

    def request_remote_addr(self) -> str | None:
        return self.remote_addr

    def session_keys(self) -> Iterable[str]:
        return list(self.session)


def plain_settings(lwa_url: str, **settings: Any) -> dict[str, Any]:
    """The app's settings, pointed at the emulator at ``lwa_url``."""
    return {
        "SOCIAL_AUTH_AUTHENTICATION_BACKENDS": ("social_amazon_link.backend.AmazonOAuth2",),
        "SOCIAL_AUTH_AMAZON_PIPELINE": AMAZON_PIPELINE,
        "SOCIAL_AUTH_AMAZON_KEY": PLAIN_CLIENT_ID,
        "SOCIAL_AUTH_AMAZON_SECRET": "plain-client-secret",
        "SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL": f"{lwa_url}/ap/oa",
        "SOCIAL_AUTH_AMAZON_API_URL": lwa_url,
        "SOCIAL_AUTH_LOGIN_URL": "/login",
        "SOCIAL_AUTH_LOGIN_REDIRECT_URL": "/me",
        **settings,
    }


class Database:
    """The app's database, bound as the storage's: create accounts, read rows."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        configure_sqlite(self.engine)
        self.session = scoped_session(sessionmaker(bind=self.engine))
        Base.metadata.create_all(self.engine)
        bind_session(lambda: self.session)
        bind_secret(lambda: SECRET)

    def close(self) -> None:
        self.session.remove()
        self.engine.dispose()

    @contextmanager
    def request(self) -> Iterator[None]:
        """One request's use of the storage: its session ends with it."""
        try:
            yield
        finally:
            self.session.remove()

    def call(self, endpoint: Callable[..., Any], strategy: PlainStrategy, body: Any) -> Any:
        """A JSON API endpoint (``flow.api.token`` or ``resume``) on one request."""
        with self.request():
            return endpoint(strategy, load_backend(strategy, "amazon"), body, lambda *_: None)

    def add_user(self, username: str, email: str | None, password: str | None = None) -> int:
        user = User(
            username=username,
            email=email,
            password_hash=hash_password(password) if password else None,
        )
        with self.request():
            self.session.add(user)
            self.session.commit()
            return int(user.id)

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def users(self) -> list[tuple[Any, ...]]:
        return self.rows("SELECT id, username, email FROM users ORDER BY id")

    def links(self) -> list[tuple[Any, ...]]:
        return self.rows("SELECT user_id, provider, uid FROM social_auth_usersocialauth")

    def pauses(self) -> list[str]:
        return [row[0] for row in self.rows("SELECT token FROM social_auth_partial")]

    def attempts(self) -> list[tuple[Any, ...]]:
        return self.rows("SELECT user_id, scope, failures FROM amazon_link_password_attempts")
