"""The app's own sign-in and sign-out end what the browser left waiting.

Connected when the app is ready (:mod:`.apps`): Django's ``user_logged_in``
and ``user_logged_out``, whatever view sends them (this integration's rule 7
too), end the paused and started sign-ins of the session
(:func:`..flow.paused.end_sign_ins`). Django's ``login`` and ``logout``
rotate the CSRF token themselves.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out

from ..flow.paused import end_sign_ins
from .strategy import load_strategy

__all__ = ["connect"]


def connect() -> None:
    for signal in (user_logged_in, user_logged_out):
        signal.connect(session_changes_hands, dispatch_uid=__name__)


def session_changes_hands(sender: Any, request: Any = None, **_signal: Any) -> None:
    """Someone signed in or out on ``request``: end what its session left waiting."""
    if request is not None and hasattr(request, "session"):
        end_sign_ins(load_strategy(request))
