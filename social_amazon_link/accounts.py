"""What the library needs to know about the app's user objects, in one place.

Framework-free: used by the storage and by the pipeline steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from social_core.exceptions import AuthConfigurationError
from social_core.utils import module_member

__all__ = ["has_usable_password", "password_checker"]


def has_usable_password(user: Any) -> bool:
    """Whether the local account can prove ownership with a password.

    ``user.has_usable_password()`` when the model defines it (Django's name),
    else whether it stores a password hash at all.
    """
    check = getattr(user, "has_usable_password", None)
    if callable(check):
        return bool(check())
    return bool(getattr(user, "password_hash", None) or getattr(user, "password", None))


def password_checker(backend: Any) -> Callable[[Any, str], bool]:
    """The ``LINK_PASSWORD_CHECKER`` setting (dotted path of ``f(user, password)``).

    Defaults to the user model's own ``check_password(password)``.
    """
    path = backend.setting("LINK_PASSWORD_CHECKER")
    if path:
        checker: Callable[[Any, str], bool] = module_member(path)  # type: ignore[no-untyped-call]
        return checker

    def check_password(user: Any, password: str) -> bool:
        method = getattr(user, "check_password", None)
        if not callable(method):
            raise AuthConfigurationError(
                backend,
                "the user model has no check_password(); set LINK_PASSWORD_CHECKER",
                code="missing_setting",
                parameter="LINK_PASSWORD_CHECKER",
                stage="pipeline",
            )
        return bool(method(password))

    return check_password
