"""A minimal app with its own accounts, to test the integration against.

Not the demo (that is ``demo/``): just enough of "an existing app" — a users
table, Flask-Login sessions — for Login with Amazon to be added to.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, current_user
from social_core.pipeline.partial import partial
from sqlalchemy import create_engine
from sqlalchemy.orm import DeclarativeBase, scoped_session, sessionmaker
from werkzeug.security import check_password_hash

from social_amazon_link.flask import init_app
from social_amazon_link.sqlalchemy_storage import configure_sqlite
from tests.accounts import AccountColumns


class Base(DeclarativeBase):
    pass


class User(UserMixin, AccountColumns, Base):
    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(str(self.password_hash), password)


#: One-time codes "emailed" by the app (EMAIL_VALIDATION_FUNCTION): (email, code, token).
OUTBOX: list[tuple[str, str, str | None]] = []


def send_code(strategy: Any, backend: Any, code: Any, partial_token: str | None) -> None:
    OUTBOX.append((code.email, code.code, partial_token))


def create_app(
    database_url: str, settings: dict[str, Any], engine_options: dict[str, Any] | None = None
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test-secret-key",
        SOCIAL_AUTH_USER_MODEL="tests.sample_app.User",
        SOCIAL_AUTH_LOGIN_REDIRECT_URL="/me",
        SOCIAL_AUTH_LOGIN_URL="/login",
    )
    app.config.update(settings)
    engine = create_engine(database_url, **(engine_options or {}))
    # As docs/database.md asks of an app on SQLite.
    configure_sqlite(engine, busy_timeout=float(app.config.get("TEST_SQLITE_BUSY_TIMEOUT", 5.0)))
    session = scoped_session(sessionmaker(bind=engine))
    login_manager = LoginManager(app)

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        return session.get(User, int(user_id))

    init_app(app, session)
    Base.metadata.create_all(engine)
    app.extensions["test_session"] = session
    app.extensions["test_engine"] = engine

    @app.get("/me")
    def me() -> Any:
        if not current_user.is_authenticated:
            return jsonify(authenticated=False), 401
        return jsonify(
            authenticated=True,
            id=current_user.id,
            username=current_user.username,
            email=current_user.email,
        )

    @app.get("/csrf-token")
    def csrf_token() -> Any:
        # What a page of the app would put in a form posting to the integration.
        from social_amazon_link.flask.csrf import csrf_token as token

        return jsonify(csrf_token=token())

    @app.post("/test-login")
    def test_login() -> Any:
        # The app's own username + password sign-in.
        from flask import request
        from flask_login import login_user
        from sqlalchemy import select

        user = session.scalars(select(User).where(User.username == request.form["username"])).one()
        if not user.check_password(request.form["password"]):
            return jsonify(authenticated=False), 403
        # remember=yes: Flask-Login's remember-me cookie, which signs a later
        # session in without a sign-in of its own.
        login_user(user, remember=request.form.get("remember") == "yes")
        return jsonify(authenticated=True, id=user.id)

    @app.post("/test-logout")
    def test_logout() -> Any:
        from flask_login import logout_user

        logout_user()
        return jsonify(authenticated=False)

    @app.post("/client-token")
    def client_token() -> Any:
        # What a mobile app's server endpoint does with the token it was sent
        # (the full JSON API is social_amazon_link.flask.api).
        from flask import g, request
        from flask_login import login_user
        from social_flask.utils import load_backend, load_strategy

        g.strategy = load_strategy()
        backend = load_backend(g.strategy, "amazon", redirect_uri=None)
        user = backend.do_auth(request.form["access_token"])
        login_user(user)
        return jsonify(id=user.id, username=user.username)

    return app


@partial
def accept_terms(
    strategy: Any, backend: Any, *args: Any, current_partial: Any = None, **kwargs: Any
) -> Any:
    """An app's own paused step, after the linking steps: new terms to accept.

    Resumed the social-core way, through the callback URL with the token.
    """
    if strategy.request_data().get("accept") == "yes":
        return None
    return strategy.redirect(f"/terms?partial_token={current_partial.token}")
