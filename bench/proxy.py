"""A TCP proxy that makes loopback as far away as Amazon.

Every byte is held for half the round trip in each direction, and nothing
crosses a new connection before one round trip has passed since it was
accepted (the SYN, SYN-ACK exchange that loopback skips). Bytes are never
merged or reordered and a direction's chunks overlap in flight, so a TLS
handshake, a request and a pipelined answer each take the round trips they
take over a real link. Every socket has ``TCP_NODELAY``.

Threads, not an event loop: ``time.sleep`` wakes within about a tenth of a
millisecond of the time asked for, where an asyncio loop wakes on epoll's
one-millisecond grid (a systematic half millisecond per hop at 30 ms).

``python -m bench.proxy --upstream 127.0.0.1:PORT --rtt-ms 30`` serves until
its standard input closes (the bench's end, or its death) or SIGTERM. It
prints one JSON line: the proxy's port, and the port of a second proxy in
front of a TCP echo server, which the bench uses to measure the round trip
the proxy really produces.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence

from .lifetime import stop_event

__all__ = ["DelayProxy", "main"]

CHUNK = 256 * 1024
#: ``time.sleep`` overshoots by roughly this much on Linux; aim that early.
WAKE_ALLOWANCE = 0.00006


def _listener() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0), backlog=512)
    return sock


def _nodelay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _spawn(target: Callable[..., object], *args: object) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


class _Direction:
    """One direction of one connection: a reader stamps chunks, a writer delivers them."""

    def __init__(self, source: socket.socket, sink: socket.socket, ready: float, half: float):
        self.source, self.sink = source, sink
        self.ready, self.half = ready, half
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.arrived = threading.Condition()
        self.done = threading.Event()

    def start(self) -> None:
        _spawn(self._read)
        _spawn(self._write)

    def _read(self) -> None:
        while True:
            try:
                data = self.source.recv(CHUNK)
            except OSError:
                data = b""
            due = max(time.monotonic(), self.ready) + self.half
            with self.arrived:
                self.queue.append((due, data))
                self.arrived.notify()
            if not data or self.done.is_set():
                return

    def _write(self) -> None:
        try:
            while True:
                with self.arrived:
                    while not self.queue:
                        self.arrived.wait()
                    due, data = self.queue.popleft()
                wait = due - time.monotonic() - WAKE_ALLOWANCE
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    # The sender closed its side: pass the half-close on.
                    with contextlib.suppress(OSError):
                        self.sink.shutdown(socket.SHUT_WR)
                    return
                self.sink.sendall(data)
        except OSError:
            # The receiver is gone: stop reading what nobody will get.
            with contextlib.suppress(OSError):
                self.source.shutdown(socket.SHUT_RD)
        finally:
            self.done.set()


class DelayProxy:
    """Forwards connections to ``upstream``, adding ``rtt`` seconds of round trip."""

    def __init__(self, upstream: tuple[str, int], rtt: float) -> None:
        self.upstream = upstream
        self.rtt = rtt
        self.listener = _listener()
        self.port: int = self.listener.getsockname()[1]

    def serve_forever(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            # The connection set-up: over a real link the client's first
            # byte leaves one round trip after its SYN.
            ready = time.monotonic() + self.rtt
            _spawn(self._connect, client, ready)

    def _connect(self, client: socket.socket, ready: float) -> None:
        _nodelay(client)
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        _nodelay(upstream)
        half = self.rtt / 2
        there = _Direction(client, upstream, ready, half)
        back = _Direction(upstream, client, ready, half)
        there.start()
        back.start()
        there.done.wait()
        back.done.wait()
        client.close()
        upstream.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def _echo_server() -> socket.socket:
    listener = _listener()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            _spawn(echo, conn)

    def echo(conn: socket.socket) -> None:
        _nodelay(conn)
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(CHUNK):
                conn.sendall(data)

    _spawn(serve)
    return listener


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy")
    parser.add_argument("--upstream", type=_host_port, required=True, metavar="HOST:PORT")
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    args = parser.parse_args(argv)
    # Many threads, each doing a few microseconds of Python between syscalls:
    # a short switch interval keeps a woken writer from waiting for the GIL.
    sys.setswitchinterval(0.0002)

    rtt = args.rtt_ms / 1000
    proxy = DelayProxy(args.upstream, rtt)
    echo = _echo_server()
    calibration = DelayProxy(echo.getsockname()[:2], rtt)
    for server in (proxy, calibration):
        _spawn(server.serve_forever)

    stop = stop_event()
    print(json.dumps({"port": proxy.port, "calibration_port": calibration.port}), flush=True)
    stop.wait()
    proxy.close()
    calibration.close()
    echo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
