"""The Django demo's URLs: its own pages, then Login with Amazon's include."""

from __future__ import annotations

from pathlib import Path

from django.urls import include, path
from django.views.static import serve

from . import views

STATIC = Path(__file__).resolve().parent.parent / "static"

urlpatterns = [
    path("", views.index),
    path("login", views.login, name="login"),
    path("register", views.register, name="register"),
    path("account", views.account, name="account"),
    path("logout", views.logout, name="logout"),
    path("demo/outbox", views.outbox, name="outbox"),
    # The demo's one stylesheet (no collectstatic for a demo).
    path("static/<path:path>", serve, {"document_root": STATIC}),
    # Login with Amazon: /login/amazon/, /complete/amazon/, /disconnect/amazon/<id>/,
    # the prompt pages and /api/amazon/ (social_django's URLs come with it).
    path("", include("social_amazon_link.django.urls")),
]

handler404 = "demo.django_project.views.not_found"
handler500 = "demo.django_project.views.server_error"
