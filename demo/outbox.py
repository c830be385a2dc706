"""Demo mode only: the emails the demo would send, shown on its Outbox page.

Two kinds: an account with no password proves it owns its email with a
one-time code, sent through social-core's ``SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION``
(:func:`send_code`); and the owner of an account is told when an Amazon account
is linked or unlinked, when its email is changed from Amazon (the old address
too) and when linking is locked, through ``SOCIAL_AUTH_AMAZON_LINK_NOTIFY_FUNCTION``
(:func:`send_notice`). The demo has no mail server, so each message is kept in
memory and ``/demo/outbox`` lists them, newest first, each with its recipient.
With real Amazon the page does not exist: ``create_app`` calls
:func:`init_outbox` in demo mode only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, render_template

bp = Blueprint("outbox", __name__, url_prefix="/demo")

#: Messages the page keeps; older ones drop off.
KEEP = 20


@dataclass(frozen=True)
class Message:
    to: str
    sent: datetime
    #: A one-time code's message: the code.
    code: str | None = None
    #: A notification's subject and text (``details`` of LINK_NOTIFY_FUNCTION).
    subject: str | None = None
    text: str | None = None


def init_outbox(app: Flask) -> None:
    app.extensions["demo_outbox"] = deque(maxlen=KEEP)
    app.register_blueprint(bp)


def send_code(strategy: Any, backend: Any, code: Any, partial_token: str | None) -> None:
    """``EMAIL_VALIDATION_FUNCTION``: "email" ``code.code`` to ``code.email``."""
    # The paused sign-in's token stays out of the message: the person types
    # the code on the page that is already waiting for it.
    message = Message(to=code.email, code=code.code, sent=datetime.now(UTC))
    current_app.extensions["demo_outbox"].appendleft(message)


def send_notice(strategy: Any, user: Any, event: str, details: dict[str, Any]) -> None:
    """``LINK_NOTIFY_FUNCTION``: "email" the notification to each of its recipients."""
    current_app.extensions["demo_outbox"].extendleft(notices(details))


def notices(details: dict[str, Any]) -> list[Message]:
    """One message per recipient of a notification (both demos' ``send_notice``)."""
    return [
        Message(to=address, sent=details["when"], subject=details["subject"], text=details["text"])
        for address in details["recipients"]
    ]


@bp.get("/outbox")
def outbox() -> str:
    return render_template("outbox.html", messages=list(current_app.extensions["demo_outbox"]))
