"""``python -m demo``: the demo on 127.0.0.1:5000 and the LWA emulator on 127.0.0.1:5001."""

from __future__ import annotations

import argparse
import ipaddress
import os

from social_amazon_link.emulator import create_app as create_emulator
from social_amazon_link.emulator import serve

from . import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, amazon_settings, create_app
from .seed import AMAZON_IDENTITIES, seed

#: Hosts a browser on this machine reaches the demo by: both names of loopback.
LOOPBACK = ("127.0.0.1", "localhost")


def redirect_uris(host: str, port: int) -> list[str]:
    """The demo's callback URLs to register with the emulator.

    The callback is built from the host the browser used, so a demo served on
    loopback (or on every address) registers it under both names: a newcomer
    opening ``http://localhost:5000/`` must get as far as one opening
    ``http://127.0.0.1:5000/``.
    """
    hosts = dict.fromkeys([host, *LOOPBACK]) if _reached_by_loopback(host) else [host]
    return [
        f"http://{f'[{name}]' if ':' in name else name}:{port}/complete/amazon/" for name in hosts
    ]


def _reached_by_loopback(host: str) -> bool:
    """Whether a browser here reaches a server bound to ``host`` through loopback."""
    if host in LOOPBACK:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name
    return address.is_loopback or address.is_unspecified


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--emulator-port", type=int, default=5001)
    args = parser.parse_args()

    demo_mode = amazon_settings()["DEMO_MODE"]
    emulator = None
    if demo_mode:
        emulator_app = create_emulator(
            identities=AMAZON_IDENTITIES,
            clients=[
                {
                    "client_id": DEMO_CLIENT_ID,
                    "client_secret": DEMO_CLIENT_SECRET,
                    "redirect_uris": redirect_uris(args.host, args.port),
                }
            ],
        )
        emulator = serve(emulator_app, host=args.host, port=args.emulator_port)
        # The emulator just started, whatever a shell left in the variable.
        os.environ["LWA_EMULATOR_URL"] = emulator.url
        print(f"LWA emulator on {emulator.url}", flush=True)

    app = create_app()
    # Real Amazon: no local accounts with the passwords the README publishes,
    # and no links to identities that exist only in the emulator.
    if demo_mode:
        seed(app)
    print(f"Demo on http://{args.host}:{args.port}  (Ctrl-C to stop)", flush=True)
    try:
        app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    finally:
        if emulator is not None:
            emulator.shutdown()


if __name__ == "__main__":
    main()
