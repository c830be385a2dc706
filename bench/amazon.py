"""The stand-in for Amazon: the LWA emulator over HTTPS, in a process of its own.

``python -m bench.amazon --cert CHAIN.pem`` serves one emulator app on two
loopback listeners and prints their addresses as one JSON line:

- ``api_port``: HTTPS with the throwaway CA's certificate. The delay proxy
  forwards to it; everything the code under test sends to "Amazon" lands here.
- ``control_url``: plain HTTP, straight to the same app, for the bench's own
  calls (``/_emulator/...``: identities, tokens, stats) and for the consent
  page a browser would see (not part of any figure).

Both listeners are the emulator's own keep-alive server, so ``/_emulator/stats``
counts the connections the code under test opens. Its own process keeps its
CPU out of the server CPU figure. It serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
from collections.abc import Sequence

from social_amazon_link.emulator import EmulatorServer, create_app

from .lifetime import stop_event

__all__ = ["main", "serve_https"]


def serve_https(server: EmulatorServer, chain: str) -> None:
    """Make ``server`` speak TLS, before it starts.

    The listening socket is wrapped without a handshake on accept: OpenSSL
    then runs the handshake on the connection's first read, in the thread
    that serves that connection, not in the accept loop (one slow handshake
    would hold every other new connection back).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    inner = server._server  # the emulator's werkzeug server
    inner.socket = context.wrap_socket(
        inner.socket, server_side=True, do_handshake_on_connect=False
    )
    # werkzeug reads this to call the scheme https and to log TLS errors
    # quietly instead of raising them out of the handler thread.
    inner.ssl_context = context


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.amazon")
    parser.add_argument("--cert", required=True, help="PEM: private key and certificate chain")
    args = parser.parse_args(argv)

    app = create_app()
    control = EmulatorServer(app)
    api = EmulatorServer(app)
    serve_https(api, args.cert)
    control.start()
    api.start()

    stop = stop_event()
    print(json.dumps({"control_url": control.url, "api_port": api.port}), flush=True)
    try:
        stop.wait()
    finally:
        api.shutdown()
        control.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
