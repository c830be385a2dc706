"""The Amazon backend: social-core's ``AmazonOAuth2``, kept compatible, made safe.

A drop-in for ``social_core.backends.amazon.AmazonOAuth2``: same ``name``
(existing ``provider="amazon"`` rows keep working), same settings and the same
``EXTRA_DATA``. It adds regions and URL overrides, sends the token in the
``Authorization`` header, shares one kept-alive HTTP client per Amazon host,
validates ``user_id``, and checks with tokeninfo that a token a client sent us
(``do_auth(access_token)``) was issued to this app (``KEY`` or one of
``AUDIENCES``) before trusting its profile. The web flow sends a PKCE S256
challenge and its verifier (setting ``PKCE``, on by default: social-core's
``BaseOAuth2PKCE``, which keeps the verifier in the session's sign-in
transaction); :meth:`AmazonOAuth2.complete_code_grant` is the mobile SDK's
code grant, exchanged without a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Literal, cast

from social_core.backends.oauth import BaseOAuth2PKCE
from social_core.exceptions import AuthConfigurationError, ErrorStage
from social_core.utils import constant_time_compare, user_agent

from .errors import (
    AccessDenied,
    AmazonUnavailable,
    ClientMisconfigured,
    WrongAudience,
)
from .lwa import REGIONS, Deadline, LWAClient, Region, check_answer, client_for
from .sealing import SEALED_TOKENS_KEY, unseal
from .settings import scope_list

__all__ = ["AmazonOAuth2"]

#: An OAuth2 error code as Amazon sends them (``access_denied``, ...).
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")

#: A setting the strategy has no value for (None may be one).
_UNSET: Any = object()


class AmazonOAuth2(BaseOAuth2PKCE[Any]):
    """Login with Amazon (OAuth 2 authorization code and client tokens)."""

    name = "amazon"
    title = "Amazon"
    icon = "amazon.svg"
    ID_KEY = "user_id"
    REQUIRES_USER_ID = True
    AUTHORIZATION_URL = REGIONS["NA"].authorization_url
    ACCESS_TOKEN_URL = REGIONS["NA"].api_url + "/auth/o2/token"
    ACCESS_TOKEN_METHOD = "POST"
    DEFAULT_SCOPE = ["profile"]
    REDIRECT_STATE = False
    # RFC 7636 allows 43 to 128 characters; social-core draws them from 62
    # letters and digits, so 64 of them are some 380 bits.
    PKCE_DEFAULT_CODE_VERIFIER_LENGTH = 64
    EXTRA_DATA = [
        ("refresh_token", "refresh_token", True),
        ("user_id", "user_id"),
        # The name Amazon gave last: an account page can say which Amazon
        # account a link is, not only its user_id.
        ("name", "name"),
        ("postal_code", "postal_code"),
        # The email Amazon gave last, so social_amazon_link.pipelines.update_email can tell when
        # it changed on Amazon.
        ("email", "email"),
    ]

    # The access token this backend obtained itself by exchanging an
    # authorization code with our client secret in this request: the only
    # token that needs no tokeninfo audience check.
    _exchanged_token: str | None = None
    # The calls to Amazon of the sign-in under way share this deadline:
    # REQUESTS_TIMEOUT bounds them together (None outside a sign-in).
    _deadline: Deadline | None = None

    # -- settings --------------------------------------------------------------

    def setting(self, name: str, default: Any = None) -> Any:
        """social-core's PKCE settings, as this library names them.

        ``BaseOAuth2PKCE`` reads ``USE_PKCE`` and ``PKCE_CODE_CHALLENGE_METHOD``;
        here the switch is ``PKCE`` (only ``False`` turns it off: the start-up
        check refuses any other value) and the method is always S256, never
        ``plain``, which would send the verifier itself through the browser.
        """
        if name == "USE_PKCE":
            return self.setting("PKCE", True) is not False
        if name == "PKCE_CODE_CHALLENGE_METHOD":
            return "S256"
        # Read once per backend, which lives for one request: a sign-in reads
        # some settings a dozen times, each a lookup of up to three names.
        read = self.__dict__.setdefault("_settings_read", {})
        try:
            value = read[name]
        except KeyError:
            value = read[name] = super().setting(name, _UNSET)
        return default if value is _UNSET else value

    def client_ids(self) -> list[str]:
        """The client ids whose tokens and codes this server takes: ``KEY``, then ``AUDIENCES``."""
        key, _secret = self.get_key_and_secret()
        if not key:
            raise AuthConfigurationError(
                self, code="missing_setting", parameter="KEY", stage="token_validation"
            )
        audiences = self.setting("AUDIENCES") or []
        return [key, *(audience for audience in audiences if isinstance(audience, str))]

    # -- where Amazon is -----------------------------------------------------

    def region(self) -> Region:
        """The LWA region's hosts (setting ``REGION``: NA, EU or FE)."""
        name = self.setting("REGION", "NA")
        region = REGIONS.get(str(name).upper()) if isinstance(name, str) else None
        if region is None:
            raise AuthConfigurationError(
                self, code="invalid_setting", parameter="REGION", stage="begin"
            )
        return region

    def authorization_url(self) -> str:
        return cast(str, self.setting("AUTHORIZATION_URL") or self.region().authorization_url)

    def api_url(self) -> str:
        """The API host: setting ``API_URL`` (emulator, proxy) or the region's."""
        return cast(str, self.setting("API_URL") or self.region().api_url).rstrip("/")

    def access_token_url(self) -> str:
        return cast(str, self.setting("ACCESS_TOKEN_URL") or f"{self.api_url()}/auth/o2/token")

    @cached_property
    def lwa(self) -> LWAClient:
        """The shared client for this backend's API host (looked up once per backend)."""
        timeout = self.setting("REQUESTS_TIMEOUT") or self.setting("URLOPEN_TIMEOUT") or 5.0
        return client_for(
            self.api_url(),
            timeout=float(timeout),
            verify=self.setting("VERIFY_SSL", True),
            user_agent=self.setting("USER_AGENT") or user_agent(),
            proxies=self.setting("PROXIES") or None,
        )

    def get_scope(self) -> list[str]:
        """``SCOPE`` replaces the default, but a sign-in always asks for a user_id.

        social-core adds ``DEFAULT_SCOPE`` to ``SCOPE``, which makes
        ``profile:user_id`` alone impossible to ask for; here ``SCOPE`` is the
        whole list, with ``profile`` added when it names no profile scope (so
        stock settings such as ``["postal_code"]`` mean what they meant). A
        string is split on spaces, as Amazon writes scopes.
        """
        scope = scope_list(self.setting("SCOPE")) or list(self.DEFAULT_SCOPE)
        if "profile" not in scope and "profile:user_id" not in scope:
            scope.insert(0, "profile")
        return list(dict.fromkeys(scope))

    # -- errors --------------------------------------------------------------

    def process_error(self, data: Any, *, stage: ErrorStage = "callback") -> None:
        """Errors Amazon sends back on the redirect; only a refusal is "canceled".

        Anyone can open ``/complete/amazon/?error=...``: the sign-in's state is
        checked (and used up) first, so only an error that comes back on a
        sign-in this browser started is believed, and only a well-formed code
        is logged.
        """
        if not isinstance(data, dict) or not data.get("error"):
            return
        if not self.ASSOCIATION_ONLY:
            self.validate_state()
        error = str(data["error"])
        reason = error if _ERROR_CODE.fullmatch(error) else "unknown_error"
        if error == "access_denied":
            raise AccessDenied(backend=self, reason=reason, stage=stage)
        if error in ("server_error", "temporarily_unavailable"):
            raise AmazonUnavailable(backend=self, reason=reason, stage=stage)
        raise ClientMisconfigured(backend=self, reason=reason, stage=stage)

    # -- HTTP: everything goes through the shared LWA client -------------------

    def end_transaction(self) -> None:
        """Before a call to Amazon: no database transaction waits on it (the storage's hook)."""
        end = getattr(getattr(self.strategy, "storage", None), "end_transaction", None)
        if callable(end):
            end()

    def auth_complete(self, *args: Any, **kwargs: Any) -> Any:
        """The callback: the code exchange and the profile, within one deadline."""
        with self._sign_in_deadline():
            return super().auth_complete(*args, **kwargs)

    def do_auth(self, access_token: str, *args: Any, **kwargs: Any) -> Any:
        """A sign-in with a token (a client's, or the one just exchanged), within one deadline."""
        with self._sign_in_deadline():
            return super().do_auth(access_token, *args, **kwargs)

    @contextmanager
    def _sign_in_deadline(self) -> Iterator[None]:
        if self._deadline is not None:  # do_auth inside auth_complete: the same sign-in
            yield
            return
        self._deadline = self.lwa.deadline()
        try:
            yield
        finally:
            self._deadline = None

    def request(
        self,
        url: str,
        *,
        method: Literal["GET", "POST", "DELETE"] = "GET",
        headers: Any = None,
        data: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        auth: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        stage: ErrorStage = "user_info",
    ) -> Any:
        # social-core calls requests.request() here, one new connection per
        # call; route its generic paths (revoke, refresh) through our session.
        self.end_transaction()
        response = self.lwa.send(
            method,
            url,
            stage=stage,
            deadline=self._deadline,
            timeout=timeout,
            headers=headers,
            data=data,
            json=json,
            auth=auth,
            params=params,
        )
        if response.status_code >= 400:
            # social-core's request() raises for an error answer; so does this,
            # with the error this library maps that answer to.
            check_answer(response, "token" if url == self.access_token_url() else "profile")
        return response

    def request_access_token(
        self,
        url: str,
        method: Any = "POST",
        headers: Any = None,
        data: dict[str, Any] | None = None,
        json: Any = None,
        auth: Any = None,
        params: Any = None,
        *,
        stage: ErrorStage = "token_exchange",
    ) -> dict[str, Any]:
        """Exchange the authorization code; remember the token we obtained."""
        self.end_transaction()
        response = self.lwa.request_token(
            data or params or {}, auth=auth, url=url, deadline=self._deadline
        )
        self._exchanged_token = response["access_token"]
        return response

    def complete_code_grant(
        self, code: str, client_id: str, redirect_uri: str, code_verifier: str, **kwargs: Any
    ) -> Any:
        """The mobile SDK's authorization-code grant: exchange, then sign in.

        The app's LWA SDK got ``code`` for ``client_id`` and ``redirect_uri``
        with the challenge of ``code_verifier``, which only this server holds.
        The client is public, so no secret is sent (Amazon checks the
        verifier instead); the caller has checked that ``client_id`` is one
        of :meth:`client_ids`. The token comes straight from Amazon's token
        endpoint, so, as on the web callback, no tokeninfo check is needed;
        the rest is :meth:`do_auth` (``kwargs``: the pipeline's, ``user``).
        """
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": code_verifier,
        }
        with self._sign_in_deadline():
            response = self.request_access_token(self.access_token_url(), data=data)
            if self._other_client(client_id):
                # Its refresh token, if kept (STORE_TOKENS), is refreshed as this client.
                response = {**response, "client_id": client_id}
            return self.do_auth(response["access_token"], response=response, **kwargs)

    # -- refreshing kept tokens (STORE_TOKENS) ---------------------------------

    def refresh_token(
        self, token: str, *args: Any, client_id: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """New tokens for a kept refresh token (``social.refresh_token(strategy)``
        passes ``client_id`` from :meth:`get_refresh_token_kwargs`)."""
        self.end_transaction()
        response = self.lwa.request_token(
            self.refresh_token_params(token, *args, client_id=client_id, **kwargs),
            url=self.refresh_token_url(),  # type: ignore[no-untyped-call]
        )
        if self._other_client(client_id):
            response = {**response, "client_id": client_id}
        return response

    def _other_client(self, client_id: str | None) -> bool:
        """Whether tokens for ``client_id`` are another client's than ``KEY``'s (a
        mobile app's, through its code grant): refreshed as that client."""
        key, _secret = self.get_key_and_secret()
        return client_id is not None and client_id != key

    def get_refresh_token_kwargs(self, extra_data: dict[str, Any]) -> dict[str, Any]:
        """What ``social.refresh_token(strategy)`` passes on: the client a mobile
        app's code grant got the tokens for, when it is not ``KEY``."""
        client_id = extra_data.get("client_id")
        return {"client_id": client_id} if isinstance(client_id, str) and client_id else {}

    def refresh_token_params(
        self, token: str, *args: Any, client_id: str | None = None, **kwargs: Any
    ) -> dict[str, str]:
        """``KEY`` and ``SECRET``; for tokens a public client (one of ``AUDIENCES``)
        got, its client id alone: Amazon refuses a secret that is not the client's."""
        if not self._other_client(client_id):
            params: dict[str, str] = super().refresh_token_params(token, *args, **kwargs)
            return params
        if client_id not in self.client_ids():
            raise WrongAudience(backend=self, reason="client_id_not_accepted", stage="refresh")
        return {"refresh_token": token, "grant_type": "refresh_token", "client_id": client_id}

    # -- profile -------------------------------------------------------------

    def user_data(self, access_token: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The Amazon profile, fetched by this server with the token.

        A token we did not obtain ourselves came from a client (a mobile app's
        LWA SDK): tokeninfo must say it was issued to our ``KEY`` (or one of
        ``AUDIENCES``) before its profile is trusted, or any app's token would
        sign in here.
        """
        self.end_transaction()
        exchanged = self._exchanged_token
        if exchanged is not None and constant_time_compare(access_token, exchanged):
            profile = self.lwa.profile(access_token, self._deadline)
        else:
            profile = self.lwa.verified_profile(access_token, self.client_ids(), self._deadline)
        return profile.as_dict()

    def extra_data(
        self,
        user: Any,
        uid: str,
        response: dict[str, Any],
        details: dict[str, Any],
        pipeline_kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        """What the link's ``extra_data`` keeps: tokens only with ``STORE_TOKENS``.

        A login needs no Amazon token once the profile is fetched, so by
        default none is stored (social-core's backend stored both). With
        ``STORE_TOKENS = True`` the tokens that ``social_amazon_link.pipelines.fetch_profile``
        sealed are opened and stored as social-core stored them, for apps
        that call Amazon's APIs on the person's behalf.
        """
        response = dict(response)
        store_tokens = bool(self.setting("STORE_TOKENS", False))
        sealed = pipeline_kwargs.get(SEALED_TOKENS_KEY)
        if store_tokens and isinstance(sealed, str):
            _key, secret = self.get_key_and_secret()
            response.update(unseal(secret, sealed) or {})
        data = super().extra_data(user, uid, response, details, pipeline_kwargs)
        if not store_tokens:
            for key in ("access_token", "refresh_token", "token_type"):
                data.pop(key, None)
        elif data.get("refresh_token"):
            # The client the refresh token is for: a mobile app's (its code
            # grant, :meth:`complete_code_grant`), or None for KEY's.
            data["client_id"] = response.get("client_id")
        return data

    def get_user_details(self, response: dict[str, Any]) -> dict[str, Any]:
        """Return user details from the Amazon profile.

        ``postal_code`` is there only when the ``postal_code`` scope was asked
        for; list it in ``USER_FIELDS`` to give it to accounts made at sign-in.
        """
        name = response.get("name") or ""
        return {
            "username": name,
            "email": response.get("email"),
            "fullname": response.get("name"),
            "first_name": None,
            "last_name": None,
            "postal_code": response.get("postal_code"),
        }
