"""Django's signals: the app's own sign-in and sign-out, and the linking flow's events.

- Django's ``user_logged_in`` and ``user_logged_out``, whatever view sends
  them (this integration's rule 7 too), end the paused and started sign-ins
  of the session (:func:`..flow.paused.end_sign_ins`); a sign-in also records
  when it happened (``LINK_REAUTH_SECONDS``). Django's ``login`` and
  ``logout`` rotate the CSRF token themselves. Connected when the app is
  ready (:mod:`.apps`).
- :data:`SIGNALS`: one Django signal per security event of the event table
  (``linked``, ``unlinked``, ``email_updated``, ``locked_out``, ...), sent
  once the event is committed, by the strategy class with ``user``,
  ``details`` (:func:`social_amazon_link.notifications.link_details`) and
  ``request``::

      from social_amazon_link.django.signals import SIGNALS

      @receiver(SIGNALS["linked"])
      def tell_support(sender, user, details, request, **kwargs): ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import Signal

from social_amazon_link.pipelines.events import EVENTS
from social_amazon_link.pipelines.reauth import mark_signed_in

from ..flow.paused import end_sign_ins
from .strategy import load_strategy

__all__ = ["SIGNALS", "connect", "send"]

#: The signal of each event, by the event's name.
SIGNALS: dict[str, Signal] = {name: Signal() for name in EVENTS}


def send(strategy: Any, event: str, user: Any, details: Mapping[str, Any]) -> None:
    """Send ``event``'s signal (the strategy's ``send_link_signal``)."""
    signal = SIGNALS.get(event)
    if signal is not None:
        signal.send(type(strategy), user=user, details=details, request=strategy.request)


def connect() -> None:
    user_logged_in.connect(signed_in, dispatch_uid=__name__)
    user_logged_out.connect(session_changes_hands, dispatch_uid=__name__)


def session_changes_hands(sender: Any, request: Any = None, **_signal: Any) -> None:
    """Someone signed in or out on ``request``: end what its session left waiting."""
    if request is not None and hasattr(request, "session"):
        end_sign_ins(load_strategy(request))


def signed_in(sender: Any, request: Any = None, user: Any = None, **_signal: Any) -> None:
    """Django signed ``user`` in: as any change of hands, and the session records when."""
    session_changes_hands(sender, request)
    if request is not None and hasattr(request, "session") and user is not None:
        mark_signed_in(load_strategy(request), user)
