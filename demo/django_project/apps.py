from __future__ import annotations

from django.apps import AppConfig


class AcmeConfig(AppConfig):
    """The demo's own accounts: the app *before* Login with Amazon."""

    name = "demo.django_project"
    label = "acme"
    default_auto_field = "django.db.models.BigAutoField"
