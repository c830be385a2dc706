"""The Django app: ``social_amazon_link.django`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class SocialAmazonLinkConfig(AppConfig):
    """This library's tables (wrong-password counts, link events) beside social_django's."""

    name = "social_amazon_link.django"
    # The app's label names its migrations (``migrate social_amazon_link``);
    # "django" alone would clash with nothing but read as Django's own.
    label = "social_amazon_link"
    verbose_name = "Login with Amazon (social-amazon-link)"
    default_auto_field = "django.db.models.AutoField"
