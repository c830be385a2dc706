"""Rule 5: no account matched, so a new one is made, asking for what is missing."""

from __future__ import annotations

import re
from typing import Any

from social_amazon_link.errors import RegistrationInvalid
from social_amazon_link.text import one_line, plain, valid_email

from .matching import claim_new_account
from .pause import DONE, answer_of, check_resumed_by, pause, resumed_prompt

__all__ = ["prefill_registration", "validate_registration"]

DEFAULT_REGISTRATION_URL = "/link/amazon/register"
DEFAULT_REQUIRED_FIELDS = ("username", "email")
#: Fields the prefilled form offers, required or not.
FORM_FIELDS = ("username", "email", "name")

_USERNAME = re.compile(r"[A-Za-z0-9_.@+-]+")


def _prefill(backend: Any, details: dict[str, Any], response: dict[str, Any]) -> dict[str, str]:
    storage = backend.strategy.storage.user
    name = (response.get("name") or details.get("fullname") or "").strip()
    # A display name: on one line, and no longer than the account can hold.
    name = one_line(name)[: storage.field_max_length("name") or None]
    username = storage.clean_username(name)[: storage.username_max_length()] if name else ""
    return {"username": username, "email": (details.get("email") or "").strip(), "name": name}


def validate_registration(
    backend: Any, values: dict[str, str], required: list[str]
) -> dict[str, str]:
    """Field errors of a new account's values (empty when it can be created)."""
    storage = backend.strategy.storage.user
    errors: dict[str, str] = {}
    for field, value in values.items():
        # Checked before any query: PostgreSQL cannot even compare some of these.
        limit = storage.field_max_length(field)
        if not plain(value):
            errors[field] = "Remove the control characters."
        elif limit is not None and len(value) > limit:
            errors[field] = f"Use at most {limit} characters."
    username, email = values.get("username", ""), values.get("email", "")
    if username and "username" not in errors:
        max_length = storage.username_max_length()
        if len(username) < 3 or len(username) > max_length:
            errors["username"] = f"Use 3 to {max_length} characters."
        elif not _USERNAME.fullmatch(username):
            errors["username"] = "Use letters, digits and . _ - + @ only."
        elif storage.user_exists(username=username):
            errors["username"] = "This username is taken."
    if email and "email" not in errors:
        if not valid_email(email):
            errors["email"] = "Enter a valid email address."
        elif list(storage.get_users_by_email(email)):
            errors["email"] = "An account already uses this email."
    for field in required:
        if not values.get(field) and field not in errors:
            errors[field] = "Required."
    return errors


def prefill_registration(
    strategy: Any,
    backend: Any,
    pipeline_index: int,
    details: dict[str, Any],
    *args: Any,
    user: Any = None,
    uid: str = "",
    response: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """No account matched: create one directly, or ask first when something is missing.

    The new account's ``LINK_REQUIRED_FIELDS`` (default username and email)
    come from the Amazon profile: the name, cleaned, as the username, and the
    email. When one is missing, invalid or taken (the username of an existing
    account, say), the pipeline pauses on ``LINK_REGISTRATION_URL``, a form
    prefilled from the profile; its answer is validated here, on the server,
    and the sign-in resumes. The account is created by social-core's
    ``create_user`` from the values this step returns.
    """
    # As in match_by_email_require_password: whoever signed in since the
    # form was shown does not get to submit it.
    check_resumed_by(backend, kwargs, user, ("registration",))
    if user is not None:
        return dict(DONE)
    required = list(backend.setting("LINK_REQUIRED_FIELDS", DEFAULT_REQUIRED_FIELDS))
    fields = list(dict.fromkeys([*FORM_FIELDS, *required]))
    prompt = resumed_prompt(backend, kwargs, "registration")
    if prompt is None:
        values = _prefill(backend, details, response or {})
        errors = validate_registration(backend, values, required)
        if errors:
            return pause(
                backend,
                pipeline_index,
                backend.setting("LINK_REGISTRATION_URL", DEFAULT_REGISTRATION_URL),
                {"kind": "registration", "prefill": values, "required": required, "errors": errors},
                dict(kwargs, details=details, response=response, uid=uid),
            )
    else:
        answer = answer_of(kwargs)
        values = {field: str(answer.get(field) or "").strip() for field in fields}
        # The pause ended the lock match_by_email_require_password took: take
        # it again before checking (another sign-in may have made the link, or
        # an account with this email, meanwhile).
        linked = claim_new_account(backend, uid, values.get("email"), kwargs)
        if linked is not None:
            return {**linked, **DONE}
        errors = validate_registration(backend, values, required)
        if errors:
            raise RegistrationInvalid(backend=backend, fields=errors, stage="pipeline")

    new_details = {**details, "email": values.get("email") or None}
    if values.get("name"):
        new_details["fullname"] = values["name"]
    return {
        **_too_long_to_store(backend, new_details, fields),
        **{field: values[field] for field in fields if values.get(field)},
        "details": new_details,
        **DONE,
    }


def _too_long_to_store(
    backend: Any, details: dict[str, Any], validated: list[str]
) -> dict[str, None]:
    """The app's other ``USER_FIELDS`` whose profile value its column cannot hold, as None.

    ``create_user`` takes them from the profile as they are (the postal code,
    say, up to 32 characters from Amazon): one longer than the user model's
    column is left out of the new account rather than failing its insert.
    """
    storage = backend.strategy.storage.user

    def too_long(field: str) -> bool:
        value, limit = details.get(field), storage.field_max_length(field)
        return isinstance(value, str) and limit is not None and len(value) > limit

    fields = backend.setting("USER_FIELDS", ())
    return {field: None for field in fields if field not in validated and too_long(field)}
