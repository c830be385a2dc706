"""Login with Amazon for Flask apps, on social-auth-app-flask's blueprint.

``init_app(app, session)`` is the whole integration: it selects the maintained
strategy and storage (:mod:`.strategy`, :mod:`.storage`), registers
social-auth-app-flask's ``/login/<backend>/`` and ``/complete/<backend>/``
views, exposes the signed-in user to them as ``g.user``, and turns every
social-auth error into a page (or a redirect to ``LOGIN_ERROR_URL``) with the
error's stable code, never a 500 and never "canceled" unless the person did.
The app's own sign-in and sign-out (Flask-Login's signals) end whatever
sign-in the browser left waiting, and rotate the integration's CSRF token.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import click
from flask import (
    Flask,
    current_app,
    g,
    has_request_context,
    make_response,
    redirect,
    render_template,
    request,
    session,
)
from flask.cli import AppGroup
from flask.typing import ResponseReturnValue
from flask_login import current_user, user_logged_in, user_logged_out
from social_core.exceptions import SocialAuthBaseException
from social_core.utils import (
    PARTIAL_TOKEN_PENDING_SESSION_NAME,
    PARTIAL_TOKEN_SESSION_NAME,
    constant_time_compare,
    module_member,
)
from social_flask.utils import load_strategy
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, scoped_session

from social_amazon_link.pipelines import AMAZON_DISCONNECT_PIPELINE, AMAZON_PIPELINE
from social_amazon_link.pipelines.pause import prompt_of

from ..errors import (
    DatabaseUnavailable,
    InvalidPartial,
    InvalidRequest,
    TooManyAttempts,
    error_status,
    plain_message,
)
from ..sqlalchemy_storage import DEFAULT_EVENTS_MAX_AGE, parse_association_id
from .api import bp as api_views
from .config import check_config
from .csrf import check_csrf, csrf_token, rotate_csrf
from .storage import database_outage, init_social
from .views import bp as link_views

__all__ = ["init_app", "init_social"]

log = logging.getLogger("social_amazon_link")

DEFAULT_SETTINGS = {
    "SOCIAL_AUTH_STRATEGY": "social_amazon_link.flask.strategy.FlaskStrategy",
    "SOCIAL_AUTH_STORAGE": "social_amazon_link.flask.storage.FlaskStorage",
    "SOCIAL_AUTH_AUTHENTICATION_BACKENDS": ("social_amazon_link.backend.AmazonOAuth2",),
    "SOCIAL_AUTH_AMAZON_PIPELINE": AMAZON_PIPELINE,
    "SOCIAL_AUTH_AMAZON_DISCONNECT_PIPELINE": AMAZON_DISCONNECT_PIPELINE,
    # Flask-Login's remember-me cookie, which social-auth-app-flask's do_login
    # sets when asked to "keep" the session: sent on top-level navigations
    # only, and out of scripts' reach. Over HTTPS the app must add
    # REMEMBER_COOKIE_SECURE (and SESSION_COOKIE_SECURE).
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
}


def init_app(
    app: Flask,
    session: Session | scoped_session[Session],
    user_model: type[Any] | str | None = None,
) -> None:
    """Add Login with Amazon to ``app`` (settings come from ``app.config``).

    Raises :class:`~social_amazon_link.settings.AmazonSettingsError` naming
    every bad Amazon setting, before anything is registered.
    """
    # Imported here: social-auth-app-flask's modules read Flask's globals at
    # import time only through functions, but keep the import out of the way
    # of apps that use only the storage or the strategy.
    from social_flask.routes import social_auth

    for name, value in DEFAULT_SETTINGS.items():
        app.config.setdefault(name, value)
    check_config(app)
    init_social(app, session, user_model)
    if social_auth.name not in app.blueprints:
        app.register_blueprint(social_auth)
    if link_views.name not in app.blueprints:
        app.register_blueprint(link_views)
    if api_views.name not in app.blueprints:
        app.register_blueprint(api_views)
    app.jinja_env.globals.setdefault("amazon_link_csrf_token", csrf_token)

    ours = {social_auth.name, link_views.name, api_views.name}

    @app.before_request
    def _expose_user() -> None:
        # social-auth-app-flask's views read the signed-in user from g.user.
        # Only for this integration's views: loading the user costs a query.
        if request.blueprint in ours:
            g.user = current_user._get_current_object()
        # Its disconnect view checks no CSRF token: a form elsewhere could
        # unlink a signed-in person's Amazon account.
        if request.endpoint == "social.disconnect" and request.method == "POST":
            check_csrf(request.form.get("csrf_token"))
            _check_association_id()
        if request.endpoint in ("social.auth", "social.complete"):
            _end_waiting_prompt()

    # The app's own sign-in and sign-out, whatever view does it (this
    # integration's too). Weak references: the app and this module own them.
    user_logged_in.connect(_session_changes_hands, app)
    user_logged_out.connect(_session_changes_hands, app)
    app.register_error_handler(SocialAuthBaseException, _error_response)

    def _database_error(error: Exception) -> ResponseReturnValue:
        # The integration's pages (the user loader included, run before
        # them) answer an outage with a page; the app's own pages are left
        # to the app, as before.
        unavailable = database_outage(error) if request.blueprint in ours else None
        if unavailable is None:
            raise error
        return _error_response(unavailable)

    for database_error in (DBAPIError, PoolTimeout):
        app.register_error_handler(database_error, _database_error)
    app.cli.add_command(cli)

    if isinstance(session, scoped_session):

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            session.remove()


def _check_association_id() -> None:
    """The link id of ``/disconnect/<backend>/<id>/`` as written in the URL.

    Its ``<int:...>`` rule reads ``054`` (and other scripts' digits) as 54,
    and its ``<string:...>`` rule passes ``54.0`` or ``+54`` on: the storage
    must see the spelling itself, so that only ``54`` names link 54.
    """
    if request.view_args and "association_id" in request.view_args:
        written = request.path.rstrip("/").rsplit("/", 1)[-1]
        request.view_args["association_id"] = parse_association_id(written)


def _end_waiting_prompt() -> None:
    """A new sign-in ends a pause left waiting; a prompt of ours is answered on its page.

    social-core's callback resumes a pause it finds in the session in place
    of a new sign-in: starting one, or Amazon's redirect back for one, ends
    any pause this browser left (someone else's, on a shared computer).
    Otherwise the callback resumes the app's own pauses as social-core does
    (whatever their forms' fields are called, ``code`` and ``state`` too),
    but a prompt of ours waiting there is refused and ended: only a forged
    link would try to answer it through the callback.
    """
    strategy = load_strategy()
    token = strategy.session_get(PARTIAL_TOKEN_SESSION_NAME)
    if not isinstance(token, str) or not token:
        return
    partial = strategy.partial_load(token)
    ours = partial is not None and prompt_of(partial) is not None
    new_sign_in = request.endpoint == "social.auth" or _returns_from_provider()
    if new_sign_in or ours:
        strategy.clean_partial_pipeline(token)
    if ours and not new_sign_in:
        raise InvalidPartial(reason="not_on_its_page", stage="callback")


def _returns_from_provider() -> bool:
    """Whether this callback brings back a sign-in this browser started.

    Known by its OAuth2 ``state``, which social-core keeps in the session
    for every sign-in started there until it comes back: a value nobody else
    can put in this session, where a field name (``code``, ``error``) is
    anyone's to use, an app's own paused form's included.
    """
    name = (request.view_args or {}).get("backend")
    sent = request.values.get("state") or request.values.get("redirect_state")
    if not isinstance(name, str) or not sent or len(sent) > 128:
        return False
    # social-core 7 keeps one transaction per started sign-in; older
    # backends (and association-only ones) one state per backend.
    transaction = session.get(f"{name}_oauth2_state_{sent}")
    held = (
        transaction.get("state") if isinstance(transaction, dict) else session.get(f"{name}_state")
    )
    return isinstance(held, str) and constant_time_compare(held, sent)


def _session_changes_hands(app: Flask, **_signal: Any) -> None:
    """The app signed someone in or out: end what this browser left waiting.

    Flask-Login keeps the session's other keys across a sign-in and a
    sign-out, so a sign-in paused (or started at Amazon) by the previous
    person would otherwise be finished by the next one, and linked to their
    account. Ended here: the pause (removed), the OAuth2 sign-ins started
    and not back yet (their states), and the CSRF token (a new one).
    """
    if not has_request_context():
        return
    strategy = load_strategy()
    for name in (PARTIAL_TOKEN_SESSION_NAME, PARTIAL_TOKEN_PENDING_SESSION_NAME):
        token = strategy.session_get(name)
        if isinstance(token, str) and token:
            strategy.clean_partial_pipeline(token)
    for name in _backend_names(app):
        # Every key social-core keeps for a sign-in it started (see
        # _returns_from_provider): the states, their index, PKCE verifiers.
        started = [key for key in session if key.startswith((f"{name}_state", f"{name}_oauth2_"))]
        for key in started:
            session.pop(key)
    rotate_csrf()


def _backend_names(app: Flask) -> list[str]:
    names = []
    for backend in app.config.get("SOCIAL_AUTH_AUTHENTICATION_BACKENDS", ()):
        if isinstance(backend, str):
            backend = module_member(backend)  # type: ignore[no-untyped-call]
        names.append(str(backend.name))
    return names


cli = AppGroup("amazon-link", help="Login with Amazon maintenance.")


@cli.command("purge")
def purge_command() -> None:
    """Delete OAuth2 states, paused sign-ins, attempt counters and events too old to matter."""
    from .storage import FlaskStorage

    def setting(name: str, default: int) -> int:
        config = current_app.config
        return int(
            config.get(f"SOCIAL_AUTH_AMAZON_{name}", config.get(f"SOCIAL_AUTH_{name}", default))
        )

    counts = FlaskStorage.purge(
        state_max_age=setting("STATE_LIFETIME", 1800),
        pause_max_age=setting("LINK_PROMPT_MAX_AGE", 900),
        lockout_seconds=setting("LINK_LOCKOUT_SECONDS", 900),
        events_max_age=setting("LINK_EVENTS_MAX_AGE", DEFAULT_EVENTS_MAX_AGE),
    )
    click.echo(
        f"purged {counts['nonces']} OAuth2 states, {counts['partials']} paused sign-ins, "
        f"{counts['codes']} emailed codes, {counts['attempts']} password-attempt counters, "
        f"{counts['events']} link events"
    )


def _message(error: SocialAuthBaseException, signed_in: bool) -> str:
    """What the error page says, in plain words (:func:`..errors.plain_message`);
    an invalid request says what to correct (never provider data, which only
    other errors carry)."""
    if isinstance(error, (InvalidRequest, TooManyAttempts)) and error.detail:
        return str(error.detail)
    return plain_message(error, signed_in=signed_in)


def _error_response(error: SocialAuthBaseException) -> ResponseReturnValue:
    status = error_status(error)
    reason = getattr(error, "reason", error.code)
    # Codes and reasons only: provider details can carry identifiers, and
    # tokens never reach an error's text.
    log.warning("Login with Amazon failed: %s (%s, stage %s)", error.code, reason, error.stage)
    error_url = current_app.config.get("SOCIAL_AUTH_LOGIN_ERROR_URL")
    # The app's error page needs the database too: an outage is answered here.
    if error_url and not isinstance(error, DatabaseUnavailable):
        sep = "&" if "?" in error_url else "?"
        return redirect(f"{error_url}{sep}{urlencode({'error': error.code})}")
    signed_in = bool(getattr(current_user, "is_authenticated", False))
    message = _message(error, signed_in)
    config = current_app.config
    response = make_response(
        render_template(
            "social_amazon_link/error.html",
            error=error,
            code=error.code,
            message=message,
            stage=error.stage,
            signed_in=signed_in,
            back_url=config.get("SOCIAL_AUTH_LOGIN_REDIRECT_URL", "/")
            if signed_in
            else config.get("SOCIAL_AUTH_LOGIN_URL", "/"),
        ),
        status,
    )
    retry_after = getattr(error, "retry_after_seconds", None)
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    return response
