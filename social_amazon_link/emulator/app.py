"""The emulator's WSGI app: Amazon's LWA endpoints, at Amazon's paths, plus test controls.

Code under test swaps only the host: ``/ap/oa`` (sign-in and consent),
``/auth/o2/token``, ``/user/profile`` and ``/auth/o2/tokeninfo`` answer as LWA
does, errors included. ``/_emulator/...`` is the control surface (see
:mod:`.control`); faults are applied in a WSGI layer in front of Flask
(:class:`FaultInjector`) so that a dropped connection escapes Flask's error
handling and reaches the server as a dropped connection.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, NoReturn

from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .authorization import LWAAuthorizationServer, request_body
from .control import control_blueprint
from .state import (
    AccessToken,
    Consent,
    EmulatorState,
    Endpoint,
    app_id_for,
    fault_response_body,
    parse_client,
    parse_identity,
    parse_scope_data,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["EXTENSION", "FaultInjector", "create_app", "state_of"]

#: Key of the :class:`EmulatorState` in ``app.extensions``.
EXTENSION: Final = "lwa_emulator"

#: Amazon's paths, and the endpoint name faults and stats use for each.
ENDPOINT_PATHS: Final[dict[str, Endpoint]] = {
    "/ap/oa": "authorize",
    "/auth/o2/token": "token",
    "/user/profile": "profile",
    "/auth/o2/tokeninfo": "tokeninfo",
}

#: What each scope lets the app see, as the consent page words it.
SCOPE_DESCRIPTIONS: Final = {
    "profile": "Your name and email address",
    "profile:user_id": "Your Amazon account identifier",
    "postal_code": "Your postal code",
}

_AUTHORIZE_PARAMS: Final = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "scope_data",
    "code_challenge",
    "code_challenge_method",
)


def state_of(app: Flask) -> EmulatorState:
    """The :class:`EmulatorState` of an app made by :func:`create_app`."""
    state = app.extensions.get(EXTENSION)
    if not isinstance(state, EmulatorState):
        raise TypeError(f"{app!r} is not an LWA emulator app (use create_app())")
    return state


class FaultInjector:
    """WSGI layer that counts LWA requests and applies the queued faults.

    It sits in front of Flask: a drop must close the TCP connection, and an
    exception raised inside a Flask view would become a 500 answer instead.
    """

    def __init__(self, app: WSGIApplication, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        endpoint = ENDPOINT_PATHS.get(environ.get("PATH_INFO", ""))
        if endpoint is None:
            return self.app(environ, start_response)
        fault = self.state.take_request(endpoint)
        if fault is None:
            return self.app(environ, start_response)
        if fault.delay_ms:
            time.sleep(fault.delay_ms / 1000)
        if fault.drop:
            _drop_connection(environ)
        if fault.answers:
            body, content_type = fault_response_body(fault)
            answer = Response(body, status=fault.status or 200, content_type=content_type)
            return answer(environ, start_response)
        return self.app(environ, start_response)


def _drop_connection(environ: WSGIEnvironment) -> NoReturn:
    """Close the client's connection without a byte of answer.

    werkzeug's server hands the socket over in ``werkzeug.socket`` and takes a
    ``ConnectionError`` escaping the app as "the connection is gone": it then
    sends nothing. Other servers at least abort the request.
    """
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionResetError("LWA emulator fault: connection dropped")


def _lwa_error(error: str, description: str, status: int = 400) -> Response:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    return response


_MISSING_TOKEN: Final = "The request is missing a required parameter : access_token"
_INVALID_TOKEN: Final = "The request has an invalid parameter : access_token"
_EXPIRED_TOKEN: Final = "The token has expired"
_TWO_TOKENS: Final = "The request carries two different access tokens"


def _header_tokens() -> set[str]:
    """The tokens in the headers profile takes: ``Authorization: Bearer`` and
    ``x-amz-access-token`` (Amazon's "Obtain Customer Profile Information")."""
    tokens = set()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        tokens.add(value.strip())
    if request.headers.get("x-amz-access-token", "").strip():
        tokens.add(request.headers["x-amz-access-token"].strip())
    return tokens


def _shared_scopes(voluntary: frozenset[str]) -> frozenset[str]:
    """The voluntary scopes the person left ticked. A form without the page's
    ``scope_choice`` marker (a test posting the request itself) shares them all."""
    if "scope_choice" not in request.form:
        return voluntary
    return voluntary & set(request.form.getlist("share"))


def _granted_scope(scope: str, scope_data: str | None) -> str:
    """The scopes the consent grants: the essential ones and the voluntary ones shared."""
    voluntary = parse_scope_data(scope_data, scope)
    shared = _shared_scopes(voluntary)
    return " ".join(name for name in scope.split() if name not in voluntary or name in shared)


def create_app(
    identities: Iterable[dict[str, Any]] | None = None,
    clients: Iterable[dict[str, Any]] | None = None,
) -> Flask:
    """The LWA emulator as a Flask (WSGI) app, seeded with identities and clients.

    ``identities``: dicts ``{"user_id", "name", "email", "postal_code"?}``;
    ``clients``: dicts ``{"client_id", "client_secret", "redirect_uris"?, "name"?}``.
    Invalid seeds raise :class:`~.state.InvalidInput` (a ``ValueError``).
    """
    app = Flask(__name__, template_folder="templates/lwa_emulator", static_folder=None)
    state = EmulatorState()
    for identity in identities or ():
        state.put_identity(parse_identity(identity))
    for client in clients or ():
        state.put_client(parse_client(client))
    app.extensions[EXTENSION] = state
    server = LWAAuthorizationServer(app, state)
    app.register_blueprint(control_blueprint(state))
    _add_lwa_routes(app, server, state)
    app.wsgi_app = FaultInjector(app.wsgi_app, state)  # type: ignore[method-assign]
    return app


def _add_lwa_routes(app: Flask, server: LWAAuthorizationServer, state: EmulatorState) -> None:
    def consent_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
        scope = request.values.get("scope", "")
        client_id = request.values.get("client_id", "")
        client = state.client(client_id)
        voluntary = parse_scope_data(request.values.get("scope_data"), scope)
        shared = set(_shared_scopes(voluntary))
        return render_template(
            "authorize.html",
            # The app's name, as Amazon shows its security profile's.
            app_name=(client.name if client is not None else None) or client_id,
            redirect_uri=request.values.get("redirect_uri", ""),
            scopes=[
                (name, SCOPE_DESCRIPTIONS.get(name, name), name in voluntary, name in shared)
                for name in scope.split()
            ],
            choice=bool(voluntary),
            identities=state.identities(),
            selected=request.form.get("user_id"),
            params={
                name: request.values[name] for name in _AUTHORIZE_PARAMS if name in request.values
            },
            error=error,
        ), status

    def error_page(message: str, status: int = 400) -> tuple[str, int]:
        return render_template("error.html", message=message, status=status), status

    @app.route("/ap/oa", methods=["GET", "POST"])
    def authorize() -> Any:
        try:
            grant = server.get_consent_grant(end_user=None)
        except OAuth2Error as error:
            if error.redirect_uri:
                # The client and redirect_uri are valid: LWA tells the app.
                return server.handle_error_response(None, error)
            # Never redirect to a URI the client did not register.
            return error_page(error.get_error_description() or error.error)
        if request.method == "GET":
            return consent_page()
        decision = request.form.get("decision")
        if decision == "deny":
            return server.create_authorization_response(grant=grant, grant_user=None)
        if decision != "allow":
            return consent_page("Choose Allow or Cancel.", 400)
        identity = state.identity(request.form.get("user_id", ""))
        if identity is None:
            return consent_page("Choose the account to sign in with.", 400)
        granted = _granted_scope(grant.request.scope, request.values.get("scope_data"))
        if not granted:
            return consent_page("Share at least one item, or choose Cancel.", 400)
        consent = Consent(identity, granted)
        return server.create_authorization_response(grant=grant, grant_user=consent)

    @app.post("/auth/o2/token")
    def token() -> Any:
        body = request_body(request)
        if body is None:
            return _lwa_error(
                "invalid_request", "The request body must be a form or a JSON object of strings"
            )
        if not body.get("grant_type"):
            # Authlib would call a missing grant_type unsupported; it is missing.
            return _lwa_error(
                "invalid_request", "The request is missing a required parameter : grant_type"
            )
        return server.create_token_response()

    def live_token(value: str | None) -> AccessToken | Response:
        if not value:
            return _lwa_error("invalid_request", _MISSING_TOKEN)
        token = state.access_token(value)
        if token is None:
            return _lwa_error("invalid_token", _INVALID_TOKEN)
        if token.is_expired(state.clock()):
            return _lwa_error("invalid_token", _EXPIRED_TOKEN)
        return token

    @app.get("/user/profile")
    def profile() -> Any:
        offered = _header_tokens()
        if len(offered) > 1:
            return _lwa_error("invalid_request", _TWO_TOKENS)
        value = next(iter(offered), None)
        if value is None and request.args.get("access_token"):
            # Amazon accepts this; counting it lets tests prove a client never does it.
            state.count_token_in_query()
            value = request.args["access_token"]
        token = live_token(value)
        if isinstance(token, Response):
            return token
        identity = state.identity(token.user_id)
        if identity is None:
            return _lwa_error("invalid_token", _INVALID_TOKEN)
        # The identity's current data: a test changes an email "on Amazon" this way.
        body = {"user_id": identity.user_id}
        if "profile" in token.scopes:
            body.update(name=identity.name, email=identity.email)
        if "postal_code" in token.scopes and identity.postal_code:
            body["postal_code"] = identity.postal_code
        return jsonify(body)

    @app.get("/auth/o2/tokeninfo")
    def tokeninfo() -> Any:
        token = live_token(request.args.get("access_token"))
        if isinstance(token, Response):
            return token
        return jsonify(
            iss="https://www.amazon.com",
            user_id=token.user_id,
            aud=token.client_id,
            app_id=app_id_for(token.client_id),
            exp=token.seconds_left(state.clock()),
            iat=int(token.issued_at),
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        # JSON for the API paths, as LWA (and the control surface) answer;
        # werkzeug's HTML pages elsewhere.
        code = error.code or 500
        if code < 400:
            return error
        name = error.name.lower().replace(" ", "_")
        if request.path.startswith("/_emulator/"):
            response = jsonify(error=name, message=error.description)
        elif request.path.startswith(("/auth/", "/user/")):
            response = jsonify(error=name, error_description=error.description)
        else:
            return error
        response.status_code = code
        return response
