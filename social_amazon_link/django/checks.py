"""Django system checks (``manage.py check``): a configuration that cannot sign
anyone in is an error at start, not a silent redirect home.

- ``social_amazon_link.E001``: no ``AmazonOAuth2`` in ``AUTHENTICATION_BACKENDS``
  (rule 7's session could not load its user back).
- ``social_amazon_link.E002``: ``SOCIAL_AUTH_AMAZON_KEY`` or ``SECRET`` missing.
- ``social_amazon_link.E003``: a ``REGION`` that is not ``NA``, ``EU`` or ``FE``.
- ``social_amazon_link.E004``: any other bad Amazon setting
  (:func:`social_amazon_link.settings.check_settings`).
- ``social_amazon_link.E005``: the storage lacks a member of the storage contract.
- ``social_amazon_link.E006``: ``SOCIAL_AUTH_STRATEGY`` is not this integration's
  (its hooks are rule 7 and the prompts' checks).
- ``social_amazon_link.W001``: social_django's ``SocialAuthExceptionMiddleware``
  without ``AmazonLinkMiddleware`` after it: the app's own views' sign-in
  errors would get social_django's page and status (a 500, or 403 for 429).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string
from social_core.utils import get_strategy

from ..backend import AmazonOAuth2
from ..settings import AmazonSettingsError, check_settings, strategy_setting
from ..storage_contract import missing_members
from .strategy import DjangoStrategy

__all__ = ["check_amazon_link"]

STRATEGY = "social_amazon_link.django.strategy.DjangoStrategy"
STORAGE = "social_amazon_link.django.storage.DjangoStorage"
SOCIAL_MIDDLEWARE = "social_django.middleware.SocialAuthExceptionMiddleware"
MIDDLEWARE = "social_amazon_link.django.middleware.AmazonLinkMiddleware"

_IDS = {"SOCIAL_AUTH_AMAZON_KEY": "E002", "SOCIAL_AUTH_AMAZON_SECRET": "E002"}


@register("social_amazon_link")
def check_amazon_link(app_configs: Any = None, **_kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not any(_is_amazon(path) for path in settings.AUTHENTICATION_BACKENDS):
        errors.append(
            Error(
                "AmazonOAuth2 is not in AUTHENTICATION_BACKENDS: a person signed in with "
                "Amazon would be signed out on the next page.",
                hint='Add "social_amazon_link.backend.AmazonOAuth2" to AUTHENTICATION_BACKENDS.',
                id="social_amazon_link.E001",
            )
        )
    errors += _middleware_order(list(getattr(settings, "MIDDLEWARE", None) or []))
    strategy_path = getattr(settings, "SOCIAL_AUTH_STRATEGY", None)
    strategy_class = _imported(strategy_path) if strategy_path else None
    if not (isinstance(strategy_class, type) and issubclass(strategy_class, DjangoStrategy)):
        errors.append(
            Error(
                f"SOCIAL_AUTH_STRATEGY is {strategy_path!r}, not this library's strategy.",
                hint=f'Set SOCIAL_AUTH_STRATEGY = "{STRATEGY}".',
                id="social_amazon_link.E006",
            )
        )
        return errors
    storage = getattr(settings, "SOCIAL_AUTH_STORAGE", STORAGE)
    strategy = get_strategy(str(strategy_path), storage)
    try:
        check_settings(strategy_setting(strategy))
    except AmazonSettingsError as error:
        for name, problem in error.problems.items():
            number = "E003" if name.endswith("_REGION") else _IDS.get(name, "E004")
            errors.append(Error(f"{name}: {problem}", id=f"social_amazon_link.{number}"))
    missing = missing_members(strategy.storage)
    if missing:
        errors.append(
            Error(
                f"The storage {storage} does not implement the storage contract "
                f"(social_amazon_link.storage_contract): it lacks {', '.join(missing)}.",
                hint=f'Set SOCIAL_AUTH_STORAGE = "{STORAGE}", or complete the storage.',
                id="social_amazon_link.E005",
            )
        )
    return errors


def _middleware_order(middleware: list[str]) -> list[CheckMessage]:
    if SOCIAL_MIDDLEWARE not in middleware:
        return []
    if MIDDLEWARE in middleware[middleware.index(SOCIAL_MIDDLEWARE) :]:
        return []
    return [
        Warning(
            f"{SOCIAL_MIDDLEWARE} is in MIDDLEWARE without {MIDDLEWARE} after it: a sign-in "
            "error in the app's own views would get social_django's page and status.",
            hint=f'Add "{MIDDLEWARE}" after it.',
            id="social_amazon_link.W001",
        )
    ]


def _imported(path: str) -> Any:
    try:
        return import_string(path)
    except ImportError:
        return None


def _is_amazon(path: str) -> bool:
    backend = _imported(path)
    return isinstance(backend, type) and issubclass(backend, AmazonOAuth2)
