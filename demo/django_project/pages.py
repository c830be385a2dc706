"""The Flask demo's Jinja templates (``demo/templates``), rendered by Django's Jinja2 engine.

The demo's own pages are the same files under both frameworks, so their HTML
is the same: the few Flask names they use (``url_for``, ``current_user``,
``get_flashed_messages``, ``csrf_token``, ``config``) come from Django's
request, messages and CSRF token (:func:`flask_names`, a context processor).
The same engine renders the demo's error page for the library
(``social_amazon_link/error.html``); the library's prompt pages are Django
templates, and :func:`demo_context` gives their layout override
(``demo/django_project/templates/social_amazon_link/layout.html``) what the
demo's frame needs.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render as django_render
from django.urls import reverse
from jinja2 import Environment

#: The name of the Jinja2 engine in ``settings.TEMPLATES`` that renders them.
ENGINE = "demo"

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


def url_for(endpoint: str, **values: Any) -> str:
    if endpoint == "static":
        return f"/static/{values['filename']}"
    return reverse(ENDPOINTS[endpoint], kwargs=values or None)


def amazon_links_of(user: Any) -> list[Any]:
    """The Amazon links of ``user``, oldest first (none for an anonymous visitor)."""
    if not user.is_authenticated:
        return []
    return list(user.social_auth.filter(provider="amazon").order_by("id"))


def environment(**options: Any) -> Environment:
    """The Jinja environment of the demo's templates (``TEMPLATES``, its Jinja2 engine)."""
    # Django's Jinja2 engine escapes by default (autoescape=True in ``options``).
    options["autoescape"] = True
    env = Environment(**options)  # noqa: S701 (autoescape set just above)
    env.globals.update(url_for=url_for, amazon_links_of=amazon_links_of)
    return env


def flask_names(request: HttpRequest) -> dict[str, Any]:
    """The names the templates use under Flask (a context processor: Django's own
    ``csrf_token`` value gives way to the templates' function of that name)."""

    def token() -> str:
        return get_token(request)

    def get_flashed_messages(with_categories: bool = False) -> list[Any]:
        shown = [(message.level_tag, message.message) for message in messages.get_messages(request)]
        return shown if with_categories else [text for _tag, text in shown]

    def unlink_view() -> bool:
        match = request.resolver_match
        return match is not None and "disconnect" in (match.url_name or "")

    return {
        "config": {"DEMO_MODE": settings.DEMO_MODE},
        "current_user": request.user,
        "get_flashed_messages": get_flashed_messages,
        "csrf_token": token,
        "amazon_link_csrf_token": token,
        "unlink_view": unlink_view,
        # social_django starts a sign-in on a POST only: the Amazon buttons are forms.
        "amazon_start_post": True,
    }


def render(request: HttpRequest, template: str, status: int = 200, **context: Any) -> HttpResponse:
    """``template`` from demo/templates, as the Flask demo renders it."""
    return django_render(request, template, context, status=status, using=ENGINE)


def demo_context(request: HttpRequest) -> dict[str, Any]:
    """For the library's Django templates in the demo's frame."""
    return {"demo_mode": settings.DEMO_MODE}
