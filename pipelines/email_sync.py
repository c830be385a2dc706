"""Rule 6: keep the local email current when it changed on Amazon."""

from __future__ import annotations

from typing import Any

from social_core.exceptions import AuthConfigurationError

from .events import EMAIL_SYNC_SKIPPED, EMAIL_UPDATED, record

__all__ = ["update_email"]

MODES = ("always", "if_unclaimed", "never")


def update_email(
    backend: Any,
    details: dict[str, Any],
    uid: str,
    *args: Any,
    user: Any = None,
    is_new: bool = False,
    **kwargs: Any,
) -> None:
    """Apply ``LINK_EMAIL_SYNC`` when Amazon's email differs from the local one.

    ``if_unclaimed`` (default) updates when the address differs other than in
    letter case; ``always`` also applies a change of case alone; ``never``
    leaves the local email alone. In every mode an address that another local
    account holds is never copied (that would make two accounts share an
    email): the sign-in goes on and an ``email_sync_skipped`` event is kept.
    Nothing is written when nothing changed.
    """
    mode = backend.setting("LINK_EMAIL_SYNC", "if_unclaimed")
    if mode not in MODES:
        raise AuthConfigurationError(
            backend, code="invalid_setting", parameter="LINK_EMAIL_SYNC", stage="pipeline"
        )
    new = (details.get("email") or "").strip()
    if user is None or is_new or mode == "never" or not new:
        return
    old = user.email or ""
    if old == new or (mode == "if_unclaimed" and old.lower() == new.lower()):
        return
    storage = backend.strategy.storage.user
    if any(other.id != user.id for other in storage.get_users_by_email(new)):
        record(
            backend,
            EMAIL_SYNC_SKIPPED,
            user=user,
            amazon_user_id=uid,
            detail="held by another account",
        )
        return
    user.email = new
    storage.changed(user)
    record(backend, EMAIL_UPDATED, user=user, amazon_user_id=uid, detail=f"{old or '-'} -> {new}")
