"""The Flask strategy for social-core 7.

social-auth-app-flask's ``FlaskStrategy`` (its only release, 2017) predates
social-core 7 and lacks ``get_request_data``, ``request_is_secure``,
``request_path``, ``request_port``, ``request_get``, ``request_post`` and
``html_with_headers``; this one implements the whole strategy contract, and
the hooks of :class:`social_amazon_link.flow.AdapterStrategy` (Flask-Login's
``login_user`` for rule 7). Select it with ``SOCIAL_AUTH_STRATEGY``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import (
    current_app,
    has_request_context,
    make_response,
    redirect,
    render_template,
    render_template_string,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user
from social_core.strategy import BaseStrategy, BaseTemplateStrategy
from social_core.utils import build_absolute_uri, user_is_authenticated
from werkzeug.wrappers import Response

from ..flow.login import allows_inactive
from ..flow.prompts import prompt_request_data
from . import signals

__all__ = ["PROMPT_PAGES", "FlaskStrategy", "FlaskTemplateStrategy", "signed_in_user"]

#: The blueprint of the prompt pages (:mod:`.views`).
PROMPT_PAGES = "amazon_link"


class FlaskTemplateStrategy(BaseTemplateStrategy):
    """Render social-core's templates with the app's Jinja environment."""

    def render_template(self, tpl: str, context: dict[str, Any] | None) -> str:
        return render_template(tpl, **(context or {}))

    def render_string(self, html: str, context: dict[str, Any] | None) -> str:
        return render_template_string(html, **(context or {}))


class FlaskStrategy(BaseStrategy[Response]):
    """Bind social-core to the current Flask request, session and config."""

    DEFAULT_TEMPLATE_STRATEGY = FlaskTemplateStrategy

    def get_setting(self, name: str) -> Any:
        # KeyError tells BaseStrategy.setting() to try the next name.
        return current_app.config[name]

    def get_request_data(self, merge: bool = True) -> dict[str, Any]:
        if request.blueprint == PROMPT_PAGES:
            return prompt_request_data(request.values)
        if merge:
            data = request.form.to_dict()
            data.update(request.args.to_dict())
            return data
        if request.method == "POST":
            return request.form.to_dict()
        return request.args.to_dict()

    def request_get(self) -> dict[str, Any]:
        return request.args.to_dict()

    def request_post(self) -> dict[str, Any]:
        return request.form.to_dict()

    def request_host(self) -> str:
        return request.host

    def request_is_secure(self) -> bool:
        return request.is_secure

    def request_path(self) -> str:
        return request.path

    def request_port(self) -> int:
        port = urlsplit(request.host_url).port
        if port is not None:
            return port
        return 443 if request.is_secure else 80

    def redirect(self, url: str) -> Response:
        return redirect(url)

    def html(self, content: str) -> Response:
        response = make_response(content)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        return response

    def html_with_headers(self, content: str, headers: Mapping[str, str]) -> Response:
        response = self.html(content)
        response.headers.update(headers)
        return response

    def session_get(self, name: str, default: Any = None) -> Any:
        return session.get(name, default)

    def session_set(self, name: str, value: Any) -> None:
        session[name] = value

    def session_pop(self, name: str) -> Any:
        return session.pop(name, None)

    def session_setdefault(self, name: str, value: Any) -> Any:
        return session.setdefault(name, value)

    def build_absolute_uri(self, path: str | None = None) -> str:
        return build_absolute_uri(request.host_url, path)

    def session_keys(self) -> Iterable[str]:
        return list(session)

    def request_remote_addr(self) -> str | None:
        return request.remote_addr

    def complete_url(self, backend_name: str) -> str:
        return url_for("social.complete", backend=backend_name)

    def send_link_signal(self, event: str, user: Any, details: Mapping[str, Any]) -> None:
        """A committed security event: its blinker signal (:mod:`.signals`)."""
        signals.send(event, user, details)

    def signed_in_user(self) -> Any:
        """The user the app's Flask-Login session has signed in, or None.

        What a pause remembers of who started it
        (``social_amazon_link.pipelines.pause.signed_in``).
        """
        return signed_in_user()

    def login_user(self, backend: Any, user: Any, social_user: Any) -> bool:
        """Rule 7: Flask-Login's ``login_user``, with social-auth-app-flask's
        remember-me choice (``REMEMBER_SESSION_NAME``, default ``keep``)."""
        name = self.setting("REMEMBER_SESSION_NAME", "keep")
        remember = (
            self.session_get(name)
            or request.cookies.get(name)
            or request.args.get(name)
            or request.form.get(name)
            or False
        )
        return bool(login_user(user, remember=bool(remember), force=allows_inactive(backend)))


def signed_in_user() -> Any:
    """The user the app's Flask-Login session has signed in on this request, or None."""
    if not has_request_context():
        return None
    user = current_user._get_current_object()
    return user if user_is_authenticated(user) else None
