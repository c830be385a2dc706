"""Login with Amazon for Flask apps, on social-auth-app-flask's blueprint.

``init_app(app, session)`` is the whole integration: it selects the maintained
strategy and storage (:mod:`.strategy`, :mod:`.storage`), registers
social-auth-app-flask's ``/login/<backend>/`` and ``/complete/<backend>/``
views, exposes the signed-in user to them as ``g.user``, and turns every
social-auth error into a page (or a redirect to ``LOGIN_ERROR_URL``) with the
error's stable code, never a 500 and never "canceled" unless the person did.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import click
from flask import Flask, current_app, g, redirect, render_template, request
from flask.cli import AppGroup
from flask.typing import ResponseReturnValue
from flask_login import current_user
from social_core.exceptions import SocialAuthBaseException
from social_core.utils import PARTIAL_TOKEN_SESSION_NAME
from social_flask.utils import load_strategy
from sqlalchemy.orm import Session, scoped_session

from social_amazon_link.pipelines import AMAZON_DISCONNECT_PIPELINE, AMAZON_PIPELINE
from social_amazon_link.pipelines.pause import prompt_of

from ..errors import AmazonError, InvalidPartial, InvalidRequest, TooManyAttempts, error_status
from ..sqlalchemy_storage import parse_association_id
from .api import bp as api_views
from .csrf import check_csrf, csrf_token
from .storage import init_social
from .views import bp as link_views

__all__ = ["init_app", "init_social"]

log = logging.getLogger("social_amazon_link")

DEFAULT_SETTINGS = {
    "SOCIAL_AUTH_STRATEGY": "social_amazon_link.flask.strategy.FlaskStrategy",
    "SOCIAL_AUTH_STORAGE": "social_amazon_link.flask.storage.FlaskStorage",
    "SOCIAL_AUTH_AUTHENTICATION_BACKENDS": ("social_amazon_link.backend.AmazonOAuth2",),
    "SOCIAL_AUTH_AMAZON_PIPELINE": AMAZON_PIPELINE,
    "SOCIAL_AUTH_AMAZON_DISCONNECT_PIPELINE": AMAZON_DISCONNECT_PIPELINE,
}


def init_app(
    app: Flask,
    session: Session | scoped_session[Session],
    user_model: type[Any] | str | None = None,
) -> None:
    """Add Login with Amazon to ``app`` (settings come from ``app.config``)."""
    # Imported here: social-auth-app-flask's modules read Flask's globals at
    # import time only through functions, but keep the import out of the way
    # of apps that use only the storage or the strategy.
    from social_flask.routes import social_auth

    for name, value in DEFAULT_SETTINGS.items():
        app.config.setdefault(name, value)
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

    app.register_error_handler(SocialAuthBaseException, _error_response)
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


#: Parameters of Amazon's redirect back to the callback.
_CALLBACK_PARAMETERS = frozenset(("state", "code", "error"))


def _end_waiting_prompt() -> None:
    """A new sign-in ends a pause left waiting; a prompt of ours is answered on its page.

    social-core's callback resumes a pause it finds in the session in place
    of a new sign-in: starting one, or Amazon's redirect back for one, ends
    any pause this browser left (someone else's, on a shared computer).
    Otherwise the callback resumes the app's own pauses as social-core does,
    but a prompt of ours waiting there is refused and ended: only a forged
    link would try to answer it through the callback.
    """
    strategy = load_strategy()
    token = strategy.session_get(PARTIAL_TOKEN_SESSION_NAME)
    if not isinstance(token, str) or not token:
        return
    partial = strategy.partial_load(token)
    ours = partial is not None and prompt_of(partial) is not None
    new_sign_in = request.endpoint == "social.auth" or bool(
        _CALLBACK_PARAMETERS & set(request.values)
    )
    if new_sign_in or ours:
        strategy.clean_partial_pipeline(token)
    if ours and not new_sign_in:
        raise InvalidPartial(reason="not_on_its_page", stage="callback")


cli = AppGroup("amazon-link", help="Login with Amazon maintenance.")


@cli.command("purge")
def purge_command() -> None:
    """Delete OAuth2 states and paused sign-ins too old to be used."""
    from .storage import FlaskStorage

    def setting(name: str, default: int) -> int:
        config = current_app.config
        return int(
            config.get(f"SOCIAL_AUTH_AMAZON_{name}", config.get(f"SOCIAL_AUTH_{name}", default))
        )

    counts = FlaskStorage.purge(
        state_max_age=setting("STATE_LIFETIME", 1800),
        pause_max_age=setting("LINK_PROMPT_MAX_AGE", 900),
    )
    click.echo(
        f"purged {counts['nonces']} OAuth2 states, {counts['partials']} paused sign-ins, "
        f"{counts['codes']} emailed codes"
    )


def _message(error: SocialAuthBaseException) -> str:
    """What the error page says: ours are safe to show; an invalid request says
    what to correct (never provider data, which only other errors carry)."""
    if isinstance(error, (InvalidRequest, TooManyAttempts)) and error.detail:
        return str(error.detail)
    return error.message if isinstance(error, AmazonError) else str(error)


def _error_response(error: SocialAuthBaseException) -> ResponseReturnValue:
    status = error_status(error)
    reason = getattr(error, "reason", error.code)
    # Codes and reasons only: provider details can carry identifiers, and
    # tokens never reach an error's text.
    log.warning("Login with Amazon failed: %s (%s, stage %s)", error.code, reason, error.stage)
    error_url = current_app.config.get("SOCIAL_AUTH_LOGIN_ERROR_URL")
    if error_url:
        sep = "&" if "?" in error_url else "?"
        return redirect(f"{error_url}{sep}{urlencode({'error': error.code})}")
    message = _message(error)
    signed_in = bool(getattr(current_user, "is_authenticated", False))
    config = current_app.config
    return (
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
