"""``python -m demo``: the demo on 127.0.0.1:5000 and the LWA emulator on 127.0.0.1:5001.

Each run starts on a fresh database (``instance/demo.sqlite3``, made anew and
seeded), so every path of the README's table works in any order, after any
earlier run; with ``DATABASE_URL`` set, that database is kept and the seed adds
only what is missing.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from werkzeug.serving import make_server

from social_amazon_link.emulator import EmulatorServer, serve
from social_amazon_link.emulator import create_app as create_emulator

from . import DEFAULT_DATABASE, amazon_settings, create_app, demo_client, mobile_client
from .seed import AMAZON_IDENTITIES, seed

#: Hosts a browser on this machine reaches the demo by: both names of loopback.
LOOPBACK = ("127.0.0.1", "localhost")
PROG = "python -m demo"


class CannotServe(Exception):
    """A one-line reason the demo cannot start, for the person who ran it."""


def redirect_uris(host: str, port: int) -> list[str]:
    """The demo's callback URLs to register with the emulator.

    The callback is built from the host the browser used, so a demo served on
    loopback (or on every address) registers it under both names: a newcomer
    opening ``http://localhost:5000/`` must get as far as one opening
    ``http://127.0.0.1:5000/``.
    """
    hosts = dict.fromkeys([host, *LOOPBACK]) if _reached_by_loopback(host) else [host]
    return [f"http://{_bracketed(name)}:{port}/complete/amazon/" for name in hosts]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _reached_by_loopback(host: str) -> bool:
    """Whether a browser here reaches a server bound to ``host`` through loopback."""
    if host in LOOPBACK:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name
    return address.is_loopback or address.is_unspecified


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0 to 65535; 0: any free one)")
    return port


def _cannot_listen(what: str, host: str, port: int, error: OSError) -> CannotServe:
    if error.errno == errno.EADDRINUSE:
        return CannotServe(
            f"{what} port {port} on {host} is already in use (another demo still running?): "
            "stop that program, or pick free ports, e.g. "
            "make demo PORT=5050 EMULATOR_PORT=5051 (python -m demo --port 5050 "
            "--emulator-port 5051)"
        )
    reason = error.strerror or str(error)
    return CannotServe(f"{what} cannot listen on {host}:{port}: {reason}")


def _listen(host: str, port: int) -> socket.socket:
    """The demo's listening socket, bound before anything prints that it serves."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise _cannot_listen("the demo's", host, port, exc) from None


def _start_emulator(host: str, port: int, demo_port: int) -> EmulatorServer:
    app = create_emulator(
        identities=AMAZON_IDENTITIES,
        clients=[demo_client(redirect_uris(host, demo_port)), mobile_client()],
    )
    try:
        return serve(app, host=host, port=port)
    except OSError as exc:
        raise _cannot_listen("the LWA emulator's", host, port, exc) from None


def fresh_database() -> str:
    """Make the run's database fresh, unless ``DATABASE_URL`` names one; says which."""
    url = os.environ.get("DATABASE_URL")
    if url:
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            raise CannotServe("DATABASE_URL is not a database URL (see the README)") from None
        return (
            f"Database: {shown} (DATABASE_URL), kept between runs: the seed adds only "
            "the accounts and links that are missing"
        )
    for suffix in ("", "-journal", "-wal", "-shm"):
        DEFAULT_DATABASE.with_name(DEFAULT_DATABASE.name + suffix).unlink(missing_ok=True)
    return f"Database: {DEFAULT_DATABASE}, made anew for this run (DATABASE_URL keeps one)"


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C


def run(host: str, port: int, emulator_port: int) -> None:
    """Bind both ports, build and seed the demo, then say where it serves and serve."""
    demo_mode = amazon_settings()["DEMO_MODE"]
    listener = _listen(host, port)
    port = listener.getsockname()[1]  # the one picked, for --port 0
    emulator = None
    try:
        if demo_mode:
            emulator = _start_emulator(host, emulator_port, port)
            # The emulator just started, whatever a shell left in the variable.
            os.environ["LWA_EMULATOR_URL"] = emulator.url
        database = fresh_database()
        try:
            app = create_app()
            # Real Amazon: no local accounts with the passwords the README
            # publishes, and no links to identities only the emulator has.
            if demo_mode:
                seed(app)
        except OperationalError as exc:
            reason = str(exc.orig or exc).splitlines()[0]
            raise CannotServe(f"cannot open the database: {reason}") from None
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())
        if emulator is not None:
            print(f"LWA emulator on {emulator.url}", flush=True)
        print(database, flush=True)
        print(f"Demo on http://{_bracketed(host)}:{port}  (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        listener.close()  # werkzeug serves on its own duplicate
        if emulator is not None:
            emulator.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=_port, default=5000, help="the demo's port, 0: any (default %(default)s)"
    )
    parser.add_argument(
        "--emulator-port",
        type=_port,
        default=5001,
        help="the LWA emulator's port, 0: any (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.port == args.emulator_port != 0:
        parser.error("--port and --emulator-port must differ")
    signal.signal(signal.SIGTERM, _stop)
    try:
        run(args.host, args.port, args.emulator_port)
    except CannotServe as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130  # stopped while starting: nothing to say
    return 0


if __name__ == "__main__":
    sys.exit(main())
