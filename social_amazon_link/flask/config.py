"""The Amazon settings of a Flask app, checked by ``init_app`` (see :mod:`..settings`)."""

from __future__ import annotations

import logging
from typing import Any, cast

from flask import Flask
from social_core.backends.base import BaseAuth
from social_flask.utils import load_strategy

from ..backend import AmazonOAuth2
from ..settings import check_settings, unverified_email_warning

__all__ = ["check_config"]

log = logging.getLogger("social_amazon_link")


def check_config(app: Flask) -> None:
    """Raise ``AmazonSettingsError`` for bad Amazon settings; warn about an email allowlist.

    Settings are read as a sign-in reads them: the strategy's fallback from
    ``SOCIAL_AUTH_AMAZON_<name>`` to ``SOCIAL_AUTH_<name>`` in ``app.config``.
    """
    with app.app_context():
        strategy = load_strategy()
        # strategy.setting() needs only the backend's name: the class has it,
        # and an instance would need a request.
        backend = cast("BaseAuth[Any]", AmazonOAuth2)

        def setting(name: str, default: Any) -> Any:
            return strategy.setting(name, default, backend=backend)

        check_settings(setting)
        warning = unverified_email_warning(setting)
    if warning:
        log.warning("%s", warning)
