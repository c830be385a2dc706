"""Demo mode only: the codes and notices the Django demo would email, kept for its Outbox page.

The Flask demo keeps them per app (:mod:`demo.outbox`); a Django project is
one per process, so they live here.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

from demo.outbox import KEEP, Message, notices

MESSAGES: deque[Message] = deque(maxlen=KEEP)


def send_code(strategy: Any, backend: Any, code: Any, partial_token: str | None) -> None:
    """``EMAIL_VALIDATION_FUNCTION``: "email" ``code.code`` to ``code.email``."""
    # The paused sign-in's token stays out of the message, as on Flask.
    MESSAGES.appendleft(Message(to=code.email, code=code.code, sent=datetime.now(UTC)))


def send_notice(strategy: Any, user: Any, event: str, details: dict[str, Any]) -> None:
    """``LINK_NOTIFY_FUNCTION``: "email" the notification to each of its recipients."""
    MESSAGES.extendleft(notices(details))
