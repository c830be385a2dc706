"""The mobile JSON API on Django, at ``/api/amazon/``: routes to :mod:`social_amazon_link.flow.api`.

What each endpoint reads, does and answers is the core's; these views read
the body, call it and send its :class:`~social_amazon_link.flow.api.Answer`.
They are CSRF-exempt: every endpoint reads only an ``application/json``
body, which a cross-site form cannot send (and a cross-site script only
after a CORS preflight, answered 405 here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from social_core.exceptions import SocialAuthBaseException

from ..flow import api
from ..flow.paused import load_backend
from .strategy import load_strategy
from .views import database_outage, end_transaction

__all__ = ["endpoint", "not_found"]

log = logging.getLogger("social_amazon_link")

Endpoint = Callable[..., api.Answer]


def endpoint(call: Endpoint) -> Callable[[HttpRequest], HttpResponse]:
    """The view of one endpoint: POST runs ``call``, any other method is 405."""

    @csrf_exempt
    @login_not_required
    def view(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _send(api.METHOD_NOT_ALLOWED)
        secrets: list[str] = []
        try:
            answer = _call(request, call, secrets.extend)
        except SocialAuthBaseException as error:
            answer = api.error_answer(error)
        except Exception as error:
            unavailable = database_outage(request, error)
            if unavailable is not None:
                answer = api.error_answer(unavailable)
            else:
                # A bug: what it left open is rolled back with the connection.
                answer, text = api.server_error(error, secrets)
                log.error("Login with Amazon (API): unexpected error\n%s", text)
                return _send(answer)
        end_transaction(request)
        return _send(answer)

    view.__name__ = view.__qualname__ = call.__name__
    routed: Callable[[HttpRequest], HttpResponse] = view
    return routed


def _call(request: HttpRequest, call: Endpoint, keep: Callable[[Any], None]) -> api.Answer:
    length = request.META.get("CONTENT_LENGTH")
    read = request.read
    if not length and request.META.get("wsgi.input_terminated"):
        # A chunked body: Django reads nothing without a Content-Length; the
        # server has undone the chunking and ends the stream at its end.
        read = request.META["wsgi.input"].read
    body = api.read_json(
        read, int(length) if length and length.isdigit() else None, request.content_type
    )
    strategy = load_strategy(request)
    return call(strategy, load_backend(strategy, "amazon"), body, lambda *s: keep(s))


@csrf_exempt
@login_not_required
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return _send(api.NOT_FOUND)


def _send(answer: api.Answer) -> HttpResponse:
    response = HttpResponse(answer.text, status=answer.status, content_type="application/json")
    for name, value in answer.headers.items():
        response[name] = value
    # As Flask's answers carry it (Django adds it only with CommonMiddleware).
    response["Content-Length"] = str(len(response.content))
    return response
