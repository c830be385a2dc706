"""The sample app as one of several server processes (``waitress-serve --call``).

Configured from the environment, as a deployment would be: ``DATABASE_URL``
and ``SAL_TEST_SETTINGS`` (a JSON object of Flask settings, the secret key
among them).
"""

from __future__ import annotations

import json
import os

from flask import Flask

from tests.sample_app import create_app


def create() -> Flask:
    return create_app(os.environ["DATABASE_URL"], json.loads(os.environ["SAL_TEST_SETTINGS"]))
