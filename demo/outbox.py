"""Demo mode only: the emails the demo would send, shown on its Outbox page.

An account with no password proves it owns its email with a one-time code,
sent through social-core's ``SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION``. The demo
has no mail server, so :func:`send_code` keeps each message in memory and
``/demo/outbox`` lists them, newest first. With real Amazon the page does not
exist: ``create_app`` calls :func:`init_outbox` in demo mode only.
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
    code: str
    sent: datetime


def init_outbox(app: Flask) -> None:
    app.extensions["demo_outbox"] = deque(maxlen=KEEP)
    app.register_blueprint(bp)


def send_code(strategy: Any, backend: Any, code: Any, partial_token: str | None) -> None:
    """``EMAIL_VALIDATION_FUNCTION``: "email" ``code.code`` to ``code.email``."""
    # The paused sign-in's token stays out of the message: the person types
    # the code on the page that is already waiting for it.
    message = Message(to=code.email, code=code.code, sent=datetime.now(UTC))
    current_app.extensions["demo_outbox"].appendleft(message)


@bp.get("/outbox")
def outbox() -> str:
    return render_template("outbox.html", messages=list(current_app.extensions["demo_outbox"]))
