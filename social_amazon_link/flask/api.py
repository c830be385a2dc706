"""The mobile JSON API on Flask: ``/api/amazon/``: token, continue, code/challenge, code.

What each endpoint reads, does and answers is :mod:`social_amazon_link.flow.api`;
this blueprint routes requests to it and sends its answers. A paused sign-in
(and a code challenge) belongs to the session cookie that made it, so clients
must keep cookies.

An app protected by Flask-WTF's ``CSRFProtect`` has this blueprint exempted
when it is registered (or, if ``CSRFProtect`` comes later, before it checks
a request here): a mobile client holds no CSRF token, and no cross-site form
can send the ``application/json`` body every endpoint here requires (a script
on another origin can only if the app's own CORS rules let it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from flask.sansio.app import App
from flask.sansio.blueprints import BlueprintSetupState
from social_core.exceptions import SocialAuthBaseException
from social_flask.utils import load_strategy
from werkzeug.exceptions import HTTPException

from ..errors import RequestTooLarge
from ..flow import api
from ..flow.paused import load_backend
from .storage import database_outage

__all__ = ["bp"]

bp = Blueprint("amazon_api", __name__, url_prefix="/api/amazon")

# Every standard method but POST (HEAD comes with GET). Listed so that each is
# routed to a view of ours: Flask's automatic OPTIONS answer is an empty HTML
# page, and its routing 405 never reaches a blueprint's error handlers.
_METHODS = ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]


@bp.post("/token", provide_automatic_options=False)
def token() -> Response:
    """Sign in with a client's LWA access token."""
    return _call(api.token)


@bp.post("/continue", provide_automatic_options=False)
def resume() -> Response:
    """Answer the prompt a sign-in paused on, and carry on with it."""
    return _call(api.resume)


@bp.post("/code/challenge", provide_automatic_options=False)
def code_challenge() -> Response:
    """A PKCE challenge for the LWA SDK's authorization-code grant."""
    return _call(api.code_challenge)


@bp.post("/code", provide_automatic_options=False)
def code() -> Response:
    """Sign in with the code the LWA SDK got with this session's challenge."""
    return _call(api.code)


@bp.route("/token", methods=_METHODS)
@bp.route("/continue", methods=_METHODS)
@bp.route("/code/challenge", methods=_METHODS)
@bp.route("/code", methods=_METHODS)
def wrong_method() -> Response:
    return _send(api.METHOD_NOT_ALLOWED)


@bp.route("/", methods=["POST", *_METHODS])
@bp.route("/<path:_rest>", methods=["POST", *_METHODS])
def not_found(_rest: str = "") -> Response:
    return _send(api.NOT_FOUND)


def _call(endpoint: Callable[..., api.Answer]) -> Response:
    body = api.read_json(request.stream.read, request.content_length, request.mimetype)
    g.strategy = load_strategy()
    g.backend = load_backend(g.strategy, "amazon")
    return _send(endpoint(g.strategy, g.backend, body, _redact))


def _send(answer: api.Answer) -> Response:
    response = current_app.response_class(
        answer.text, status=answer.status, mimetype="application/json"
    )
    response.headers.update(answer.headers)
    return response


def _redact(*secrets: str) -> None:
    """Remember this request's secrets, to blank them out of an unexpected traceback."""
    g.amazon_api_secrets = [*getattr(g, "amazon_api_secrets", []), *secrets]


@bp.errorhandler(SocialAuthBaseException)
def _auth_error(error: SocialAuthBaseException) -> Response:
    return _send(api.error_answer(error))


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    if error.code == 413:
        return _auth_error(RequestTooLarge())
    code = error.code or 400
    # Werkzeug's descriptions are plain sentences, written for clients.
    message = error.description or error.name
    body = {"error": "invalid_request" if code == 400 else f"http_{code}", "message": message}
    return _send(api.Answer.of(body, code))


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    unavailable = database_outage(error)
    if unavailable is not None:
        return _auth_error(unavailable)
    answer, text = api.server_error(error, getattr(g, "amazon_api_secrets", []))
    current_app.logger.error("Login with Amazon (API): unexpected error\n%s", text)
    return _send(answer)


@bp.record_once
def _exempt_when_registered(state: BlueprintSetupState) -> None:
    # CSRFProtect set up already: its before_request runs ahead of ours.
    _exempt_from_csrf(state.app)


@bp.before_app_request
def _exempt_before_csrf_checks() -> None:
    # CSRFProtect set up later: this app-wide hook was added first, so it runs first.
    if current_app.blueprints.get(request.blueprint or "") is bp:
        _exempt_from_csrf(current_app)


def _exempt_from_csrf(app: App) -> None:
    """Exempt this blueprint from Flask-WTF's ``CSRFProtect``, if the app uses it.

    Safe: every endpoint here reads only an ``application/json`` body, which a
    cross-site form cannot send and a cross-site script can only after a CORS
    preflight (``OPTIONS``, answered 405 here). ``exempt`` adds to a set, so
    calling it again is harmless.
    """
    csrf: Any = app.extensions.get("csrf")
    exempt = getattr(csrf, "exempt", None)
    if callable(exempt):
        exempt(bp)
