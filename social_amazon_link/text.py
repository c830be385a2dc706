"""What text from a person or from Amazon must be before it reaches the database.

Framework-free: used by the storage, the pipeline steps and the JSON API.
PostgreSQL cannot store or even compare a string holding NUL, and no driver
can send one holding a lone surrogate (JSON allows ``"\\ud800"``); such a value
must be refused as bad input before any query, not fail inside one.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "EMAIL_MAX_LENGTH",
    "has_control_characters",
    "one_line",
    "plain",
    "shown",
    "storable",
    "valid_email",
]

#: The longest address SMTP allows (RFC 5321 path limit).
EMAIL_MAX_LENGTH = 254

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: A control character (Unicode category Cc, NUL included) or a lone surrogate.
_CONTROL_OR_SURROGATE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def storable(value: str) -> bool:
    """Whether every database can store and compare ``value``: no NUL, valid UTF-8."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_control_characters(value: str) -> bool:
    """Whether ``value`` holds a control character (Unicode category Cc, NUL included)."""
    return any(unicodedata.category(char) == "Cc" for char in value)


def plain(value: str) -> bool:
    """Whether ``value`` is storable and holds no control character: what a
    typed field or code may be."""
    return _CONTROL_OR_SURROGATE.search(value) is None


def shown(value: str) -> str:
    """``value`` fit to quote back in a message: each control character and
    lone surrogate as U+FFFD."""
    return _CONTROL_OR_SURROGATE.sub("\ufffd", value)


def one_line(value: str) -> str:
    """``value`` on one line, storable: control characters as spaces, runs of
    spaces as one, what UTF-8 cannot encode (a lone surrogate) as ``?``."""
    value = value.encode("utf-8", "replace").decode("utf-8")
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in value).split())


def valid_email(value: str) -> bool:
    """Whether ``value`` looks like one email address, short enough to send to."""
    return (
        len(value) <= EMAIL_MAX_LENGTH
        and storable(value)
        # No control or format character (a right-to-left override, say):
        # an address is shown to people, and must read as what it is.
        and value.isprintable()
        and _EMAIL.fullmatch(value) is not None
    )
