"""The Django demo's settings: Login with Amazon added as any Django app adds it.

Read at start-up from the same environment as the Flask demo (``SECRET_KEY``,
``DATABASE_URL``, ``AMAZON_CLIENT_ID``/``AMAZON_CLIENT_SECRET``/``AMAZON_REGION``
for real Amazon, else the emulator at ``LWA_EMULATOR_URL``), through
:func:`demo.amazon_settings`. The lines an app on ``social_django`` adds are
marked "Login with Amazon" (docs/django.md explains each).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from social_amazon_link.pipelines import AMAZON_DISCONNECT_PIPELINE, AMAZON_PIPELINE

from demo import DEFAULT_DATABASE, amazon_settings

from .database import django_database

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
DEBUG = False
# The demo serves on the host it is given (--host); Django checks the Host
# header against this list, and the host is the person's own choice.
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "demo.django_project.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "demo.django_project",
    # Login with Amazon: social_django, then this library's app.
    "social_django",
    "social_amazon_link.django",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "demo.django_project.middleware.form_csrf_token",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "demo.django_project.middleware.cancelled_sign_in",
]
TEMPLATES = [
    {
        # The demo's own pages, the Flask demo's Jinja templates (demo/templates:
        # also its error page for the library, social_amazon_link/error.html).
        "NAME": "demo",
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [TEMPLATES_DIR],
        "APP_DIRS": False,
        "OPTIONS": {
            "environment": "demo.django_project.pages.environment",
            "context_processors": ["demo.django_project.pages.flask_names"],
        },
    },
    {
        # The library's prompt pages (its Django templates), in the demo's frame
        # (demo/django_project/templates overrides their layout).
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "demo.django_project.pages.demo_context",
            ]
        },
    },
]

# A blank DATABASE_URL (set but empty in a shell or .env) too. The default
# SQLite file's folder is made here, as the Flask demo's create_app makes it
# (Django 6's manage.py check opens the database).
if not os.environ.get("DATABASE_URL"):
    DEFAULT_DATABASE.parent.mkdir(exist_ok=True)
DATABASES = {
    "default": django_database(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_DATABASE.resolve()}"
    )
}

AUTH_USER_MODEL = "acme.User"
# Hashing as costly as the Flask demo's (Werkzeug's scrypt).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.ScryptPasswordHasher"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# A refused form token answers as the Flask demo's does (400, in plain words).
CSRF_FAILURE_VIEW = "demo.django_project.views.csrf_failure"
LOGIN_URL = "/login"

# Login with Amazon: the backend beside Django's own, the library's storage.
AUTHENTICATION_BACKENDS = [
    "social_amazon_link.backend.AmazonOAuth2",
    "django.contrib.auth.backends.ModelBackend",
]
SOCIAL_AUTH_STRATEGY = "social_amazon_link.django.strategy.DjangoStrategy"
SOCIAL_AUTH_STORAGE = "social_amazon_link.django.storage.DjangoStorage"
SOCIAL_AUTH_LOGIN_URL = "/login"
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/account"
SOCIAL_AUTH_NEW_ASSOCIATION_REDIRECT_URL = "/account"
SOCIAL_AUTH_DISCONNECT_REDIRECT_URL = "/account"
# Accounts made through Amazon keep the person's name and postal code too
# (the postal code needs LWA's postal_code scope).
SOCIAL_AUTH_AMAZON_SCOPE = ["profile", "postal_code"]
SOCIAL_AUTH_USER_FIELDS = ["username", "email", "name", "postal_code"]
# The library's pipelines, plus a last step each that tells the person which
# Amazon account was linked or unlinked.
SOCIAL_AUTH_AMAZON_PIPELINE = (*AMAZON_PIPELINE, "demo.django_project.flashes.link_confirmed")
SOCIAL_AUTH_AMAZON_DISCONNECT_PIPELINE = (
    *AMAZON_DISCONNECT_PIPELINE,
    "demo.django_project.flashes.unlink_confirmed",
)

_amazon: dict[str, Any] = amazon_settings()
DEMO_MODE: bool = _amazon.pop("DEMO_MODE")
globals().update(_amazon)
if DEMO_MODE:
    # The seeded accounts without a password get their codes on the Outbox page,
    # and each owner's notices (link, unlink, email change, lockout) go there too.
    SOCIAL_AUTH_EMAIL_VALIDATION_FUNCTION = "demo.django_project.outbox.send_code"
    SOCIAL_AUTH_AMAZON_LINK_NOTIFY_FUNCTION = "demo.django_project.outbox.send_notice"

# A server error's traceback on the terminal that runs the demo (Django prints
# none while DEBUG is off); never a request's POST data (sensitive_post_parameters).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
