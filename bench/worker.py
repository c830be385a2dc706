"""The sample app as a server process of the load test (``waitress --call bench.worker:create``).

Configured from the environment, as :mod:`tests.instance_app` is:
``DATABASE_URL``, ``BENCH_SETTINGS`` (a JSON object of Flask settings) and
``BENCH_SIDE`` (``ours`` or ``stock``; :mod:`bench.stock` reads its own
``BENCH_STOCK_API_URL``), ``BENCH_THREADS`` (waitress's threads: the size
of the database pool) and ``BENCH_FRAMEWORK`` (``flask``, or ``django``: the
side of :mod:`bench.django_apps`, the same settings).
"""

from __future__ import annotations

import json
import os
from typing import Any

from . import stock  # noqa: F401  (aims the stock backend at the proxy, from the environment)
from .apps import build


def create() -> Any:
    if os.environ.get("BENCH_FRAMEWORK") == "django":
        from django.core.wsgi import get_wsgi_application

        from .django_apps import configure

        side = os.environ.get("BENCH_SIDE", "ours")
        configure(os.environ["DATABASE_URL"], json.loads(os.environ["BENCH_SETTINGS"]), side=side)
        return get_wsgi_application()
    bench_app = build(
        os.environ["DATABASE_URL"],
        json.loads(os.environ["BENCH_SETTINGS"]),
        side=os.environ.get("BENCH_SIDE", "ours"),
        pool_size=int(os.environ.get("BENCH_THREADS", "16")),
    )
    return bench_app.app
