"""One family of errors for Login with Amazon, each with a stable code.

Every class subclasses :class:`AmazonError` *and* one of social-core 7's error
categories, so an app that already catches ``AuthCredentialError`` or
``AuthProviderError`` keeps working, while this library's views, pages and JSON
answers use ``error.code``, which never changes between releases.

``code`` is what a client may branch on (the JSON API's ``error``); ``reason``
names the precise failure inside a code (``timeout``, ``http_503``,
``not_json``...) for logs and tests. Neither ever contains a token or secret.
"""

from __future__ import annotations

from typing import Any, ClassVar

from social_core.exceptions import (
    AuthAssociationError,
    AuthCanceled,
    AuthConfigurationError,
    AuthCredentialError,
    AuthException,
    AuthInputError,
    AuthPolicyError,
    AuthProviderError,
    AuthResponseError,
    AuthSessionError,
    ErrorStage,
    SocialAuthBaseException,
)

__all__ = [
    "PLAIN_MESSAGES",
    "AccessDenied",
    "AmazonBadResponse",
    "AmazonError",
    "AmazonUnavailable",
    "ClientMisconfigured",
    "DatabaseUnavailable",
    "IdentityInUse",
    "InsecureTransport",
    "InvalidGrant",
    "InvalidPartial",
    "InvalidRequest",
    "InvalidToken",
    "NoCodeChallenge",
    "PasswordUnavailable",
    "ReauthRequired",
    "RegistrationInvalid",
    "RequestTooLarge",
    "TooManyAttempts",
    "UnknownLink",
    "WrongAudience",
    "WrongCode",
    "WrongPassword",
    "error_status",
    "plain_message",
]


class AmazonError(SocialAuthBaseException):
    """Base of this library's errors; never raised itself."""

    code_name: ClassVar[str] = "amazon_error"
    #: HTTP status the JSON API and the error page answer with.
    http_status: ClassVar[int] = 400
    #: What a person reads; safe to show, never contains provider data.
    message: ClassVar[str] = "Login with Amazon failed."

    def __init__(
        self,
        *details: object,
        backend: Any = None,
        reason: str | None = None,
        stage: ErrorStage = "unknown",
        **kwargs: Any,
    ) -> None:
        super().__init__(backend, *details, code=self.code_name, stage=stage, **kwargs)
        self.reason = reason or self.code_name
        # social-core only knows its own codes; keep our message instead of
        # its "unknown error" fallback.
        self.args = (self.message,)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" + (
            f" ({self.reason})" if self.reason != self.code else ""
        )

    def as_json(self) -> dict[str, Any]:
        """The body the JSON API answers with."""
        return {"error": self.code}


class InvalidRequest(AmazonError, AuthInputError):
    """The request to *our* server is missing or has malformed fields."""

    code_name = "invalid_request"
    http_status = 400
    message = "The request is missing a field or has a malformed one."

    def as_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.detail or self.message}


class NoCodeChallenge(InvalidRequest):
    """``POST /api/amazon/code`` in a session that holds no usable code challenge.

    ``reason``: ``missing`` (none was asked for with these cookies), ``used``
    (its code was sent already, or a newer challenge replaced it), or
    ``expired``. Refused before Amazon is called.
    """

    message = (
        "This session has no sign-in code challenge waiting: ask for one "
        "(POST /api/amazon/code/challenge), sign in with Amazon with it, then send the "
        "code with the same cookies."
    )

    def __init__(self, reason: str) -> None:
        super().__init__(reason=reason, stage="callback")


class InsecureTransport(AmazonError, AuthInputError):
    """A token or code reached the JSON API over plain HTTP from another host.

    Rule 1: the client sends it over HTTPS. Accepted over plain HTTP only
    from loopback, or when ``BEHIND_TLS_PROXY`` says a proxy in front of the
    app ends TLS (:func:`social_amazon_link.flow.api.check_transport`).
    """

    code_name = "insecure_transport"
    http_status = 400
    message = "Sign-in tokens are accepted over HTTPS only."

    def as_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


class RequestTooLarge(AmazonError, AuthInputError):
    """A request body over the JSON API's limit (``flow.api.MAX_BODY_BYTES``)."""

    code_name = "request_too_large"
    http_status = 413
    message = "The request is too large."


class RegistrationInvalid(InvalidRequest):
    """The registration form has fields to correct; ``fields`` maps each to why."""

    message = "Some fields need your attention."

    def __init__(self, *details: object, fields: dict[str, str], **kw: Any) -> None:
        super().__init__(*details, **kw)
        self.fields = fields

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "fields": self.fields}


class InvalidToken(AmazonError, AuthCredentialError):
    """Amazon rejected the access token (unknown, expired, revoked, wrong scope)."""

    code_name = "invalid_token"
    http_status = 401
    message = "Amazon did not accept the sign-in. Please sign in with Amazon again."


class WrongAudience(AmazonError, AuthCredentialError):
    """The token is valid but was issued to another app (tokeninfo ``aud``)."""

    code_name = "wrong_audience"
    http_status = 403
    message = "This Amazon sign-in was made for another app."


class InvalidGrant(AmazonError, AuthCredentialError):
    """The authorization code was rejected (used, expired, wrong redirect_uri,
    issued to another client, or its PKCE verifier does not match)."""

    code_name = "invalid_grant"
    http_status = 400
    message = "The Amazon sign-in expired or was already used. Please try again."


class AccessDenied(AmazonError, AuthCanceled):
    """The person declined consent on Amazon's page: the only "canceled" case."""

    code_name = "access_denied"
    http_status = 403
    message = "You cancelled Login with Amazon. Nothing was changed."


class ClientMisconfigured(AmazonError, AuthConfigurationError):
    """Amazon refused our client id, secret or request: a deployment problem."""

    code_name = "amazon_misconfigured"
    # Amazon (the upstream) refused the request: a bad gateway, not a crash.
    http_status = 502
    message = "Login with Amazon is not configured correctly. Please contact support."


class AmazonUnavailable(AmazonError, AuthProviderError):
    """Amazon could not be reached, timed out, or answered 5xx or 429."""

    code_name = "amazon_unavailable"
    http_status = 502
    message = "Amazon is not answering right now. Please try again in a moment."


class AmazonBadResponse(AmazonError, AuthResponseError):
    """Amazon answered, but not with the JSON shape LWA documents."""

    code_name = "amazon_unavailable"
    http_status = 502
    message = AmazonUnavailable.message


class IdentityInUse(AmazonError, AuthAssociationError):
    """That Amazon account is already linked to another local account."""

    code_name = "identity_in_use"
    http_status = 409
    message = "This Amazon account is already linked to another account."


class WrongPassword(AmazonError, AuthPolicyError):
    """The local password given to link an account was wrong."""

    code_name = "wrong_password"
    http_status = 403
    message = "That password is not right."

    def __init__(self, *details: object, attempts_left: int, **kw: Any) -> None:
        super().__init__(*details, **kw)
        self.attempts_left = attempts_left

    def as_json(self) -> dict[str, Any]:
        return {"error": self.code, "attempts_left": self.attempts_left}


class WrongCode(WrongPassword):
    """The one-time code given to link an account without a password was wrong."""

    code_name = "wrong_code"
    message = "That code is not right, or it has expired."


class PasswordUnavailable(AmazonError, AuthPolicyError):
    """The matching account has no password, and no code can be sent to prove ownership."""

    code_name = "password_unavailable"
    http_status = 409
    message = (
        "An account with this email exists but has no password to confirm the link. "
        "Sign in to it another way, then connect Amazon from your account page."
    )


class ReauthRequired(AmazonError, AuthPolicyError):
    """A signed-in user connecting another Amazon account signed in too long ago,
    and the account has neither a password nor an email to send a code to."""

    code_name = "reauth_required"
    http_status = 403
    message = (
        "To connect another Amazon account, please sign out and sign in again first, "
        "then connect it right away. Nothing was changed."
    )


class TooManyAttempts(AmazonError, AuthPolicyError):
    """Too many wrong passwords (or codes sent) for this local account; locked for a while.

    Anyone whose Amazon profile carries the account's email can cause this:
    the message tells the owner the way that still works, which no lock of
    the linking flow touches.
    """

    code_name = "too_many_attempts"
    http_status = 429
    message = (
        "Too many wrong passwords were tried to link an Amazon account to this account, "
        "so linking is paused for a while. If the account is yours, you can still sign in "
        "with your password as usual, then link Amazon from your account page."
    )
    #: When the lock is on the codes emailed to the account's address.
    CODES_MESSAGE: ClassVar[str] = (
        "We sent this address too many codes, so linking is paused for a while. If the "
        "account is yours, sign in to it as you usually do, then link Amazon from your "
        "account page."
    )

    def __init__(self, *details: object, retry_after: int, **kw: Any) -> None:
        super().__init__(*details, retry_after=str(retry_after), **kw)
        self.retry_after_seconds = retry_after

    def as_json(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "retry_after": self.retry_after_seconds,
            "message": self.detail or self.message,
        }


class UnknownLink(AmazonError, AuthInputError):
    """Unlinking names no link of the signed-in user: an id that is not a
    positive whole number written plainly (``54``, not ``054``, ``54.0`` or
    ``+54``), too large to be one, or another account's."""

    code_name = "unknown_link"
    http_status = 404
    message = "There is no such link on your account. It may have been removed already."


class InvalidPartial(AmazonError, AuthSessionError):
    """A paused sign-in that is unknown, expired, used or from another session."""

    code_name = "invalid_partial"
    http_status = 400
    message = (
        "This sign-in is no longer waiting: it already finished, was cancelled or expired. "
        "Please start again."
    )


class DatabaseUnavailable(AmazonError, AuthException):
    """The app's database could not be reached, dropped the connection, or stayed busy.

    Nothing of the request was written (its transaction was rolled back);
    trying again in a moment works once the database is back. ``reason``
    names the driver's failure class, never its message (which can quote a
    statement's parameters).
    """

    code_name = "database_unavailable"
    http_status = 503
    message = "We cannot reach our database right now. Please try again in a moment."
    #: What the JSON API sends as ``Retry-After`` and the page says.
    retry_after_seconds = 5

    def __init__(self, *details: object, **kw: Any) -> None:
        kw.setdefault("source", "storage")
        kw.setdefault("recovery", "retry_later")
        super().__init__(*details, **kw)


# social-core's own failures (state checks, its pipeline) keep their codes; this
# table gives each the HTTP status our pages and API use for it.
_SOCIAL_CORE_STATUS = {
    "state_mismatch": 400,
    "session_context_missing": 400,
    "missing_parameter": 400,
    "invalid_parameter": 400,
    "user_mismatch": 403,
    "identity_in_use": 409,
    "email_in_use": 409,
    "username_in_use": 409,
    "authentication_disallowed": 403,
    "disconnect_disallowed": 409,
    # /login/<name>/ for a backend the app does not have: no such page.
    "backend_missing": 404,
}


def error_status(error: SocialAuthBaseException) -> int:
    """The HTTP status for an error: ours declare it, social-core's are mapped."""
    if isinstance(error, AmazonError):
        return error.http_status
    if error.code in _SOCIAL_CORE_STATUS:
        return _SOCIAL_CORE_STATUS[error.code]
    if isinstance(error, AuthConfigurationError):
        return 500
    if isinstance(error, AuthProviderError):
        return 502
    return 400


# What a person reads for each of social-core's codes: its own texts are
# written for developers ("The authentication session is unavailable"). Keyed
# by code; a code not here falls back on its category (_PLAIN_BY_CATEGORY).
PLAIN_MESSAGES: dict[str, str] = {
    "session_context_missing": (
        "This browser has no sign-in waiting for that answer from Amazon: the sign-in "
        "already finished, or it was started in another browser or window. "
        "Please sign in with Amazon again."
    ),
    "state_mismatch": (
        "This answer from Amazon came too late or was already used. "
        "Please sign in with Amazon again."
    ),
    "missing_parameter": (
        "The answer from Amazon is incomplete. Please sign in with Amazon again."
    ),
    "invalid_parameter": (
        "The answer from Amazon could not be read. Please sign in with Amazon again."
    ),
    "user_mismatch": (
        "This sign-in was started by someone else signed in on this browser. Please start again."
    ),
    "authorization_declined": "You cancelled the sign-in. Nothing was changed.",
    "identity_in_use": IdentityInUse.message,
    "email_in_use": "Another account already uses this email address.",
    "username_in_use": "This username is taken.",
    "authentication_disallowed": "This Amazon account may not sign in to this site.",
    "disconnect_disallowed": (
        "Amazon is this account's only way to sign in, so it cannot be unlinked: "
        "set a password or link another Amazon account first."
    ),
    "backend_missing": "This site has no such sign-in.",
}

#: When signed in, a sign-in that is over changed nothing: say so, rather
#: than "was not linked" (the account may well be linked already).
_PLAIN_WHEN_SIGNED_IN: dict[str, str] = {
    "session_context_missing": (
        "That sign-in already finished (or was started in another browser or window), "
        "so nothing was changed just now."
    ),
    "state_mismatch": (
        "That answer from Amazon came too late or was already used, "
        "so nothing was changed just now."
    ),
    "invalid_partial": (
        "That sign-in is no longer waiting: it already finished, was cancelled or expired, "
        "so nothing was changed just now."
    ),
}

# Most specific first: a subclass before its parents.
_PLAIN_BY_CATEGORY: tuple[tuple[type[SocialAuthBaseException], str], ...] = (
    (AuthCanceled, PLAIN_MESSAGES["authorization_declined"]),
    (AuthSessionError, "This sign-in is over. Please sign in with Amazon again."),
    (
        AuthConfigurationError,
        "Login with Amazon is not set up correctly on this site. Please contact support.",
    ),
    (AuthProviderError, AmazonUnavailable.message),
    (AuthResponseError, "Amazon's answer could not be read. Please try again in a moment."),
    (AuthCredentialError, InvalidToken.message),
    (AuthInputError, PLAIN_MESSAGES["invalid_parameter"]),
    (AuthPolicyError, "This site does not allow that sign-in."),
    (AuthAssociationError, IdentityInUse.message),
)
_PLAIN_DEFAULT = "The sign-in could not be completed. Please try again."


def plain_message(error: SocialAuthBaseException, *, signed_in: bool = False) -> str:
    """What a person reads for ``error``, in plain words (never provider data).

    This library's errors carry their own ``message``; social-core's get one
    from :data:`PLAIN_MESSAGES` by code, or from their category. ``signed_in``:
    the person is signed in, so a sign-in that is over changed nothing.
    """
    if signed_in and error.code in _PLAIN_WHEN_SIGNED_IN:
        return _PLAIN_WHEN_SIGNED_IN[error.code]
    if isinstance(error, AmazonError):
        return error.message
    if error.code in PLAIN_MESSAGES:
        return PLAIN_MESSAGES[error.code]
    for category, message in _PLAIN_BY_CATEGORY:
        if isinstance(error, category):
            return message
    return _PLAIN_DEFAULT
