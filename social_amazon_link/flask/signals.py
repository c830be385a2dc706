"""The linking flow's security events as Flask signals (blinker, Flask's own convention).

One signal per event, named as in the event table, in the namespace
:data:`link_signals`; each is sent with the app as sender, and ``user`` (the
local account) and ``details``
(:func:`social_amazon_link.notifications.link_details`) as keywords, once the
event is committed::

    from social_amazon_link.flask.signals import linked

    @linked.connect_via(app)
    def tell_support(app, user, details, **extra):
        ...

A receiver that raises is logged and the sign-in goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blinker import Namespace
from flask import current_app

from social_amazon_link.pipelines.events import EVENTS

__all__ = [
    "SIGNALS",
    "email_sync_skipped",
    "email_updated",
    "link_refused",
    "link_signals",
    "linked",
    "locked_out",
    "send",
    "unlinked",
    "wrong_code",
    "wrong_password",
]

link_signals = Namespace()

linked = link_signals.signal("linked")
link_refused = link_signals.signal("link_refused")
wrong_password = link_signals.signal("wrong_password")
wrong_code = link_signals.signal("wrong_code")
locked_out = link_signals.signal("locked_out")
email_updated = link_signals.signal("email_updated")
email_sync_skipped = link_signals.signal("email_sync_skipped")
unlinked = link_signals.signal("unlinked")

#: The signal of each event, by the event's name.
SIGNALS = {name: link_signals.signal(name) for name in EVENTS}


def send(event: str, user: Any, details: Mapping[str, Any]) -> None:
    """Send ``event``'s signal (the strategy's ``send_link_signal``)."""
    signal = SIGNALS.get(event)
    if signal is not None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        signal.send(app, user=user, details=details)
