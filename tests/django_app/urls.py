"""The Django sample app's URLs: its own pages, then Login with Amazon's."""

from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("me", views.me),
    path("csrf-token", views.csrf_token),
    path("test-login", views.test_login),
    path("test-logout", views.test_logout),
    path("client-token", views.client_token),
    path("", include("social_amazon_link.django.urls")),
]
