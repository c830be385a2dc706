"""The Django sides' URLs (``ROOT_URLCONF`` of :mod:`bench.django_apps`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


def me(request: HttpRequest) -> JsonResponse:
    user: Any = request.user
    if not user.is_authenticated:
        return JsonResponse({"authenticated": False}, status=401)
    return JsonResponse({"authenticated": True, "id": user.id, "username": user.username})


@csrf_exempt
def ping(request: HttpRequest) -> JsonResponse:
    # The same route shape, body and JSON answer as a sign-in, nothing else.
    return JsonResponse({"status": "ok"})


def csrf(request: HttpRequest) -> JsonResponse:
    """The token a page of the app would put in its Login with Amazon form."""
    return JsonResponse({"csrf_token": get_token(request)})


@csrf_exempt
def client_token(request: HttpRequest) -> JsonResponse:
    """What an app on stock social_django writes for a mobile app's token: do_auth, login."""
    from social_django.utils import load_backend, load_strategy

    strategy = load_strategy(request)
    backend = load_backend(strategy, "amazon", redirect_uri=None)
    user = backend.do_auth(request.POST["access_token"])
    login(request, user, backend="bench.stock.StockAmazonOAuth2")
    return JsonResponse({"id": user.id, "username": user.username})


urlpatterns = [
    path("me", me),
    path("bench/ping", ping),
    path("bench/csrf", csrf),
]
if settings.BENCH_SIDE == "ours":
    urlpatterns.append(path("", include("social_amazon_link.django.urls")))
else:
    urlpatterns += [
        path("client-token", client_token),
        path("", include("social_django.urls", namespace="social")),
    ]
