"""What the demo tells a person once Amazon is linked, unlinked, or a sign-in cancelled.

Two steps added to the library's pipelines (through the usual settings, in
:func:`demo.create_app`) flash the outcome on the next page, naming the Amazon
account by what Amazon said last (the link's ``extra_data``: ``name`` and
``email``); a paused sign-in cancelled on its prompt page gets its line from
:func:`init_flashes`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, flash, request
from werkzeug.wrappers import Response

from social_amazon_link.flask.strategy import PROMPT_PAGES


def amazon_account(link: Any) -> str:
    """``Grace Hopper (grace@example.com)``, or the user_id when Amazon gave no name."""
    seen = link.extra_data or {}
    name = seen.get("name") or link.uid
    return f"{name} ({seen['email']})" if seen.get("email") else str(name)


def link_confirmed(
    backend: Any,
    *args: Any,
    social: Any = None,
    new_association: bool = False,
    is_new: bool = False,
    **kwargs: Any,
) -> None:
    """Last step of the sign-in pipeline: say which Amazon account was just linked."""
    for message in linked_messages(social, new_association, is_new):
        flash(message, "info")


def unlink_confirmed(backend: Any, *args: Any, entries: Any = (), **kwargs: Any) -> None:
    """Last step of the disconnect pipeline: say which Amazon account was unlinked."""
    for message in unlinked_messages(entries):
        flash(message, "info")


def linked_messages(social: Any, new_association: bool, is_new: bool) -> list[str]:
    """What to tell once a sign-in ends: nothing after a plain sign-in (either framework)."""
    if social is None or not new_association:
        return []  # an Amazon account linked before: a plain sign-in
    if is_new:
        return [f"Your account was made with Amazon account {amazon_account(social)}."]
    return [f"Amazon account {amazon_account(social)} linked."]


def unlinked_messages(entries: Any) -> list[str]:
    """What to tell once links are removed (either framework)."""
    return [f"Amazon account {amazon_account(entry)} unlinked." for entry in entries or ()]


#: A paused sign-in cancelled on its prompt page (either framework).
CANCELLED = "Sign-in cancelled. Nothing was changed."


def init_flashes(app: Flask) -> None:
    @app.after_request
    def _cancelled(response: Response) -> Response:
        # The prompt's Cancel button ends the paused sign-in and redirects;
        # a refused form (bad token, sign-in over) answers with an error page.
        if (
            request.blueprint == PROMPT_PAGES
            and request.method == "POST"
            and request.form.get("action") == "cancel"
            and response.status_code == 302
        ):
            flash(CANCELLED, "info")
        return response
