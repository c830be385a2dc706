"""Two small middlewares of the Django demo.

- :func:`form_csrf_token`: the demo's forms carry their token as ``csrf_token``
  (CONTRACT.md: every form, under either framework); Django's CSRF check reads
  ``csrfmiddlewaretoken`` or the ``X-CSRFToken`` header, so the field is handed
  to the header before the check runs. The token is still Django's own.
- :func:`cancelled_sign_in`: the prompt's Cancel button ends the paused sign-in
  and redirects; the next page says so, as on Flask.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse

from demo.flashes import CANCELLED

Handler = Callable[[HttpRequest], HttpResponse]
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
#: Where the library's prompt pages live (the paths of both integrations).
PROMPT_PREFIX = "/link/amazon/"


def form_csrf_token(get_response: Handler) -> Handler:
    def middleware(request: HttpRequest) -> HttpResponse:
        header = settings.CSRF_HEADER_NAME
        if (
            request.method == "POST"
            and request.content_type in FORMS
            and header not in request.META
        ):
            token = request.POST.get("csrf_token")
            if token:
                request.META[header] = token
        return get_response(request)

    return middleware


def cancelled_sign_in(get_response: Handler) -> Handler:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if (
            request.method == "POST"
            and request.path.startswith(PROMPT_PREFIX)
            and request.POST.get("action") == "cancel"
            and response.status_code == 302
        ):
            messages.info(request, CANCELLED)
        return response

    return middleware
