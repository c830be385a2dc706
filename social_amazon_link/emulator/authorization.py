"""LWA's authorization and token endpoints, on Authlib's OAuth2 server.

Authlib does the protocol (request validation, client authentication, the
error codes); this module supplies the storage hooks over :class:`EmulatorState`
and the LWA details: ``Atza|``/``Atzr|`` tokens, ``token_type: bearer``, one-hour
access tokens, refresh tokens that survive a refresh, and ``invalid_client`` as 401.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant

from .state import (
    ACCESS_TOKEN_LIFETIME,
    CODE_LIFETIME,
    SCOPES,
    AuthorizationCode,
    Client,
    EmulatorState,
    Identity,
    RefreshToken,
    new_access_token,
    new_refresh_token,
)

if TYPE_CHECKING:
    from flask import Flask, Request, Response

__all__ = ["LWAAuthorizationServer"]

_TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

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


class _PlainHTTPRequest(FlaskOAuth2Request):  # type: ignore[misc]
    """Authlib's Flask request, minus its refusal of plain HTTP off loopback.

    Real servers must use HTTPS, so Authlib rejects ``http://`` unless the host
    is loopback; the emulator serves plain HTTP wherever it is bound (a
    container's name, ``0.0.0.0``), so it shows Authlib the HTTPS form of the
    URL for that check and keeps the real one.
    """

    def __init__(self, request: Request) -> None:
        url = request.url
        checked = "https://" + url.removeprefix("http://") if url.startswith("http://") else url
        OAuth2Request.__init__(self, request.method, checked, headers=request.headers)
        self.uri = url
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    """The authorization-code grant over the emulator's state."""

    TOKEN_ENDPOINT_AUTH_METHODS = _TOKEN_AUTH_METHODS

    @property
    def _state(self) -> EmulatorState:
        state: EmulatorState = self.server.state
        return state

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        self._state.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                user_id=request.user.user_id,
                scope=request.scope,
                expires_at=self._state.clock() + CODE_LIFETIME,
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        return self._state.consume_code(code, client.client_id)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Already gone: consume_code takes the code out when it is looked up.
        pass

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Identity | None:
        return self._state.identity(authorization_code.user_id)


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    """The refresh-token grant: a new access token, the same refresh token."""

    TOKEN_ENDPOINT_AUTH_METHODS = _TOKEN_AUTH_METHODS

    @property
    def _state(self) -> EmulatorState:
        state: EmulatorState = self.server.state
        return state

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        return self._state.refresh_token(refresh_token)

    def authenticate_user(self, refresh_token: RefreshToken) -> Identity | None:
        return self._state.identity(refresh_token.user_id)

    def issue_token(self, user: Identity, refresh_token: RefreshToken) -> _TokenResponse:
        token: _TokenResponse = super().issue_token(user, refresh_token)
        # LWA answers a refresh with the refresh token the client already holds.
        token["refresh_token"] = refresh_token.value
        return token

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        # LWA refresh tokens stay valid after use.
        pass


class LWAAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask authorization server, storing into one :class:`EmulatorState`."""

    def __init__(self, app: Flask, state: EmulatorState) -> None:
        self.state = state
        super().__init__(app)
        self.scopes_supported = sorted(SCOPES)
        self.register_token_generator("default", _generate_token)
        self.register_grant(_CodeGrant)
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
        if code is not None and "refresh_token" in token:
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
