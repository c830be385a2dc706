"""The demo: an app with its own accounts that adds Login with Amazon through settings.

``create_app(config=None)`` builds it. By default it talks to the LWA emulator
(``python -m demo`` starts one on 127.0.0.1:5001); with ``AMAZON_CLIENT_ID`` and
``AMAZON_CLIENT_SECRET`` in the environment (and optionally ``AMAZON_REGION``)
it uses real Amazon instead.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, render_template
from flask_login import LoginManager
from social_amazon_link.pipelines import AMAZON_DISCONNECT_PIPELINE, AMAZON_PIPELINE
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker
from werkzeug.exceptions import HTTPException

from social_amazon_link.flask import init_app
from social_amazon_link.sqlalchemy_storage import configure_sqlite

from .accounts import bp as accounts_bp
from .csrf import csrf_token
from .flashes import init_flashes
from .models import Base, User
from .outbox import init_outbox

#: The client id and secret the demo registers with its own emulator.
DEMO_CLIENT_ID = "amzn1.application-oa2-client.5ec0de0000000000000000000000demo"
DEMO_CLIENT_SECRET = "demo-only-secret"
#: The app's name on the emulator's consent page (a security profile's name).
DEMO_APP_NAME = "Acme Books"
#: The demo's mobile app: a public client (no secret, PKCE) whose tokens and
#: codes the demo accepts (AUDIENCES), its redirect URI the LWA SDK's kind.
MOBILE_CLIENT_ID = "amzn1.application-oa2-client.5ec0de00000000000000000000mobile"
MOBILE_REDIRECT_URI = "amzn://com.example.acmebooks"
EMULATOR_URL = "http://127.0.0.1:5001"
#: The demo's database when ``DATABASE_URL`` is not set, under the current
#: directory; ``python -m demo`` makes it anew at each start.
DEFAULT_DATABASE = Path("instance") / "demo.sqlite3"


def demo_client(redirect_uris: list[str]) -> dict[str, Any]:
    """The demo's client, as it registers with the emulator."""
    return {
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "redirect_uris": redirect_uris,
        "name": DEMO_APP_NAME,
    }


def mobile_client() -> dict[str, Any]:
    """The demo's mobile app, as it registers with the emulator."""
    return {
        "client_id": MOBILE_CLIENT_ID,
        "public": True,
        "redirect_uris": [MOBILE_REDIRECT_URI],
        "name": f"{DEMO_APP_NAME} for Android and iOS",
    }


def amazon_settings(env: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, Any]:
    """Real Amazon when credentials are in the environment, else the emulator."""
    client_id, secret = env.get("AMAZON_CLIENT_ID"), env.get("AMAZON_CLIENT_SECRET")
    if client_id and secret:
        return {
            "DEMO_MODE": False,
            "SOCIAL_AUTH_AMAZON_KEY": client_id,
            "SOCIAL_AUTH_AMAZON_SECRET": secret,
            # An empty AMAZON_REGION (set but blank in a shell or .env) too.
            "SOCIAL_AUTH_AMAZON_REGION": env.get("AMAZON_REGION") or "NA",
        }
    emulator = env.get("LWA_EMULATOR_URL") or EMULATOR_URL
    return {
        "DEMO_MODE": True,
        "SOCIAL_AUTH_AMAZON_KEY": DEMO_CLIENT_ID,
        "SOCIAL_AUTH_AMAZON_SECRET": DEMO_CLIENT_SECRET,
        "SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL": f"{emulator}/ap/oa",
        "SOCIAL_AUTH_AMAZON_API_URL": emulator,
        "SOCIAL_AUTH_AMAZON_AUDIENCES": [MOBILE_CLIENT_ID],
        # A seeded account has no password: it proves its email with a code,
        # which the demo "emails" to its Outbox page.
        "SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION": "demo.outbox.send_code",
        # Each link, unlink, email change and lockout is told to the owner:
        # "mailed" to the Outbox as well.
        "SOCIAL_AUTH_AMAZON_LINK_NOTIFY_FUNCTION": "demo.outbox.send_notice",
    }


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(Path.cwd() / "instance"))
    Path(app.instance_path).mkdir(exist_ok=True)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        # A blank DATABASE_URL (set but empty in a shell or .env) too.
        DATABASE_URL=os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_DATABASE.resolve()}",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Login with Amazon, added the way any app on social-auth adds it.
        SOCIAL_AUTH_USER_MODEL="demo.models.User",
        SOCIAL_AUTH_LOGIN_URL="/login",
        SOCIAL_AUTH_LOGIN_REDIRECT_URL="/account",
        SOCIAL_AUTH_NEW_ASSOCIATION_REDIRECT_URL="/account",
        SOCIAL_AUTH_DISCONNECT_REDIRECT_URL="/account",
        # Accounts made through Amazon keep the person's name and postal code
        # too (the postal code needs LWA's postal_code scope).
        SOCIAL_AUTH_AMAZON_SCOPE=["profile", "postal_code"],
        SOCIAL_AUTH_USER_FIELDS=["username", "email", "name", "postal_code"],
        # The library's pipelines, plus a last step each that tells the
        # person which Amazon account was linked or unlinked.
        SOCIAL_AUTH_AMAZON_PIPELINE=(*AMAZON_PIPELINE, "demo.flashes.link_confirmed"),
        SOCIAL_AUTH_AMAZON_DISCONNECT_PIPELINE=(
            *AMAZON_DISCONNECT_PIPELINE,
            "demo.flashes.unlink_confirmed",
        ),
    )
    app.config.update(amazon_settings())
    app.config.update(config or {})

    # A pooled connection is checked before use: after a database restart
    # the first requests would otherwise fail on connections it closed.
    engine = create_engine(app.config["DATABASE_URL"], pool_pre_ping=True)
    configure_sqlite(engine)  # WAL and a busy timeout: docs/database.md
    db = scoped_session(sessionmaker(bind=engine, expire_on_commit=False))
    app.extensions["demo_db"] = db
    app.extensions["demo_engine"] = engine

    login_manager = LoginManager(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to see your account."

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        return db.get(User, int(user_id))

    init_app(app, db)
    Base.metadata.create_all(engine)
    app.register_blueprint(accounts_bp)
    init_flashes(app)
    if app.config["DEMO_MODE"]:
        init_outbox(app)
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        return render_template("http_error.html", error=error), error.code or 500

    return app
