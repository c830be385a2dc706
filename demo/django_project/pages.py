"""The Flask demo's Jinja templates (``demo/templates``), rendered for Django.

The demo's own pages are the same files under both frameworks, so their HTML
is the same: the few Flask names they use (``url_for``, ``current_user``,
``get_flashed_messages``, ``csrf_token``, ``config``) are given here from
Django's request, messages and CSRF token. The library's prompt pages are
Django templates of ``social_amazon_link.django``; :func:`demo_context` gives
their layout override (``templates/social_amazon_link/layout.html``) what the
demo's frame needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

#: The Flask endpoint names the templates use, as Django URL names.
ENDPOINTS = {
    "accounts.login": "login",
    "accounts.register": "register",
    "accounts.account": "account",
    "accounts.logout": "logout",
    "outbox.outbox": "outbox",
    "social.auth": "social:begin",
    "social.disconnect": "social:disconnect_individual",
}

_jinja = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())


def url_for(endpoint: str, **values: Any) -> str:
    if endpoint == "static":
        return f"/static/{values['filename']}"
    return reverse(ENDPOINTS[endpoint], kwargs=values or None)


def _flashes(request: HttpRequest) -> Callable[..., list[Any]]:
    def get_flashed_messages(with_categories: bool = False) -> list[Any]:
        shown = [(message.level_tag, message.message) for message in messages.get_messages(request)]
        return shown if with_categories else [text for _tag, text in shown]

    return get_flashed_messages


def render(request: HttpRequest, template: str, status: int = 200, **context: Any) -> HttpResponse:
    """``template`` from demo/templates, as the Flask demo renders it."""

    def token() -> str:
        return get_token(request)

    page = _jinja.get_template(template).render(
        request=request,
        url_for=url_for,
        config={"DEMO_MODE": settings.DEMO_MODE},
        current_user=request.user,
        get_flashed_messages=_flashes(request),
        csrf_token=token,
        amazon_link_csrf_token=token,
        # social_django starts a sign-in on a POST only: the Amazon buttons are forms.
        amazon_start_post=True,
        **context,
    )
    return HttpResponse(page, status=status)


def demo_context(request: HttpRequest) -> dict[str, Any]:
    """For the library's Django templates in the demo's frame."""
    return {"demo_mode": settings.DEMO_MODE}
