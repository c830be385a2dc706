"""Unlinking: remove a link only when the user keeps a way to sign in."""

from __future__ import annotations

from typing import Any

__all__ = ["disconnect_entries"]


def disconnect_entries(
    user: Any, name: str, user_storage: Any, *args: Any, association_id: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """The links to remove, loaded once, checked, and locked until they are removed.

    Security-sensitive. Replaces social-core's ``allowed_to_disconnect`` and
    ``get_entries``, which each load the links again: the row the check
    counted is the row social-core's ``disconnect`` step deletes. An
    ``association_id`` that is not a positive whole number written plainly,
    or not one of the user's links of this backend, is ``unknown_link`` (404);
    removing the user's last way to sign in (no password, no other link) is
    ``disconnect_disallowed``.
    """
    return {"entries": user_storage.disconnect_entries(user, name, association_id)}
