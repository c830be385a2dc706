"""The Django settings of the test suite (``DJANGO_SETTINGS_MODULE=tests.django_settings``).

Minimal: the apps the Django integration needs and the test app holding the
custom user model on the ``users`` table. ``DATABASES["default"]`` is a
placeholder: :mod:`tests.django_support` points it at each test's own fresh
database (``database_url``) before the test runs.
"""

from __future__ import annotations

import os

from social_amazon_link import pipelines as _pipelines

SECRET_KEY = "django-tests-secret-not-for-production"
DEBUG = False
# Any: the transport tests reach the app at this machine's network address
# too, and name it app.example.
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "social_django",
    "social_amazon_link.django",
    "tests.django_app",
]
# The test app's custom model; SAL_TEST_AUTH_USER_MODEL=auth.User runs a
# process on Django's own (tests/test_django_storage.py does, in a subprocess).
AUTH_USER_MODEL = os.environ.get("SAL_TEST_AUTH_USER_MODEL", "django_app.User")
# Fast hashing: the suites hash many passwords.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

SOCIAL_AUTH_STORAGE = "social_amazon_link.django.storage.DjangoStorage"
SOCIAL_AUTH_JSONFIELD_ENABLED = True

LOGGING_CONFIG = None

# The sample app of the HTTP-level suites (tests/django_app/urls.py), as an
# app on social_django adds Login with Amazon to its settings.
ROOT_URLCONF = "tests.django_app.urls"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tests.django_app.middleware.HeaderSignIn",
    "social_django.middleware.SocialAuthExceptionMiddleware",
    "social_amazon_link.django.middleware.AmazonLinkMiddleware",
]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
AUTHENTICATION_BACKENDS = [
    "social_amazon_link.backend.AmazonOAuth2",
    "django.contrib.auth.backends.ModelBackend",
]
SOCIAL_AUTH_STRATEGY = "social_amazon_link.django.strategy.DjangoStrategy"
SOCIAL_AUTH_AMAZON_PIPELINE = _pipelines.AMAZON_PIPELINE
SOCIAL_AUTH_AMAZON_DISCONNECT_PIPELINE = _pipelines.AMAZON_DISCONNECT_PIPELINE
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/me"
SOCIAL_AUTH_LOGIN_URL = "/login"
LOGIN_URL = "/login"
