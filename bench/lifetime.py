"""How the bench's child processes know when to stop."""

from __future__ import annotations

import signal
import sys
import threading

__all__ = ["stop_event"]


def stop_event() -> threading.Event:
    """An event set on SIGTERM, SIGINT, or when standard input closes.

    The bench holds each child's standard input open and never writes to it:
    it closes when the bench ends, and also when the bench dies, so no child
    outlives a crashed run.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    return stop
