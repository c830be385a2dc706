"""Rules 3 and 4: find the local account an Amazon identity belongs to.

3. The Amazon ``user_id`` is already linked: that account signs in.
4. It is not, but local accounts have the same email: the person proves they
   own one (its local password, or a one-time code sent to its email) before
   the two are linked. Never on the email alone: Amazon does not say whether
   an email was verified.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
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

from .events import LINK_REFUSED, LOCKED_OUT, record, record_repeat
from .pause import DONE, answer_of, check_resumed_by, pause, resumed_prompt

__all__ = [
    "amazon_identity",
    "ask_code",
    "claim_new_account",
    "match_by_email_require_password",
    "match_by_uid",
    "prove_code",
    "prove_password",
]

DEFAULT_PASSWORD_URL = "/link/amazon/password"
#: How long a try waits for the tries of the same account being checked right
#: now (a right password is not refused because wrong ones might be pending).
BUSY_WAIT_SECONDS = 10.0


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
        record(
            backend,
            LINK_REFUSED,
            user=user,
            amazon_user_id=uid,
            detail="identity_in_use",
            amazon=kwargs.get("amazon_profile"),
        )
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
    # Nothing is written under the lock now: let the next one in (on SQLite
    # it is the whole database's write lock) rather than hold it to the end.
    backend.strategy.storage.end_transaction()
    return match_by_uid(backend, uid, user=None, **_without_user(kwargs))


def _without_user(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in ("user", "social")}


def amazon_identity(uid: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Amazon account a sign-in is for, as its events name it: ``user_id``,
    and the ``name`` and ``email`` Amazon gave (``fetch_profile``'s ``amazon_profile``)."""
    profile = kwargs.get("amazon_profile")
    return {**(profile if isinstance(profile, dict) else {}), "user_id": uid}


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
    password). Anyone who puts the address on an Amazon profile can cause
    that lock, so its message tells the owner what still works: signing in
    with the password, then linking from the account page. A try is reserved
    before the password is checked (:func:`_prove`), so concurrent requests
    cannot exceed the limit, and a right password waits for the tries being
    checked instead of being refused for them.

    An account with no usable password proves ownership with a one-time code
    sent to its email through social-core's ``EMAIL_VALIDATION_FUNCTION``
    (only the code this pause sent counts). Without a sender, or when the
    account signs in with another identity already (its email was never
    proven), the link is refused (``password_unavailable``).
    """
    # Signed in (connecting Amazon to their account): nothing to prove. But a
    # prompt that paused with nobody signed in stays unanswered by whoever
    # signed in since: that is the next person at a shared computer.
    check_resumed_by(backend, kwargs, user, ("password", "email_code"))
    if user is not None:
        return dict(DONE)
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

    amazon = amazon_identity(uid, kwargs)
    if prompt["kind"] == "email_code":
        account = candidates[0] if len(candidates) == 1 else None
        if account is None or has_usable_password(account) or _signs_in_elsewhere(backend, account):
            # The accounts changed since the code was sent: start over.
            return _ask(backend, pipeline_index, details, candidates, dict(kwargs, uid=uid))
        prove_code(backend, account, amazon, prompt, answer)
        method = "email_code"
    else:
        account = _chosen_account(backend, candidates, answer)
        if len(candidates) == 1 and not has_usable_password(account):
            record(
                backend,
                LINK_REFUSED,
                user=account,
                amazon_user_id=uid,
                detail="no_password",
                amazon=amazon,
            )
            raise PasswordUnavailable(backend=backend, stage="pipeline")
        prove_password(backend, candidates, account, amazon, answer)
        method = "password"

    # DONE: the password or code goes no further.
    return {"user": account, "is_new": False, "link_method": method, **DONE}


def prove_code(
    backend: Any, account: Any, amazon: dict[str, Any], prompt: dict[str, Any], answer: Any
) -> None:
    """The answer holds the code this pause emailed ``account``: one counted try,
    or :class:`WrongCode` / :class:`TooManyAttempts` (see :func:`_prove`)."""
    strategy = backend.strategy
    storage = strategy.storage
    code = storage.code.normal_code(str(answer.get("code") or ""))
    if not code or not plain(code):
        raise InvalidRequest("Enter the code we emailed you.", backend=backend)
    address = account.email

    def code_sent() -> bool:
        # The code this pause sent, and no other: one sent to the same address
        # for an earlier, abandoned sign-in proves nothing about this one.
        digest = str(prompt.get("code_digest", ""))
        sent = hmac.compare_digest(storage.code.digest(code), digest)
        return sent and bool(strategy.validate_email(address, code))

    _prove(backend, [account], account, amazon, code_sent, WrongCode)


def prove_password(
    backend: Any, candidates: list[Any], account: Any, amazon: dict[str, Any], answer: Any
) -> None:
    """The answer holds ``account``'s password (``LINK_PASSWORD_CHECKER``): one
    counted try against each of ``candidates``, or :class:`WrongPassword` /
    :class:`TooManyAttempts` (see :func:`_prove`)."""
    password = answer.get("password")
    if not isinstance(password, str) or not password:
        raise InvalidRequest("Enter your password.", backend=backend)
    if not storable(password):
        # Refused before a try is counted: no password holds these.
        raise InvalidRequest("The password has characters no password holds.", backend=backend)
    checker = password_checker(backend)

    def password_right() -> bool:
        return _check_as_named(checker, candidates, account, password)

    _prove(backend, candidates, account, amazon, password_right, WrongPassword)


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
        amazon = amazon_identity(kwargs.get("uid"), kwargs)
        if refused:
            record(
                backend,
                LINK_REFUSED,
                user=account,
                amazon_user_id=amazon["user_id"],
                detail=refused,
                amazon=amazon,
            )
            raise PasswordUnavailable(backend=backend, stage="pipeline")
        return ask_code(backend, pipeline_index, url, account, amazon, {"email": email}, kwargs)
    prompt = {"kind": "password", "email": email, "choose_account": len(candidates) > 1}
    return pause(backend, pipeline_index, url, prompt, kwargs)


def ask_code(
    backend: Any,
    pipeline_index: int,
    url: str,
    account: Any,
    amazon: dict[str, Any],
    prompt: dict[str, Any],
    kwargs: dict[str, Any],
) -> Any:
    """Email ``account`` a one-time code (within :func:`_limit_codes`) and pause
    on the ``email_code`` prompt (``prompt`` adds what its page shows)."""
    _limit_codes(backend, account, amazon)

    def send_code(token: str) -> dict[str, Any]:
        code = backend.strategy.send_email_validation(backend, account.email, token)
        return {"code_digest": backend.strategy.storage.code.digest(code.code)}

    prompt = {**prompt, "kind": "email_code"}
    return pause(backend, pipeline_index, url, prompt, kwargs, before_store=send_code)


def _limit_codes(backend: Any, account: Any, amazon: dict[str, Any]) -> None:
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
    # One locked_out event while the codes sent fill the window: the later
    # refusals are counted on it.
    record_repeat(
        backend,
        LOCKED_OUT,
        user=account,
        amazon_user_id=amazon.get("user_id"),
        detail="codes_sent",
        since=sent[-1],
        amazon=amazon,
    )
    retry_after = max(1, int((sent[0] + timedelta(seconds=window) - now).total_seconds()) + 1)
    raise TooManyAttempts(
        TooManyAttempts.CODES_MESSAGE,
        backend=backend,
        retry_after=retry_after,
        stage="pipeline",
    )


def _signs_in_elsewhere(backend: Any, account: Any) -> bool:
    """Whether the account is linked to another identity (another Amazon account)."""
    return bool(backend.strategy.storage.user.get_social_auth_for_user(account))


def _chosen_account(backend: Any, candidates: list[Any], answer: dict[str, Any]) -> Any:
    """The account the answer names (the only one, or by username), or None: none of them."""
    if len(candidates) == 1:
        return candidates[0]
    username = str(answer.get("username") or "").strip().lower()
    if not username:
        raise InvalidRequest("Enter the username of the account to link.", backend=backend)
    for account in candidates:
        if str(account.username).lower() == username:
            return account
    return None


def _check_as_named(
    checker: Callable[[Any, str], bool], candidates: list[Any], named: Any, password: str
) -> bool:
    """The password check of the several-accounts prompt, as long whoever is named.

    A username that is not one of the accounts with this email (or one of them
    without a password) gets a check all the same, of an account that has
    one, and its result is thrown away: the answer takes as long as a wrong
    password for an account that holds the email, and says no more.
    """
    if named is not None and has_usable_password(named):
        return bool(checker(named, password))
    decoy = min((c for c in candidates if has_usable_password(c)), key=_by_id, default=None)
    if decoy is not None:
        checker(decoy, password)
    return False


def _by_id(account: Any) -> str:
    return str(account.id)


def _max_attempts(backend: Any) -> int:
    return int(backend.setting("LINK_MAX_PASSWORD_ATTEMPTS", 5))


def _lockout_seconds(backend: Any) -> int:
    return int(backend.setting("LINK_LOCKOUT_SECONDS", 900))


def _prove(
    backend: Any,
    accounts: list[Any],
    named: Any,
    amazon: dict[str, Any],
    check: Callable[[], bool],
    error: type[WrongPassword],
) -> None:
    """Run ``check`` (a password or code) as one counted try against each of ``accounts``.

    A try is reserved on each account before anything is checked, in order
    of id (two requests never wait on each other): however many requests
    race, an account gets at most ``LINK_MAX_PASSWORD_ATTEMPTS`` checks before
    it locks. Right: ``named``'s failures are forgotten and the link goes
    ahead. Wrong: the try counts against every account, and the answer is
    ``error`` with the fewest tries any of them has left.

    On the several-accounts prompt ``accounts`` are all the accounts with
    the email, whatever username was named: a guess names one of them or
    none, and whoever guesses does not know which, so each guess costs each
    of them a try (and the answer is the same for a username that does not
    hold the email as for a wrong password of one that does). They are
    locked together, then: a right password is refused when any of them is
    locked, which only wrong answers to this email's prompt (or the
    account's own) can have done.
    """
    attempts = backend.strategy.storage.link_attempts
    uid = amazon.get("user_id")
    held: list[Any] = []
    try:
        for account in sorted(accounts, key=_by_id):
            _reserve_try(backend, account, amazon)
            held.append(account)
        right = check()
    except BaseException:
        # Locked, or the check failed: what was reserved is given back.
        for account in held:
            attempts.release(account.id)
        raise
    if right:
        for account in held:
            if account is named:
                attempts.clear(account.id)
            else:
                attempts.release(account.id)
        return
    most = 0
    for account in held:
        failures = attempts.fail(
            account.id,
            max_attempts=_max_attempts(backend),
            lockout_seconds=_lockout_seconds(backend),
        )
        most = max(most, failures)
        detail = error.code_name if account is named else "other_username"
        record(
            backend, error.code_name, user=account, amazon_user_id=uid, detail=detail, amazon=amazon
        )
        if failures == _max_attempts(backend):  # this try locked it: recorded once
            record(backend, LOCKED_OUT, user=account, amazon_user_id=uid, amazon=amazon)
    left = max(0, _max_attempts(backend) - most)
    raise error(backend=backend, attempts_left=left, stage="pipeline")


def _reserve_try(backend: Any, account: Any, amazon: dict[str, Any]) -> None:
    """Reserve a try on ``account`` (waiting for tries being checked), or refuse: locked."""
    reservation = backend.strategy.storage.link_attempts.reserve(
        account.id,
        max_attempts=_max_attempts(backend),
        lockout_seconds=_lockout_seconds(backend),
        wait=BUSY_WAIT_SECONDS,
    )
    if reservation.allowed:
        return
    if not reservation.busy:
        # One locked_out event per lock: refusals are counted on it.
        record_repeat(
            backend,
            LOCKED_OUT,
            user=account,
            amazon_user_id=amazon.get("user_id"),
            since=datetime.fromtimestamp(reservation.locked_since, UTC),
            amazon=amazon,
        )
    raise TooManyAttempts(backend=backend, retry_after=reservation.retry_after, stage="pipeline")
