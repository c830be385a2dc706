"""The Amazon settings, checked once when the app starts, for any framework.

A wrong setting found by a visitor is a 500 page (or worse, a sign-in sent to
Amazon with ``client_id=None``); found at start it is one error that names
each bad setting and what it may be. :func:`check_settings` takes a
``setting(name, default)`` callable that reads ``SOCIAL_AUTH_AMAZON_<name>``
then ``SOCIAL_AUTH_<name>``, as social-core's ``strategy.setting`` does, so
:func:`check_strategy_settings` reads them through an integration's strategy.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from social_core.pipeline import DEFAULT_AUTH_PIPELINE

from .lwa import REGIONS

__all__ = [
    "SCOPES",
    "AmazonSettingsError",
    "Setting",
    "check_settings",
    "check_strategy_settings",
    "is_loopback_address",
    "scope_list",
    "strategy_setting",
    "unverified_email_warning",
]

#: ``setting(name, default)``: the value of ``SOCIAL_AUTH_AMAZON_<name>``, else
#: ``SOCIAL_AUTH_<name>``, else ``default``.
Setting = Callable[[str, Any], Any]

#: The LWA scopes this library knows what to do with.
SCOPES: Final = ("profile", "profile:user_id", "postal_code")

#: The settings that name a URL Amazon's calls go to (the token exchange
#: carries the client secret, the others the person's access token).
URL_SETTINGS: Final = ("AUTHORIZATION_URL", "API_URL", "ACCESS_TOKEN_URL")

#: social-core's step that applies ``WHITELISTED_EMAILS`` / ``WHITELISTED_DOMAINS``.
AUTH_ALLOWED_STEP: Final = "social_core.pipeline.social_auth.auth_allowed"

_PREFIX = "SOCIAL_AUTH_AMAZON_"

log = logging.getLogger("social_amazon_link")


def strategy_setting(strategy: Any) -> Setting:
    """The Amazon settings as a sign-in reads them, through ``strategy.setting``."""
    # Imported here: the backend imports this module.
    from .backend import AmazonOAuth2

    def setting(name: str, default: Any) -> Any:
        # strategy.setting() needs only the backend's name: the class has it,
        # and an instance would need a request.
        return strategy.setting(name, default, backend=AmazonOAuth2)

    return setting


def check_strategy_settings(strategy: Any) -> None:
    """Check the settings as a sign-in reads them (:func:`strategy_setting`).

    Raises :class:`AmazonSettingsError`; logs :func:`unverified_email_warning`.
    Integrations call it when the app starts.
    """
    setting = strategy_setting(strategy)
    check_settings(setting)
    warning = unverified_email_warning(setting)
    if warning:
        log.warning("%s", warning)


class AmazonSettingsError(ValueError):
    """The Amazon settings are wrong: raised at start-up, never during a sign-in.

    Not one of :mod:`social_amazon_link.errors`: those are what a sign-in
    ends with, shown to the person with a code; this one stops a deployment
    before anyone signs in. ``problems`` maps each bad setting's full name to
    what is wrong with it and the values it may take.
    """

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        lines = "\n".join(f"- {name}: {problem}" for name, problem in problems.items())
        super().__init__(f"Login with Amazon is not configured correctly:\n{lines}")


def scope_list(value: Any) -> list[str]:
    """``SCOPE`` as a list; a string is split on spaces, as Amazon writes scopes."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


def check_settings(setting: Setting) -> None:
    """Raise :class:`AmazonSettingsError` naming every bad Amazon setting at once."""
    problems: dict[str, str] = {}
    for name, what in (("KEY", "your LWA client id"), ("SECRET", "your LWA client secret")):
        value = setting(name, None)
        if not isinstance(value, str) or not value.strip():
            # Never the value: a SECRET set to the wrong thing is still a secret.
            problems[_PREFIX + name] = f"missing or empty: set it to {what} (a string)."
    region = setting("REGION", "NA")
    if not isinstance(region, str) or region.upper() not in REGIONS:
        problems[_PREFIX + "REGION"] = (
            f"{_shown(region)} is not a region: use one of {', '.join(REGIONS)}."
        )
    scope_problem = _scope_problem(setting("SCOPE", None))
    if scope_problem:
        problems[_PREFIX + "SCOPE"] = scope_problem
    for name in URL_SETTINGS:
        url_problem = _url_problem(setting(name, None))
        if url_problem:
            problems[_PREFIX + name] = url_problem
    for name, default in (("BEHIND_TLS_PROXY", False), ("PKCE", True)):
        value = setting(name, default)
        if not isinstance(value, bool):
            # A string read from the environment ("false") would be true: the
            # JSON API takes only True as turning its HTTPS check off, and the
            # backend only False as turning PKCE off.
            problems[_PREFIX + name] = (
                f"{_shown(value)} is not True or False (a boolean, not a string)."
            )
    audiences_problem = _audiences_problem(setting("AUDIENCES", None))
    if audiences_problem:
        problems[_PREFIX + "AUDIENCES"] = audiences_problem
    problems.update(_link_problems(setting))
    if problems:
        raise AmazonSettingsError(problems)


def _link_problems(setting: Setting) -> dict[str, str]:
    """``LINK_NOTIFY_FUNCTION`` (importable and callable) and ``LINK_REAUTH_SECONDS``."""
    # Imported here: the steps import the backend, which imports this module.
    from .notifications import load_sender
    from .pipelines.reauth import DEFAULT_REAUTH_SECONDS

    problems: dict[str, str] = {}
    sender = setting("LINK_NOTIFY_FUNCTION", None)
    try:
        load_sender(sender)
    except Exception as error:  # an import fails in many ways
        problems[_PREFIX + "LINK_NOTIFY_FUNCTION"] = (
            f"{_shown(sender)} cannot be used ({type(error).__name__}): set the dotted path "
            "of your sender, a function f(strategy, user, event, details)."
        )
    seconds = setting("LINK_REAUTH_SECONDS", DEFAULT_REAUTH_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        problems[_PREFIX + "LINK_REAUTH_SECONDS"] = (
            f"{_shown(seconds)} is not a whole number of seconds, 0 or more "
            "(0 turns the check off)."
        )
    return problems


def unverified_email_warning(setting: Setting) -> str | None:
    """What to warn about when an email allowlist grants access on Amazon's word.

    social-core's ``auth_allowed`` step lets in whoever's profile email is on
    ``WHITELISTED_EMAILS`` or ``WHITELISTED_DOMAINS``; Amazon does not say
    whether that email was verified, so anyone can claim an allowed address.
    """
    # social-core's own default pipeline has the step too.
    pipeline = setting("PIPELINE", None) or DEFAULT_AUTH_PIPELINE
    if AUTH_ALLOWED_STEP not in pipeline:
        return None
    names = ("WHITELISTED_EMAILS", "WHITELISTED_DOMAINS")
    allowlists = [name for name in names if setting(name, None)]
    if not allowlists:
        return None
    return (
        f"{' and '.join(allowlists)} set with the Amazon pipeline: social-core's auth_allowed "
        "lets in anyone whose Amazon profile shows an allowed email, and Amazon does not "
        "verify emails. Anyone can create an Amazon account with an allowed address. "
        "Check the address yourself (for instance with an emailed code) before granting access."
    )


def _shown(value: Any) -> str:
    """A setting's value as an error quotes it, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _scope_problem(value: Any) -> str | None:
    allowed = (
        f"use a list of {', '.join(SCOPES)}, or one string of them separated by spaces "
        '(as Amazon writes it: "profile postal_code").'
    )
    if value is None:
        return None
    if not isinstance(value, (str, list, tuple)):
        return f"{_shown(value)} is not a list of scopes: {allowed}"
    scopes = scope_list(value)
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        return f"{', '.join(_shown(scope) for scope in unknown)} unknown: {allowed}"
    return None


def _audiences_problem(value: Any) -> str | None:
    allowed = (
        "use a list of the other LWA client ids (security profiles) whose tokens and codes "
        'this server accepts besides KEY, such as ["amzn1.application-oa2-client.abc"].'
    )
    if value is None:
        return None
    # A string is refused, not split: a client id listed by itself would
    # otherwise be read as its characters.
    if not isinstance(value, (list, tuple)):
        return f"{_shown(value)} is not a list: {allowed}"
    bad = [item for item in value if not isinstance(item, str) or not item or item != item.strip()]
    if bad:
        return f"{', '.join(_shown(item) for item in bad[:5])} not a client id: {allowed}"
    return None


def _url_problem(value: Any) -> str | None:
    allowed = (
        "use an https:// URL (plain http:// only on this machine's loopback: "
        "127.0.0.0/8, ::1 or localhost)."
    )
    if value is None or value == "":
        return None  # the region's own
    if not isinstance(value, str):
        return f"{_shown(value)} is not a URL: {allowed}"
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return f"not a valid URL: {allowed}"
    if host and parts.scheme == "https":
        return None
    if host and parts.scheme == "http" and _is_loopback(host):
        return None
    # Scheme and host only: a URL can carry a user name and password.
    return f"{parts.scheme or 'no scheme'}://{host or ''} is not allowed: {allowed}"


def _is_loopback(host: str) -> bool:
    return host.lower() == "localhost" or is_loopback_address(host)


def is_loopback_address(address: str | None) -> bool:
    """Whether ``address`` (an IP address, never a name) is this machine's loopback."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    # A dual-stack server (bound to "::") sees an IPv4 client as
    # ::ffff:a.b.c.d, which Python before 3.13 does not call loopback.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback
