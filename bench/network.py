"""The far side of the bench: emulator and delay proxy, each in a child process.

:class:`Network` starts both, knows the URLs the code under test must use
(the proxy's, over HTTPS) and the one the bench itself uses (the emulator's
plain control listener), and stops them. The children also stop by
themselves when this process dies: each watches its standard input.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from social_amazon_link.emulator import LWAEmulator

from .tls import TLSFiles

__all__ = ["Child", "Network"]

REPO = Path(__file__).resolve().parents[1]


class Child:
    """A ``python -m`` child that prints one JSON line once it is ready."""

    def __init__(self, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.module = module
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, our own arguments)
            [sys.executable, "-m", module, *args],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            error = self.process.stderr.read().decode() if self.process.stderr else ""
            raise RuntimeError(f"{module} did not start:\n{error}")
        self.info: dict[str, Any] = json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class Network:
    """The emulator (HTTPS) behind the delay proxy."""

    def __init__(self, tls: TLSFiles, rtt_ms: float) -> None:
        self.tls = tls
        self.rtt_ms = rtt_ms
        self.amazon = Child("bench.amazon", "--cert", str(tls.server_chain))
        try:
            self.proxy = Child(
                "bench.proxy",
                "--upstream",
                f"127.0.0.1:{self.amazon.info['api_port']}",
                "--rtt-ms",
                str(rtt_ms),
            )
        except BaseException:
            self.amazon.stop()
            raise
        self.control = LWAEmulator(self.amazon.info["control_url"])

    #: What the code under test calls "Amazon": the proxy, over HTTPS.
    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.proxy.info['port']}"

    @property
    def direct_url(self) -> str:
        """The emulator's HTTPS listener without the proxy (CPU measurements: no waiting)."""
        return f"https://127.0.0.1:{self.amazon.info['api_port']}"

    @property
    def authorization_url(self) -> str:
        return f"{self.api_url}/ap/oa"

    @property
    def control_url(self) -> str:
        """The emulator without the proxy (the bench's own calls, the consent page)."""
        return str(self.amazon.info["control_url"])

    def stats(self) -> tuple[int, int]:
        """(connections opened to "Amazon", requests to its LWA endpoints) so far."""
        stats = self.control.stats()
        return int(stats["connections"]), sum(int(n) for n in stats["requests"].values())

    def calibrate(self, samples: int = 20) -> dict[str, float]:
        """The round trip and connection set-up the proxy really adds (a TCP echo behind it)."""
        port = int(self.proxy.info["calibration_port"])
        setups, trips = [], []
        for _ in range(samples):
            start = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(b"x")
                sock.recv(1)
                setups.append(time.perf_counter() - start)
                for _ in range(3):
                    sent = time.perf_counter()
                    sock.sendall(b"y")
                    sock.recv(1)
                    trips.append(time.perf_counter() - sent)
        return {
            "rtt_ms": statistics.median(trips) * 1000,
            # The first byte of a new connection: set-up plus one round trip.
            "first_byte_ms": statistics.median(setups) * 1000,
        }

    def close(self) -> None:
        self.control.close()
        self.proxy.stop()
        self.amazon.stop()

    def __enter__(self) -> Network:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
