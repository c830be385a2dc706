"""Rules 3 and 4: find the local account an Amazon identity belongs to.

3. The Amazon ``user_id`` is already linked: that account signs in.
4. It is not, but local accounts have the same email: the person proves they
   own one (its local password, or a one-time code sent to its email) before
   the two are linked. Never on the email alone: Amazon does not say whether
   an email was verified.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from social_core.exceptions import AuthAssociationError
from social_core.pipeline.social_auth import social_user

from social_amazon_link.accounts import has_usable_password, password_checker
from social_amazon_link.errors import (
    IdentityInUse,
    InvalidRequest,
    PasswordUnavailable,
    TooManyAttempts,
    WrongCode,
    WrongPassword,
)
from social_amazon_link.text import plain, storable

from .events import LINK_REFUSED, LOCKED_OUT, WRONG_PASSWORD, record
from .pause import DONE, answer_of, pause, resumed_prompt

__all__ = ["claim_new_account", "match_by_email_require_password", "match_by_uid"]

DEFAULT_PASSWORD_URL = "/link/amazon/password"


def match_by_uid(
    backend: Any, uid: str, *args: Any, user: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """The Amazon user_id is linked already: that user signs in.

    A signed-in user connecting an Amazon account that is linked to someone
    else gets ``identity_in_use``, and nothing changes. Rows written by
    social-core's own Amazon backend (no ``id_key``) are found and re-keyed.
    Only looks: the lock against simultaneous first sign-ins is taken later,
    once a new account is to be written (:func:`claim_new_account`).
    """
    try:
        found: dict[str, Any] = social_user(backend, uid, user, *args, **kwargs)
        return found
    except AuthAssociationError as error:
        if error.code != "identity_in_use":
            raise
        record(backend, LINK_REFUSED, user=user, amazon_user_id=uid, detail="identity_in_use")
        raise IdentityInUse(backend=backend, stage="pipeline") from error


def claim_new_account(
    backend: Any, uid: str, email: str | None, kwargs: dict[str, Any]
) -> dict[str, Any] | None:
    """Lock the identity and the email for a new account; the link, if one appeared.

    Called once the lookups found neither a link nor an account with the
    email, before a new account is written: simultaneous first sign-ins of
    one Amazon account, or of several with one email, each wait here until
    the first has committed its account and link (``lock_identity`` of the
    storage), then look again. Returns what
    :func:`match_by_uid` returns when the identity is linked now (that user
    signs in), else None: the caller re-checks the email.
    """
    storage = backend.strategy.storage.user
    storage.lock_identity(backend.name, uid, email)
    if storage.get_social_auth(backend.name, uid, id_key=kwargs.get("id_key", "")) is None:
        return None
    return match_by_uid(backend, uid, user=None, **_without_user(kwargs))


def _without_user(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in ("user", "social")}


def match_by_email_require_password(
    strategy: Any,
    backend: Any,
    pipeline_index: int,
    details: dict[str, Any],
    *args: Any,
    user: Any = None,
    uid: str | None = None,
    **kwargs: Any,
) -> Any:
    """Local accounts have this email: link only after the person proves ownership.

    Security-sensitive. Amazon gives no email-verified flag, so anyone can
    put any address on an Amazon account; linking on the email alone would
    hand that account over. This step pauses the pipeline and asks for the
    local account's password (``LINK_PASSWORD_URL``, the username too when
    several accounts share the email) and links only when
    ``LINK_PASSWORD_CHECKER`` accepts it.

    Wrong passwords are counted per local account in the database; after
    ``LINK_MAX_PASSWORD_ATTEMPTS`` the account is locked for this flow for
    ``LINK_LOCKOUT_SECONDS`` (``too_many_attempts``, even with the right
    password). A try is reserved before the password is checked, so
    concurrent requests cannot exceed the limit.

    An account with no usable password proves ownership with a one-time code
    sent to its email through social-core's ``EMAIL_VALIDATION_FUNCTION``
    (only the code this pause sent counts). Without a sender, or when the
    account signs in with another identity already (its email was never
    proven), the link is refused (``password_unavailable``).
    """
    if user is not None:
        return dict(DONE)  # signed in meanwhile: whatever was asked is moot
    email = details.get("email")
    storage = backend.strategy.storage.user
    candidates = list(storage.get_users_by_email(email)) if email else []
    if not candidates:
        # A new account will be written (rule 5): only now lock, then look again.
        linked = claim_new_account(backend, uid or "", email, kwargs)
        if linked is not None:
            return {**linked, **DONE}
        candidates = list(storage.get_users_by_email(email)) if email else []
        if not candidates:
            return dict(DONE)
    elif storage.get_social_auth(backend.name, uid, id_key=kwargs.get("id_key", "")):
        # A simultaneous first sign-in of this identity made the account with
        # this email, and its link, since match_by_uid looked: that user.
        return {**match_by_uid(backend, uid or "", user=None, **_without_user(kwargs)), **DONE}

    answer = answer_of(kwargs)
    prompt = resumed_prompt(backend, kwargs, "password") or resumed_prompt(
        backend, kwargs, "email_code"
    )
    if prompt is None:
        return _ask(backend, pipeline_index, details, candidates, dict(kwargs, uid=uid))

    if prompt["kind"] == "email_code":
        account = candidates[0] if len(candidates) == 1 else None
        if account is None or has_usable_password(account) or _signs_in_elsewhere(backend, account):
            # The accounts changed since the code was sent: start over.
            return _ask(backend, pipeline_index, details, candidates, dict(kwargs, uid=uid))
        code = str(answer.get("code") or "").strip()
        if not code or not plain(code):
            raise InvalidRequest("Enter the code we emailed you.", backend=backend)
        tried = _reserve_try(backend, account, uid)
        # The code this pause sent, and no other: one sent to the same address
        # for an earlier, abandoned sign-in proves nothing about this one.
        sent = hmac.compare_digest(code_digest(code), str(prompt.get("code_digest", "")))
        if not sent or not strategy.validate_email(account.email, code):
            _wrong(backend, account, uid, tried.failures, WrongCode)
        method = "email_code"
    else:
        account = _chosen_account(backend, candidates, answer, uid)
        if not has_usable_password(account):
            record(backend, LINK_REFUSED, user=account, amazon_user_id=uid, detail="no_password")
            raise PasswordUnavailable(backend=backend, stage="pipeline")
        password = answer.get("password")
        if not isinstance(password, str) or not password:
            raise InvalidRequest("Enter your password.", backend=backend)
        if not storable(password):
            # Refused before a try is counted: no password holds these.
            raise InvalidRequest("The password has characters no password holds.", backend=backend)
        tried = _reserve_try(backend, account, uid)
        if not password_checker(backend)(account, password):
            _wrong(backend, account, uid, tried.failures, WrongPassword)
        method = "password"

    backend.strategy.storage.link_attempts.clear(account.id)
    # DONE: the password or code goes no further.
    return {"user": account, "is_new": False, "link_method": method, **DONE}


def _ask(
    backend: Any,
    pipeline_index: int,
    details: dict[str, Any],
    candidates: list[Any],
    kwargs: dict[str, Any],
) -> Any:
    url = backend.setting("LINK_PASSWORD_URL", DEFAULT_PASSWORD_URL)
    email = details["email"]
    kwargs = dict(kwargs, details=details)
    if len(candidates) == 1 and not has_usable_password(candidates[0]):
        account = candidates[0]
        refused = ""
        if _signs_in_elsewhere(backend, account):
            # Its email may never have been proven: whoever made the account
            # through another Amazon account could have typed anyone's, and
            # a code to that mailbox would hand the owner's Amazon to them.
            refused = "other_sign_in"
        elif not backend.setting("EMAIL_VALIDATION_FUNCTION"):
            refused = "no_password"
        if refused:
            record(
                backend,
                LINK_REFUSED,
                user=account,
                amazon_user_id=kwargs.get("uid"),
                detail=refused,
            )
            raise PasswordUnavailable(backend=backend, stage="pipeline")

        _limit_codes(backend, account, kwargs.get("uid"))

        def send_code(token: str) -> dict[str, Any]:
            code = backend.strategy.send_email_validation(backend, account.email, token)
            return {"code_digest": code_digest(code.code)}

        return pause(
            backend,
            pipeline_index,
            url,
            {"kind": "email_code", "email": email},
            kwargs,
            before_store=send_code,
        )
    prompt = {"kind": "password", "email": email, "choose_account": len(candidates) > 1}
    return pause(backend, pipeline_index, url, prompt, kwargs)


def _limit_codes(backend: Any, account: Any, uid: Any) -> None:
    """At most ``LINK_MAX_PASSWORD_ATTEMPTS`` codes to one address per ``LINK_LOCKOUT_SECONDS``.

    Anyone whose Amazon account carries the address can start sign-ins over
    and over, and each would mail a code: the app must not become a way to
    flood someone's mailbox.
    """
    window = _lockout_seconds(backend)
    now = datetime.now(UTC)
    sent = backend.strategy.storage.code.sent_since(account.email, now - timedelta(seconds=window))
    if len(sent) < _max_attempts(backend):
        return
    record(backend, LOCKED_OUT, user=account, amazon_user_id=uid, detail="codes_sent")
    retry_after = max(1, int((sent[0] + timedelta(seconds=window) - now).total_seconds()) + 1)
    raise TooManyAttempts(
        "We sent this address too many codes. Please wait before trying again.",
        backend=backend,
        retry_after=retry_after,
        stage="pipeline",
    )


def code_digest(code: str) -> str:
    """What a pause keeps of the code it sent: enough to recognise it, not to use it."""
    return hashlib.sha256(code.encode()).hexdigest()


def _signs_in_elsewhere(backend: Any, account: Any) -> bool:
    """Whether the account is linked to another identity (another Amazon account)."""
    return bool(backend.strategy.storage.user.get_social_auth_for_user(account))


def _chosen_account(backend: Any, candidates: list[Any], answer: dict[str, Any], uid: Any) -> Any:
    if len(candidates) == 1:
        return candidates[0]
    username = str(answer.get("username") or "").strip().lower()
    if not username:
        raise InvalidRequest("Enter the username of the account to link.", backend=backend)
    for account in candidates:
        if str(account.username).lower() == username:
            return account
    # Not one of the accounts with this email. Say no more than for a wrong
    # password, and count nothing: no account was tried.
    raise WrongPassword(backend=backend, attempts_left=_max_attempts(backend), stage="pipeline")


def _max_attempts(backend: Any) -> int:
    return int(backend.setting("LINK_MAX_PASSWORD_ATTEMPTS", 5))


def _lockout_seconds(backend: Any) -> int:
    return int(backend.setting("LINK_LOCKOUT_SECONDS", 900))


def _reserve_try(backend: Any, account: Any, uid: Any) -> Any:
    reservation = backend.strategy.storage.link_attempts.reserve(
        account.id,
        max_attempts=_max_attempts(backend),
        lockout_seconds=_lockout_seconds(backend),
    )
    if not reservation.allowed:
        record(backend, LOCKED_OUT, user=account, amazon_user_id=uid)
        raise TooManyAttempts(
            backend=backend, retry_after=reservation.retry_after, stage="pipeline"
        )
    return reservation


def _wrong(backend: Any, account: Any, uid: Any, failures: int, error: type[WrongPassword]) -> None:
    left = max(0, _max_attempts(backend) - failures)
    record(backend, WRONG_PASSWORD, user=account, amazon_user_id=uid, detail=error.code_name)
    if left == 0:
        record(backend, LOCKED_OUT, user=account, amazon_user_id=uid)
    raise error(backend=backend, attempts_left=left, stage="pipeline")
