"""docs/django.md's snippets, run: its settings.py and urls.py lines pass ``manage.py check``
and ``migrate`` in a fresh project, and its ``lwa_emulator`` test passes there.

Each runs in a process of its own (a Django project is configured once per
process), on a project made in ``tmp_path`` around the suite's user model
(``tests.django_app``): the page's lines are pasted in as they are written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "django.md"

#: What an app has before it adds Login with Amazon.
BASE_SETTINGS = """\
import os
from social_amazon_link.pipelines import AMAZON_DISCONNECT_PIPELINE, AMAZON_PIPELINE

SECRET_KEY = "docs-test-secret-key"
ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "tests.django_app",
]
AUTH_USER_MODEL = "django_app.User"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "mysite.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATABASE}}
"""

#: The test's own fixtures: the database migrated (what pytest-django's ``db`` does).
CONFTEST = """\
import django
import pytest

django.setup()


@pytest.fixture
def db():
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
"""


def snippet(first_line: str) -> str:
    """The fenced block of docs/django.md that starts with ``first_line``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [block] = [block for block in blocks if block.startswith(first_line)]
    return block


def project(tmp_path: Path, settings: str) -> dict[str, str]:
    """mysite/ in ``tmp_path``: the base settings plus ``settings``, the page's urls.py."""
    package = tmp_path / "mysite"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    database = repr(str(tmp_path / "db.sqlite3"))
    (package / "settings.py").write_text(
        f"DATABASE = {database}\n" + BASE_SETTINGS + "\n" + settings
    )
    (package / "urls.py").write_text(snippet("# urls.py: Login with Amazon"))
    ignored = ("DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
        "PYTHONPATH": f"{tmp_path}:{REPO}",
        # The page reads the secret from the environment, as an app should.
        "AMAZON_CLIENT_SECRET": "docs-test-client-secret",
    }


def django_admin(
    tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "django", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_the_settings_and_urls_lines_pass_manage_py_check_and_migrate(tmp_path):
    env = project(tmp_path, snippet("# settings.py: Login with Amazon"))
    checked = django_admin(tmp_path, env, "check", "--fail-level", "WARNING")
    assert (checked.returncode, checked.stdout.strip()) == (
        0,
        "System check identified no issues (0 silenced).",
    ), checked.stderr
    migrated = django_admin(tmp_path, env, "migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    tables = django_admin(
        tmp_path,
        env,
        "shell",
        "-c",
        "from django.db import connection; print(*sorted(connection.introspection.table_names()))",
    )
    assert {"social_auth_usersocialauth", "social_auth_partial", "users"} <= set(
        tables.stdout.split()
    ), tables.stderr


def test_without_the_backend_line_manage_py_check_says_so(tmp_path):
    settings = snippet("# settings.py: Login with Amazon")
    without = re.sub(r"AUTHENTICATION_BACKENDS = \[.*?\]\n", "", settings, flags=re.S)
    assert without != settings
    checked = django_admin(tmp_path, project(tmp_path, without), "check")
    assert checked.returncode == 1
    assert "social_amazon_link.E001" in checked.stderr


def test_the_lwa_emulator_example_passes(tmp_path):
    env = project(tmp_path, snippet("# settings.py: Login with Amazon"))
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_example.py").write_text(snippet("from django.test import"))
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout
