"""``python -m social_amazon_link.emulator``: serve the LWA emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from .app import create_app
from .server import serve
from .state import InvalidInput, parse_client, parse_identity


class _ClientAction(argparse.Action):
    """``--client ID:SECRET[:REDIRECT_URI] [NAME]``: appends :func:`_client`'s dict."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if len(values) > 2:
            parser.error(f"{option_string}: expected ID:SECRET[:REDIRECT_URI] [NAME]")
        try:
            client = _client(*values)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{option_string}: {exc}")
        getattr(namespace, self.dest).append(client)


def _client(value: str, name: str | None = None) -> dict[str, Any]:
    """``ID:SECRET[:REDIRECT_URI]`` (the URI keeps its own colons), and the app's name.

    An empty SECRET (``ID::amzn://com.example.app``) registers a public client.
    """
    parts = value.split(":", 2)
    if len(parts) < 2:
        raise argparse.ArgumentTypeError("expected ID:SECRET[:REDIRECT_URI]")
    data: dict[str, Any] = {"client_id": parts[0]}
    if parts[1]:
        data["client_secret"] = parts[1]
    else:
        data["public"] = True
    if len(parts) == 3:
        data["redirect_uris"] = [parts[2]]
    if name is not None:
        data["name"] = name
    try:
        parse_client(data)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return data


def _identity(value: str) -> dict[str, Any]:
    """``USER_ID:NAME:EMAIL[:POSTAL_CODE]``."""
    parts = value.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError("expected USER_ID:NAME:EMAIL[:POSTAL_CODE]")
    data = dict(zip(("user_id", "name", "email", "postal_code"), parts, strict=False))
    try:
        parse_identity(data)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return data


def _merge_clients(clients: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    # Repeating --client for one id adds redirect URIs; the last secret (and name) wins.
    merged: dict[str, dict[str, Any]] = {}
    for client in clients:
        entry = merged.setdefault(client["client_id"], {"client_id": client["client_id"]})
        for key in ("client_secret", "public"):
            entry.pop(key, None)
            if key in client:
                entry[key] = client[key]
        if "name" in client:
            entry["name"] = client["name"]
        if "redirect_uris" in client:
            entry.setdefault("redirect_uris", []).extend(client["redirect_uris"])
    return list(merged.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m social_amazon_link.emulator",
        description="Serve an emulator of Amazon's Login with Amazon endpoints.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=5001, help="port to bind, 0 for any (default %(default)s)"
    )
    parser.add_argument(
        "--client",
        action=_ClientAction,
        nargs="+",
        default=[],
        metavar=("ID:SECRET[:REDIRECT_URI]", "NAME"),
        help="register an LWA app, NAME shown on the consent page; an empty SECRET: a public"
        " client (repeat to add redirect URIs or apps)",
    )
    parser.add_argument(
        "--identity",
        type=_identity,
        action="append",
        default=[],
        metavar="USER_ID:NAME:EMAIL[:POSTAL_CODE]",
        help="add an Amazon account to sign in as (repeatable)",
    )
    args = parser.parse_args(argv)

    app = create_app(identities=args.identity, clients=_merge_clients(args.client))
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        server = serve(app, args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"LWA emulator listening on {server.url}", flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
