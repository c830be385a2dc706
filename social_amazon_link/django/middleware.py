"""The library's error pages for the app's own views too.

``social_amazon_link.django.middleware.AmazonLinkMiddleware``, listed after
social_django's ``SocialAuthExceptionMiddleware`` (Django asks the later one
first): a social-auth error a view of the app lets through (its own endpoint
that calls ``backend.do_auth``, say) becomes the library's page with its
stable code and status, where social_django's would send a 500, or replace a
409 or a 429 with its own. This integration's views answer their errors
themselves (:func:`.views.amazon_errors`), with or without it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from social_core.exceptions import SocialAuthBaseException

from .views import error_response

__all__ = ["AmazonLinkMiddleware"]


class AmazonLinkMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, SocialAuthBaseException):
            return error_response(request, exception)
        return None
