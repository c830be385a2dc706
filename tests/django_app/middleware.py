"""A sign-in by request header, as an app's API-token authentication signs in:
no ``user_logged_in`` signal, so only a pause's own binding stands between
that user and someone else's paused sign-in (tests/test_shared_browser.py)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .models import User

#: The header (``X-Test-User: <username>``), as the Flask sample app's request loader reads it.
HEADER = "HTTP_X_TEST_USER"


class HeaderSignIn:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = request.META.get(HEADER)
        if name and not request.user.is_authenticated:
            request.user = User.objects.get(username=name)
        return self.get_response(request)
