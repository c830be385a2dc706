"""Serving the emulator over real HTTP/1.1 with kept-alive connections.

werkzeug's development server answers every request with ``Connection: close``,
which would hide whether the code under test reuses its connections. The
handler here keeps werkzeug's request parsing and WSGI environ but writes each
answer with a ``Content-Length`` and keeps the connection open, counts
connections for ``/_emulator/stats``, sets ``TCP_NODELAY`` (no Nagle /
delayed-ACK stalls between a header and a body write), and never writes an
access log: the tokeninfo URL carries the access token.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

from .app import create_app, state_of

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["EmulatorServer", "serve"]

log = logging.getLogger(__name__)

#: An idle kept-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 120


class _Handler(WSGIRequestHandler):
    """werkzeug's request handler, with keep-alive, connection counting and no access log."""

    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._counted = False
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.forget(self.connection)

    def _count_connection(self) -> None:
        # Counted on its first LWA request, so a test's own control calls
        # (add_identity, stats...) do not show up as the app's connections.
        if not self._counted and not urlsplit(self.path).path.startswith("/_emulator/"):
            self._counted = True
            self.server.on_connection()

    def run_wsgi(self) -> None:
        self._count_connection()
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        body: LimitedStream | None = None
        if environ.get("wsgi.input_terminated"):
            # A chunked upload: finding its end to reuse the connection is not
            # worth it for an emulator; answer, then close.
            self.close_connection = True
        else:
            try:
                length = max(0, int(environ.get("CONTENT_LENGTH") or 0))
            except ValueError:
                length = 0
                self.close_connection = True
            body = LimitedStream(cast(IO[bytes], self.rfile), length)
            environ["wsgi.input"] = body

        status = "500 Internal Server Error"
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        def start_response(
            new_status: str, new_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            # Nothing is sent before the app returns, so a late error may
            # always replace the status and headers.
            nonlocal status, headers
            status, headers = new_status, list(new_headers)
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except (ConnectionError, TimeoutError):
            # The app dropped the connection (a fault) or the client left.
            self.close_connection = True
            return
        except Exception:
            log.exception("LWA emulator: unhandled error")
            status, headers = "500 Internal Server Error", [("Content-Type", "text/plain")]
            chunks = [b"Internal Server Error"]
            self.close_connection = True

        # Read what the app left unread of the request body, so that the next
        # request on this connection starts at its request line.
        if body is not None and not self.close_connection:
            body.exhaust()
        self._send(status, headers, b"".join(chunks))

    def _send(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        self.send_response(code, reason or None)
        names = set()
        for name, value in headers:
            self.send_header(name, value)
            names.add(name.lower())
        # Without a length the client could only find the end by the close.
        if "content-length" not in names and code >= 200 and code not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log: request lines carry tokens (tokeninfo's query string)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: http.server's messages quote request lines."""

    def log_error(self, format: str, *args: Any) -> None:
        # The arguments may quote a request line (and so a token): not logged.
        log.debug("LWA emulator: rejected a malformed or timed-out request")


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server, knowing its open connections so shutdown can close them."""

    def __init__(self, host: str, fd: int, app: Flask, on_connection: Callable[[], None]) -> None:
        super().__init__(host, 0, app, handler=_Handler, fd=fd)
        self.on_connection = on_connection
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.add(connection)

    def forget(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(connection)

    def close_connections(self) -> None:
        """Hang up on every client: idle kept-alive connections would outlive the server."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _listen(host: str, port: int) -> socket.socket:
    # Binding here (not in werkzeug) turns a busy port into an OSError for the
    # caller; werkzeug would print a message and exit the process.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


class EmulatorServer:
    """The emulator served over loopback HTTP from a background thread."""

    def __init__(self, app: Flask | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app: Flask = app if app is not None else create_app()
        listener = _listen(host, port)
        try:
            self._server = _Server(
                host, listener.fileno(), self.app, state_of(self.app).count_connection
            )
        finally:
            # werkzeug works on its own duplicate of the socket.
            listener.close()
        self.host = host
        self.port: int = self._server.port
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        """Base URL to reach the emulator, e.g. ``http://127.0.0.1:5001``."""
        host = self._reachable_host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def _reachable_host(self) -> str:
        try:
            if ipaddress.ip_address(self.host).is_unspecified:
                # Bound to every address: loopback is one of them.
                return "::1" if ":" in self.host else "127.0.0.1"
        except ValueError:
            pass  # a host name
        return self.host

    def start(self) -> EmulatorServer:
        """Serve in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                name=f"lwa-emulator:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving, close the listening socket and every open connection."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            # socketserver's shutdown() waits until serve_forever's next poll
            # notices (it would wait forever if serving never started); a
            # connection to ourselves wakes that poll at once instead.
            stopper = threading.Thread(target=self._server.shutdown, daemon=True)
            stopper.start()
            while stopper.is_alive():
                self._wake()
                stopper.join(0.01)
            self._thread.join()
        self._server.server_close()
        self._server.close_connections()

    def _wake(self) -> None:
        try:
            socket.create_connection((self._reachable_host, self.port), timeout=1).close()
        except OSError:
            pass  # already closed: nothing left to wake

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()


def serve(app: Flask | None = None, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
    """Start serving ``app`` (a fresh :func:`create_app` when ``None``) on ``host:port``.

    ``port=0`` picks a free port; read it back from ``.port`` or ``.url``.
    """
    return EmulatorServer(app, host, port).start()
