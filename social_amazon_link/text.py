"""What text from a person or from Amazon must be before it reaches the database.

Framework-free: used by the storage, the pipeline steps and the JSON API.
PostgreSQL cannot store or even compare a string holding NUL, and no driver
can send one holding a lone surrogate (JSON allows ``"\\ud800"``); such a value
must be refused as bad input before any query, not fail inside one.

Emails have one rule for what an address may be (:func:`valid_email`, the
canonical spelling) and one for when two are the same (:func:`email_key`);
every place an address enters or is compared uses these two.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "EMAIL_MAX_LENGTH",
    "email_key",
    "has_control_characters",
    "one_line",
    "plain",
    "shown",
    "storable",
    "valid_email",
]

#: The longest address SMTP allows (RFC 5321 path limit).
EMAIL_MAX_LENGTH = 254

#: The local part: dot-separated runs of RFC 5322 ``atext`` or of non-ASCII
#: characters (RFC 6531), no empty run: no leading, trailing or doubled dot.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+"
_LOCAL_PART = re.compile(_ATOM + r"(?:\." + _ATOM + ")*")
#: Longest local part and domain label (RFC 5321 section 4.5.3.1, RFC 1035).
_LOCAL_PART_MAX_LENGTH = 64
_LABEL_MAX_LENGTH = 63
#: Unicode's category Cc, all of it: C0, DEL and C1 (fixed by Unicode's stability policy).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
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
    return _CONTROL.search(value) is not None


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
    return " ".join(_CONTROL.sub(" ", value).split())


def valid_email(value: str) -> bool:
    """Whether ``value`` is one email address in its canonical spelling, short
    enough to send to.

    Canonical: ``local@domain`` with exactly one ``@``, in Unicode NFC, with
    no whitespace, control or format character (a right-to-left override, say:
    an address is shown to people and must read as what it is). The local part
    is 1-64 characters of dot-separated runs of letters, digits,
    ``!#$%&'*+/=?^_`{|}~-`` or non-ASCII characters: no leading, trailing or
    doubled dot, no quoted form. The domain is at least two labels separated by
    single dots, each 1-63 letters, digits (any script) or hyphens, not starting
    or ending with a hyphen, the last not all digits: no empty label, so no
    trailing dot (``victim@example.com.`` is the same mailbox as
    ``victim@example.com``, and would count as another address), and no IP
    literal. Anything else is refused as invalid wherever an address enters (the
    Amazon profile, the registration form, the JSON API, email sync), so it is
    never matched, copied or stored. Surrounding whitespace is the caller's to
    trim (the forms and the profile step do) before asking.
    """
    if not (
        len(value) <= EMAIL_MAX_LENGTH
        and storable(value)
        and value.isprintable()
        and not any(char.isspace() for char in value)
        and unicodedata.is_normalized("NFC", value)
        and value.count("@") == 1
    ):
        return False
    local, domain = value.split("@")
    labels = domain.split(".")
    return (
        len(local) <= _LOCAL_PART_MAX_LENGTH
        and _LOCAL_PART.fullmatch(local) is not None
        and len(labels) >= 2
        and all(_valid_label(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _valid_label(label: str) -> bool:
    return (
        0 < len(label) <= _LABEL_MAX_LENGTH
        and not label.startswith("-")
        and not label.endswith("-")
        and all(
            char == "-" or char.isalnum() or unicodedata.category(char).startswith("M")
            for char in label
        )
    )


def email_key(value: str) -> str:
    """What two addresses share when they are the same: Unicode *simple* case folding.

    Each character is replaced by its simple case folding (CaseFolding.txt,
    status C and S): one character for one, so ``Ü``/``ü``, ``É``/``é``,
    the three Greek sigmas and ``Ж``/``ж`` are the same, while ``ß`` stays apart
    from ``ss`` (that is full folding, which would also merge distinct
    mailboxes). The same on every database and in every locale: the storage
    compares these keys, not the database's ``lower()``.
    """
    return "".join(_simple_fold(char) for char in value)


def _simple_fold(char: str) -> str:
    folded = char.casefold()
    if len(folded) == 1:
        return folded
    # Full folding gave several characters: the simple one is the lower-case
    # letter when that is one character (U+1E9E to U+00DF), else the
    # character itself (U+00DF, U+0130).
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char
