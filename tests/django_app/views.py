"""The Django sample app's own pages: what tests/sample_app.py is for Flask.

An app with its own accounts (tests/django_app/models.py) and Django's
sessions, to which Login with Amazon is added (urls.py includes the
integration's URLs).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from social_django.utils import load_strategy

from social_amazon_link.django.strategy import backend_path, signed_in_user
from social_amazon_link.flow.paused import load_backend

from .models import User


@require_GET
def me(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if user is None:
        return JsonResponse({"authenticated": False}, status=401)
    return JsonResponse(
        {"authenticated": True, "id": user.id, "username": user.username, "email": user.email}
    )


@require_GET
def csrf_token(request: HttpRequest) -> HttpResponse:
    # What a page of the app would put in a form posting to the integration.
    return JsonResponse({"csrf_token": get_token(request)})


@csrf_exempt
@require_POST
def test_login(request: HttpRequest) -> HttpResponse:
    # The app's own username + password sign-in.
    user = User.objects.get(username=request.POST["username"])
    if not user.check_password(request.POST["password"]):
        return JsonResponse({"authenticated": False}, status=403)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"authenticated": True, "id": user.id})


@csrf_exempt
@require_POST
def test_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return JsonResponse({"authenticated": False})


@csrf_exempt
@require_POST
def client_token(request: HttpRequest) -> HttpResponse:
    # What a mobile app's server endpoint does with the token it was sent
    # (the full JSON API is social_amazon_link.django's /api/amazon/).
    backend = load_backend(load_strategy(request), "amazon")
    user: Any = backend.do_auth(request.POST["access_token"])
    login(request, user, backend=backend_path(backend))
    return JsonResponse({"id": user.id, "username": user.username})
