"""Rule 6: keep the local email current when it changed on Amazon."""

from __future__ import annotations

from typing import Any

from social_core.exceptions import AuthConfigurationError

from social_amazon_link.text import valid_email

from .events import EMAIL_SYNC_SKIPPED, EMAIL_UPDATED, record

__all__ = ["update_email"]

MODES = ("always", "if_unclaimed", "never")


def update_email(
    backend: Any,
    details: dict[str, Any],
    uid: str,
    *args: Any,
    user: Any = None,
    social: Any = None,
    is_new: bool = False,
    **kwargs: Any,
) -> None:
    """Apply ``LINK_EMAIL_SYNC`` to the local email.

    ``if_unclaimed`` (default): when the email *changed on Amazon* since the
    last sign-in (the link's ``extra_data["email"]``, which
    ``load_extra_data`` refreshes after this step), copy it. ``always``: keep
    the local email equal to Amazon's at every sign-in, also after connecting
    an Amazon account or a local change. ``never``: leave it alone.

    In every mode an address that another local account holds (the same by
    ``email_key``) is not copied, so this step never makes two accounts
    share an email: the sign-in goes on and ``email_sync_skipped`` is recorded
    (so is an address not in canonical spelling, see ``valid_email``, or
    longer than the account's email column).
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
    if old == new:
        return
    if mode == "if_unclaimed":
        seen = (social.extra_data or {}).get("email") if social is not None else None
        if not isinstance(seen, str) or seen == new:
            return  # first sight of this email, or unchanged on Amazon
    storage = backend.strategy.storage.user
    limit = storage.field_max_length("email")
    if not valid_email(new) or (limit is not None and len(new) > limit):
        skipped = "not an address this account can hold"
    elif any(other.id != user.id for other in storage.get_users_by_email(new)):
        skipped = "held by another account"
    else:
        skipped = ""
    if skipped:
        record(backend, EMAIL_SYNC_SKIPPED, user=user, amazon_user_id=uid, detail=skipped)
        return
    user.email = new
    storage.changed(user)
    # Told to both addresses (the old one may be the owner's only way to hear of it).
    record(
        backend,
        EMAIL_UPDATED,
        user=user,
        amazon_user_id=uid,
        detail=f"{old or '-'} -> {new}",
        amazon=kwargs.get("amazon_profile"),
        old_email=old or None,
    )
