"""LWA's authorization and token endpoints, on Authlib's OAuth2 server.

Authlib does the protocol (request validation, client authentication, the
error codes, PKCE's checks); this module supplies the storage hooks over
:class:`EmulatorState` and the LWA details: ``Atza|``/``Atzr|`` tokens of
Amazon's size, ``token_type: bearer``, one-hour access tokens, a new refresh
token with each refresh (the old one still valid), ``invalid_client`` as 401,
token requests as a form or a JSON body, PKCE required of public clients and
every verifier problem an ``invalid_grant``.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.authenticate_client import authenticate_none
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN, create_s256_code_challenge
from werkzeug.datastructures import CombinedMultiDict, MultiDict

from .state import (
    ACCESS_TOKEN_LIFETIME,
    CODE_LIFETIME,
    SCOPES,
    AuthorizationCode,
    Client,
    Consent,
    EmulatorState,
    Identity,
    InvalidInput,
    RefreshToken,
    new_access_token,
    new_refresh_token,
    parse_scope_data,
)

if TYPE_CHECKING:
    from flask import Flask, Request, Response

__all__ = ["LWAAuthorizationServer", "request_body"]

# "none" (no secret): a public client, or a confidential one whose code
# carries a code_challenge; each grant narrows it further.
_TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

#: For the Authlib errors raised without a description.
_DESCRIPTIONS = {
    "invalid_grant": "The grant is invalid, expired, used or issued to another client.",
}


class _TokenResponse(dict[str, Any]):
    """A token response whose repr hides the tokens.

    Authlib's grants log the issued token with ``%r`` at debug level; an app
    under test that logs at DEBUG must still never see a token in its logs.
    """

    def __repr__(self) -> str:
        return "<LWA token response>"


def _generate_token(
    grant_type: str,
    client: Client,
    user: Identity | None = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = True,
) -> _TokenResponse:
    """Authlib's token generator hook, answering in LWA's shape (no ``scope`` echoed)."""
    token = _TokenResponse(
        access_token=new_access_token(),
        token_type="bearer",
        expires_in=expires_in or ACCESS_TOKEN_LIFETIME,
    )
    if include_refresh_token:
        token["refresh_token"] = new_refresh_token()
    return token


def request_body(request: Request) -> MultiDict[str, str] | None:
    """The parameters of a form or a JSON body; None for a JSON body that is not
    an object of strings (LWA's token endpoint takes either content type)."""
    if not request.is_json:
        return request.form
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return MultiDict(data)


class _Payload(FlaskOAuth2Payload):  # type: ignore[misc]
    """The query and the body (a form or a JSON object), as one set of parameters."""

    def __init__(self, request: Request, body: MultiDict[str, str]) -> None:
        super().__init__(request)
        self._data = CombinedMultiDict([request.args, body])

    @property
    def data(self) -> CombinedMultiDict[str, str]:
        return self._data


class _PlainHTTPRequest(FlaskOAuth2Request):  # type: ignore[misc]
    """Authlib's Flask request, minus its refusal of plain HTTP off loopback.

    Real servers must use HTTPS, so Authlib rejects ``http://`` unless the host
    is loopback; the emulator serves plain HTTP wherever it is bound (a
    container's name, ``0.0.0.0``), so it shows Authlib the HTTPS form of the
    URL for that check and keeps the real one. Its ``form`` is the body,
    JSON included (the token route refused a malformed one already).
    """

    def __init__(self, request: Request) -> None:
        url = request.url
        checked = "https://" + url.removeprefix("http://") if url.startswith("http://") else url
        OAuth2Request.__init__(self, request.method, checked, headers=request.headers)
        self.uri = url
        self._request = request
        self._body = request_body(request) or MultiDict()
        self.payload = _Payload(request, self._body)

    @property
    def form(self) -> MultiDict[str, str]:
        return self._body


def _authenticate_none(query_client: Any, request: OAuth2Request) -> Client | None:
    """Authlib's "none", except that a secret sent any way (the form or an
    ``Authorization`` header) is a failed authentication, never ignored."""
    if request.headers.get("Authorization"):
        return None
    client: Client | None = authenticate_none(query_client, request)
    return client


class _PKCE(CodeChallenge):  # type: ignore[misc]
    """PKCE as LWA documents it: ``plain`` when only a challenge is sent,
    required of public clients, and every verifier problem ``invalid_grant``.

    A verifier sent for a code issued without a challenge is refused too
    (RFC 9700 section 4.8; Amazon's pages do not say).
    """

    def validate_code_challenge(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        request = grant.request
        if request.client.public and not request.payload.data.get("code_challenge"):
            raise InvalidRequestError("A public client must send a code_challenge (PKCE).")

    def validate_code_verifier(self, grant: AuthorizationCodeGrant, result: Any) -> None:
        request = grant.request
        verifier = request.form.get("code_verifier")
        code: AuthorizationCode = request.authorization_code
        if code.code_challenge is None:
            if verifier is not None:
                raise InvalidGrantError(
                    "A code_verifier was sent for a code issued without a code_challenge."
                )
            return
        if not verifier:
            raise InvalidGrantError("The request is missing the code_verifier.")
        # fullmatch: the pattern's "$" would let a trailing newline through.
        if not CODE_VERIFIER_PATTERN.fullmatch(verifier):
            raise InvalidGrantError(
                "The code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, '-._~'."
            )
        method = code.code_challenge_method or self.DEFAULT_CODE_CHALLENGE_METHOD
        derived = create_s256_code_challenge(verifier) if method == "S256" else verifier
        if not secrets.compare_digest(derived.encode(), code.code_challenge.encode()):
            raise InvalidGrantError("The code_verifier does not match the code_challenge.")


class _ScopeData:
    """Authlib grant extension: checks ``scope_data`` on the authorize request."""

    def __call__(self, grant: AuthorizationCodeGrant) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.validate)

    def validate(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        request = grant.request
        try:
            parse_scope_data(request.payload.data.get("scope_data"), request.scope)
        except InvalidInput as error:
            raise InvalidRequestError(str(error)) from None


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    """The authorization-code grant over the emulator's state."""

    TOKEN_ENDPOINT_AUTH_METHODS = _TOKEN_AUTH_METHODS

    @property
    def _state(self) -> EmulatorState:
        state: EmulatorState = self.server.state
        return state

    def authenticate_token_endpoint_client(self) -> Client:
        client: Client = super().authenticate_token_endpoint_client()
        if self.request.auth_method == "none":
            # No secret: only a code issued with a code_challenge proves the
            # caller is the app that asked for it. Checked before the code is
            # used up, so a forgotten secret does not spend the code.
            code = self._state.peek_code(self.request.form.get("code") or "")
            if (
                code is not None
                and code.client_id == client.client_id
                and code.code_challenge is None
            ):
                raise InvalidClientError(
                    status_code=401,
                    description="Client authentication failed: send the client_secret"
                    " (this code was issued without a code_challenge).",
                )
        return client

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        challenge = request.payload.data.get("code_challenge") or None
        method = request.payload.data.get("code_challenge_method") or None
        self._state.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                user_id=request.user.user_id,
                scope=request.user.scope,
                expires_at=self._state.clock() + CODE_LIFETIME,
                code_challenge=challenge,
                # Amazon: "plain" when the request carries no method.
                code_challenge_method=(method or "plain") if challenge else None,
            )
        )

    def create_authorization_response(
        self, redirect_uri: str, grant_user: Consent | None
    ) -> tuple[int, str, list[tuple[str, str]]]:
        status, body, headers = super().create_authorization_response(redirect_uri, grant_user)
        assert grant_user is not None  # a denial raised AccessDeniedError
        # Amazon returns the scopes the person granted ("Essential / Voluntary
        # Scopes"), for the app to compare with those it asked for.
        location = add_params_to_uri(dict(headers)["Location"], [("scope", grant_user.scope)])
        return status, body, [("Location", location)]

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        return self._state.consume_code(code, client.client_id)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Already gone: consume_code takes the code out when it is looked up.
        pass

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Identity | None:
        return self._state.identity(authorization_code.user_id)


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    """The refresh-token grant: a new access token and a new refresh token
    (Amazon: "trade in the refresh token for a new access token and a new
    refresh token"); the one sent keeps working."""

    TOKEN_ENDPOINT_AUTH_METHODS = _TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def _state(self) -> EmulatorState:
        state: EmulatorState = self.server.state
        return state

    def authenticate_token_endpoint_client(self) -> Client:
        client: Client = super().authenticate_token_endpoint_client()
        if self.request.auth_method == "none" and not client.public:
            raise InvalidClientError(
                status_code=401,
                description="Client authentication failed: send the client_secret.",
            )
        return client

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        return self._state.refresh_token(refresh_token)

    def authenticate_user(self, refresh_token: RefreshToken) -> Identity | None:
        return self._state.identity(refresh_token.user_id)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        # The refresh token used stays valid: Amazon's refresh tokens last
        # until the person removes the app, and Amazon does not say a refresh
        # revokes the one sent.
        pass


class LWAAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask authorization server, storing into one :class:`EmulatorState`."""

    def __init__(self, app: Flask, state: EmulatorState) -> None:
        self.state = state
        super().__init__(app)
        self.scopes_supported = sorted(SCOPES)
        self.register_token_generator("default", _generate_token)
        self.register_client_auth_method("none", _authenticate_none)
        self.register_grant(_CodeGrant, [_PKCE(required=True), _ScopeData()])
        self.register_grant(_RefreshGrant)

    def query_client(self, client_id: str) -> Client | None:
        return self.state.client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        code: AuthorizationCode | None = request.authorization_code
        refresh: RefreshToken | None = request.refresh_token
        if code is not None:
            scope = code.scope
        elif refresh is not None:
            # A refresh may narrow the scope it asks for; Authlib checked it is a subset.
            scope = request.payload.scope or refresh.scope
        else:  # pragma: no cover - only the two grants above are registered
            raise RuntimeError("a token without a grant")
        client_id = request.client.client_id
        user_id = request.user.user_id
        self.state.issue_access_token(
            client_id, user_id, scope, token["expires_in"], value=token["access_token"]
        )
        if "refresh_token" in token:
            self.state.save_refresh_token(
                RefreshToken(token["refresh_token"], client_id, user_id, scope)
            )

    def create_oauth2_request(self, request: Any) -> _PlainHTTPRequest:
        from flask import request as current_request

        return _PlainHTTPRequest(current_request)

    def handle_error_response(self, request: Any, error: Any) -> Response:
        # LWA answers every client-authentication failure with 401, where
        # Authlib uses 400 for an unknown client id sent in the form.
        if error.error == "invalid_client" and not error.redirect_uri:
            error.status_code = 401
        # Some Authlib errors compute their description instead of carrying
        # one; LWA always sends error_description.
        if not error.description:
            error.description = error.get_error_description() or _DESCRIPTIONS.get(
                error.error, "The request is invalid."
            )
        response: Response = super().handle_error_response(request, error)
        return response
