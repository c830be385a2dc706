"""One Django side's in-process figures, in a process of its own (Django: once per process).

``python -m bench.django_side`` reads a JSON job on standard input (the
database, the side's settings, the tokens and identities to sign in with, the
counts, the far side's URLs), measures as :func:`bench.__main__._measure_database`
does for Flask (the same functions of :mod:`bench.signins`, through Werkzeug's
test client over Django's WSGI handler) and prints the figures as one JSON
object on standard output.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from social_amazon_link.emulator import LWAEmulator

from .django_apps import DjangoBenchApp, configure, migrate
from .signins import cpu_per_signin, mobile_signins, side_figures, web_signins
from .stock import point_at


@dataclass(frozen=True)
class _TLS:
    ca_bundle: Path


class NetworkView:
    """What :mod:`bench.signins` asks of :class:`bench.network.Network`, from its URLs."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.api_url = urls["api_url"]
        self.direct_url = urls["direct_url"]
        self.control_url = urls["control_url"]
        self.tls = _TLS(Path(urls["ca_bundle"]))
        self.control = LWAEmulator(self.control_url)

    def stats(self) -> tuple[int, int]:
        stats = self.control.stats()
        return int(stats["connections"]), sum(int(n) for n in stats["requests"].values())


def measure(job: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings

    side, plan = job["side"], job["plan"]
    network: Any = NetworkView(job["network"])
    configure(job["database_url"], job["config"], side=side)
    migrate()
    point_at(network.api_url)
    app = DjangoBenchApp(side)
    tokens = job["tokens"]
    try:
        mobile_signins(app, network, tokens, len(tokens), new_user=True)
        mobile = mobile_signins(
            app,
            network,
            tokens,
            plan["mobile"],
            new_user=False,
            warmup=plan["warmup"],
            measure_cpu=True,
        )
        web = web_signins(app, network, job["returning"], plan["web"], warmup=2)
        new_user = mobile_signins(
            app, network, job["fresh_tokens"], plan["new_users"], new_user=True
        )
        # Straight to the emulator for the CPU figure, as the Flask sides'
        # second app does: the settings are read at each call.
        settings.SOCIAL_AUTH_AMAZON_API_URL = network.direct_url
        settings.SOCIAL_AUTH_AMAZON_AUTHORIZATION_URL = f"{network.direct_url}/ap/oa"
        point_at(network.direct_url)
        cpu_hot = cpu_per_signin(app, tokens, job["hot"])
    finally:
        app.close()
        network.control.close()
    return side_figures(mobile, web, new_user, cpu_hot)


def main() -> int:
    job = json.loads(sys.stdin.read())
    print(json.dumps(measure(job)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
