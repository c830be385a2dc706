"""Login with Amazon for Flask apps, on social-auth-app-flask's blueprint.

``init_app(app, session)`` is the whole integration: it checks the settings
and the storage, selects the maintained strategy and storage
(:mod:`.strategy`, :mod:`.storage`), registers social-auth-app-flask's
``/login/<backend>/`` and ``/complete/<backend>/`` views beside the prompt
pages (:mod:`.views`) and the JSON API (:mod:`.api`), and turns every
social-auth error into a page (or a redirect to ``LOGIN_ERROR_URL``) with the
error's stable code. The app's own sign-in and sign-out (Flask-Login's
signals) end whatever sign-in the browser left waiting, and rotate the
integration's CSRF token. What is not Flask's lives in
:mod:`social_amazon_link.flow`.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, g, has_request_context, make_response, redirect, render_template, request
from flask.cli import AppGroup
from flask.typing import ResponseReturnValue
from flask_login import user_logged_in, user_logged_out
from social_core.actions import do_complete
from social_core.exceptions import SocialAuthBaseException
from social_flask.utils import load_strategy, psa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, scoped_session

from social_amazon_link.pipelines import AMAZON_DISCONNECT_PIPELINE, AMAZON_PIPELINE
from social_amazon_link.pipelines.reauth import mark_signed_in

from ..flow.login import login
from ..flow.pages import error_page
from ..flow.paused import end_sign_ins, end_waiting_prompt
from ..flow.purge import purge
from ..settings import check_strategy_settings
from ..sqlalchemy_storage import parse_association_id
from ..storage_contract import check_storage
from .api import bp as api_views
from .csrf import check_csrf, csrf_token, rotate_csrf
from .storage import database_outage, init_social
from .strategy import signed_in_user
from .views import bp as link_views

__all__ = ["init_app", "init_social"]

DEFAULT_SETTINGS = {
    "SOCIAL_AUTH_STRATEGY": "social_amazon_link.flask.strategy.FlaskStrategy",
    "SOCIAL_AUTH_STORAGE": "social_amazon_link.flask.storage.FlaskStorage",
    "SOCIAL_AUTH_AUTHENTICATION_BACKENDS": ("social_amazon_link.backend.AmazonOAuth2",),
    "SOCIAL_AUTH_AMAZON_PIPELINE": AMAZON_PIPELINE,
    "SOCIAL_AUTH_AMAZON_DISCONNECT_PIPELINE": AMAZON_DISCONNECT_PIPELINE,
    # Flask-Login's remember-me cookie (the sign-in sets it when asked to
    # "keep" the session): top-level navigations only, out of scripts' reach.
    # Over HTTPS the app adds REMEMBER_COOKIE_SECURE and SESSION_COOKIE_SECURE.
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
    every bad Amazon setting, before anything is registered, and
    :class:`~social_amazon_link.storage_contract.StorageContractError` naming
    every member the storage lacks.
    """
    # Imported here, out of the way of apps that use only the strategy.
    from social_flask.routes import social_auth

    for name, value in DEFAULT_SETTINGS.items():
        app.config.setdefault(name, value)
    with app.app_context():
        check_strategy_settings(load_strategy())
    init_social(app, session, user_model)
    with app.app_context():  # SOCIAL_AUTH_STORAGE, an app's own included
        check_storage(load_strategy().storage)
    for blueprint in (social_auth, link_views, api_views):
        if blueprint.name not in app.blueprints:
            app.register_blueprint(blueprint)
    # Its callback, with rule 7's hook (flow.login) in place of its do_login.
    app.view_functions["social.complete"] = _complete
    app.jinja_env.globals.setdefault("amazon_link_csrf_token", csrf_token)
    ours = {social_auth.name, link_views.name, api_views.name}

    @app.before_request
    def _before() -> None:
        # social-auth-app-flask's views read the signed-in user from g.user.
        # Only for this integration's views: loading the user costs a query.
        if request.blueprint in ours:
            g.user = signed_in_user()
        # Its disconnect view checks no CSRF token: a form elsewhere could
        # unlink a signed-in person's Amazon account.
        if request.endpoint == "social.disconnect" and request.method == "POST":
            check_csrf(request.form.get("csrf_token"))
            _check_association_id()
        if request.endpoint in ("social.auth", "social.complete"):
            end_waiting_prompt(
                load_strategy(),
                (request.view_args or {}).get("backend"),
                starting=request.endpoint == "social.auth",
                state=request.values.get("state") or request.values.get("redirect_state"),
            )

    # The app's own sign-in and sign-out, whatever view does it (this
    # integration's too). Weak references: the app and this module own them.
    user_logged_in.connect(_signed_in, app)
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


@psa("social.complete")  # type: ignore[untyped-decorator]
def _complete(backend: str, **kwargs: Any) -> ResponseReturnValue:
    response: ResponseReturnValue = do_complete(g.backend, login=login, user=g.user, **kwargs)
    return response


def _check_association_id() -> None:
    """The link id of ``/disconnect/<backend>/<id>/`` as written in the URL.

    Its ``<int:...>`` rule reads ``054`` (and other scripts' digits) as 54,
    and its ``<string:...>`` rule passes ``54.0`` or ``+54`` on: the storage
    must see the spelling itself, so that only ``54`` names link 54.
    """
    if request.view_args and "association_id" in request.view_args:
        written = request.path.rstrip("/").rsplit("/", 1)[-1]
        request.view_args["association_id"] = parse_association_id(written)


def _session_changes_hands(app: Flask, **_signal: Any) -> None:
    """Flask-Login signed someone in or out: end what this browser left waiting
    (:func:`..flow.paused.end_sign_ins`), and rotate the CSRF token."""
    if has_request_context():
        end_sign_ins(load_strategy())
        rotate_csrf()


def _signed_in(app: Flask, user: Any = None, **_signal: Any) -> None:
    """Flask-Login signed ``user`` in: as any change of hands, and the session
    records when (``LINK_REAUTH_SECONDS``)."""
    _session_changes_hands(app)
    if has_request_context() and user is not None:
        mark_signed_in(load_strategy(), user)


def _error_response(error: SocialAuthBaseException) -> ResponseReturnValue:
    page = error_page(load_strategy(), error, signed_in=signed_in_user() is not None)
    if page.redirect_url:
        return redirect(page.redirect_url)
    response = make_response(render_template(page.template, **page.context), page.status)
    response.headers.update(page.headers)
    return response


cli = AppGroup("amazon-link", help="Login with Amazon maintenance.")


@cli.command("purge")
def purge_command() -> None:
    """Delete OAuth2 states, paused sign-ins, attempt counters and events too old to matter."""
    click.echo(purge(load_strategy()))
