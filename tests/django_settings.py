"""The Django settings of the test suite (``DJANGO_SETTINGS_MODULE=tests.django_settings``).

Minimal: the apps the Django integration needs and the test app holding the
custom user model on the ``users`` table. ``DATABASES["default"]`` is a
placeholder: :mod:`tests.django_support` points it at each test's own fresh
database (``database_url``) before the test runs.
"""

from __future__ import annotations

import os

SECRET_KEY = "django-tests-secret-not-for-production"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]
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
