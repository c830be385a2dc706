"""The Django demo as a WSGI app, its database migrated (and, in demo mode, seeded)."""

from __future__ import annotations

import os

from django.core.handlers.wsgi import WSGIHandler

SETTINGS = "demo.django_project.settings"


def create_wsgi_app(*, seed_demo: bool) -> WSGIHandler:
    """What ``python -m demo --framework django`` serves (settings read from the environment)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    import django
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    django.setup()
    call_command("migrate", verbosity=0)
    if seed_demo:
        from .seed import seed

        seed()
    return get_wsgi_application()
