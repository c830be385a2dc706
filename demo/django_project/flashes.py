"""The Django demo's last pipeline steps: say which Amazon account was linked or unlinked.

The wording is the Flask demo's (:mod:`demo.flashes`); here it goes to
Django's messages, shown on the next page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages

from demo.flashes import linked_messages, unlinked_messages


def link_confirmed(
    strategy: Any,
    *args: Any,
    social: Any = None,
    new_association: bool = False,
    is_new: bool = False,
    **kwargs: Any,
) -> None:
    """Last step of the sign-in pipeline: say which Amazon account was just linked."""
    for message in linked_messages(social, new_association, is_new):
        messages.info(strategy.request, message)


def unlink_confirmed(strategy: Any, *args: Any, entries: Any = (), **kwargs: Any) -> None:
    """Last step of the disconnect pipeline: say which Amazon account was unlinked."""
    for message in unlinked_messages(entries):
        messages.info(strategy.request, message)
