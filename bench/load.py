"""Sign-ins per second: the sample app in worker processes, many clients at once.

Each worker is ``waitress`` serving :func:`bench.worker.create` on its own
port (waitress has no pre-fork mode; two ports, the clients split between
them, is what a load balancer in front of two processes sees). The clients
are one asyncio loop in this process speaking HTTP/1.1 on kept-alive
connections, as cheap per request as a client can be, so that the two cores
go to the server side. Every client signs returning users in, over and over.

While the load runs, the CPU time of every process involved is read from
``/proc``: where the machine's cores went is most of the story of a
throughput figure. The database server's processes (PostgreSQL's postmaster
and its children) are a group of their own; every other process on the
machine is counted too, as "other processes", so that a phase measured
while something else was running shows as such (``machine_busy``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from sqlalchemy import NullPool, create_engine, text

from .network import REPO, Network
from .signins import percentile

__all__ = ["BUSY_CORES", "LoadResult", "database_server_pid", "run_floor_load", "run_load"]

_TICKS = os.sysconf("SC_CLK_TCK")
#: A phase during which the machine's other processes kept more than this
#: share of a core busy is marked ``machine_busy``: its figures are suspect.
BUSY_CORES = 0.1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _machine_busy_seconds() -> float:
    """CPU seconds every core spent not idle so far (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already counted in user: the first eight fields are the total.
    return (sum(fields[:8]) - idle) / _TICKS


@dataclass(frozen=True)
class _Process:
    parent: int
    #: Clock ticks since boot when it started: a pid and this name one process.
    started: int
    #: User + system ticks of the process itself.
    own: int
    #: Those of its children that ended and were waited for.
    children: int


def _process(pid: int) -> _Process | None:
    """One process now, from ``/proc/PID/stat``; None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # ended meanwhile, or never was
    # After the name, which is in parentheses and may hold anything.
    fields = stat.rsplit(")", 1)[1].split()
    return _Process(
        parent=int(fields[1]),
        started=int(fields[19]),
        own=int(fields[11]) + int(fields[12]),
        children=int(fields[13]) + int(fields[14]),
    )


def _processes() -> dict[int, _Process]:
    """Every process on the machine now."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (process := _process(int(entry.name))) is not None:
            found[int(entry.name)] = process
    return found


def database_server_pid(postgres_url: str) -> int | None:
    """The pid of the PostgreSQL server's postmaster, if it runs on this machine.

    A backend's parent is the postmaster: ask the server which backend
    serves us and read that one's parent from ``/proc``. None when the
    server is elsewhere (``TEST_POSTGRES_URL`` naming another host).
    """
    engine = create_engine(postgres_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            backend = _process(int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()))
    finally:
        engine.dispose()
    if backend is None:
        return None
    name = Path(f"/proc/{backend.parent}/comm")
    found = name.exists() and name.read_text().strip() in ("postgres", "postmaster")
    return backend.parent if found else None


def _tree(processes: dict[int, _Process], root: int) -> set[int]:
    """``root`` and all its descendants among ``processes``."""
    children: dict[int, list[int]] = {}
    for pid, process in processes.items():
        children.setdefault(process.parent, []).append(pid)
    found, todo = set(), [root] if root in processes else []
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def _groups_cpu(
    processes: dict[int, _Process], groups: dict[str, Sequence[int]], trees: dict[str, int]
) -> tuple[dict[str, float], set[tuple[int, int]]]:
    """CPU seconds so far of each group, and the (pid, start) of every process counted.

    A group in ``groups`` is its processes' own CPU; one in ``trees`` is its
    root's whole process tree, children that already ended included (so a
    PostgreSQL backend that exits inside the window is still counted).
    """
    cpu: dict[str, float] = {}
    counted: set[tuple[int, int]] = set()
    for name, pids in groups.items():
        cpu[name] = sum(processes[pid].own for pid in pids if pid in processes) / _TICKS
        counted.update((pid, processes[pid].started) for pid in pids if pid in processes)
    for name, root in trees.items():
        members = _tree(processes, root)
        cpu[name] = sum(processes[p].own + processes[p].children for p in members) / _TICKS
        counted.update((pid, processes[pid].started) for pid in members)
    return cpu, counted


def _others_cpu(
    before: dict[int, _Process], after: dict[int, _Process], ours: set[tuple[int, int]]
) -> float:
    """CPU seconds every other process used between two readings.

    Each process is compared with itself (a pid and its start time): what it
    used since the first reading, or all it used when it started in between.
    A process that ended in between is found in its parent's count of
    children that were waited for, whole: what it had used before the first
    reading is taken off again. One that no other process counts (its
    parent is ours, or not to be seen from here) adds nothing: its last
    moments are left to "kernel and unattributed" (subtracting the two
    readings' sums would take its whole life's CPU off the others instead).
    """
    first = {(pid, process.started): process for pid, process in before.items()}
    second = {(pid, process.started) for pid, process in after.items()}
    ticks = 0
    for pid, process in after.items():
        key = (pid, process.started)
        if key in ours:
            continue
        earlier = first.get(key)
        ticks += process.own + process.children
        if earlier is not None:
            ticks -= earlier.own + earlier.children
    for key, process in first.items():
        if key in second or key in ours:
            continue
        parent = after.get(process.parent)
        if parent is not None and (process.parent, parent.started) not in ours:
            ticks -= process.own + process.children
    return ticks / _TICKS


@dataclass(frozen=True)
class _Reading:
    """What a load window's start or end found: CPU by group, and the processes."""

    cpu: dict[str, float]
    processes: dict[int, _Process]
    #: The (pid, start) of every process in a group of ``cpu``.
    ours: set[tuple[int, int]]
    connections: int
    amazon_calls: int


@dataclass
class LoadResult:
    side: str
    workers: int
    clients: int
    seconds: float
    signins: int
    errors: int
    latencies_ms: list[float]
    amazon_calls: int
    connections: int
    #: CPU seconds per process group over the measured window.
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.signins / self.seconds if self.seconds else 0.0

    @property
    def other_cores(self) -> float:
        """Cores the machine's other processes kept busy, on average, over the window."""
        return self.cpu.get("other processes", 0.0) / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        per = max(1, self.signins)
        busy = {name: s / self.seconds for name, s in self.cpu.items()} if self.seconds else {}
        known = sum(v for name, v in busy.items() if name != "whole machine")
        if busy:
            # Kernel work no process is charged for (interrupts, softirqs:
            # loopback TCP mostly), and processes that ended in the window
            # with no parent left to count them.
            busy["kernel and unattributed"] = max(0.0, busy["whole machine"] - known)
        return {
            "workers": self.workers,
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "signins": self.signins,
            "errors": self.errors,
            "signins_per_s": self.rate,
            "p50_ms": percentile(self.latencies_ms, 50) if self.latencies_ms else None,
            "p99_ms": percentile(self.latencies_ms, 99) if self.latencies_ms else None,
            "amazon_calls": self.amazon_calls / per,
            "new_connections": self.connections / per,
            "cpu_ms_per_signin": {name: s * 1000 / per for name, s in self.cpu.items()},
            "cpu_cores_busy": busy,
            "machine_busy": self.other_cores > BUSY_CORES,
        }


class _Workers:
    def __init__(
        self,
        side: str,
        database_url: str,
        config: dict[str, Any],
        network: Network,
        count: int,
        threads: int,
        logdir: Path,
        framework: str = "flask",
    ) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": database_url,
            "BENCH_SETTINGS": json.dumps(config),
            "BENCH_SIDE": side,
            "BENCH_STOCK_API_URL": network.api_url,
            "BENCH_THREADS": str(threads),
            "BENCH_FRAMEWORK": framework,
        }
        self.ports = [_free_port() for _ in range(count)]
        self.logs = [logdir / f"worker-{framework}-{side}-{port}.log" for port in self.ports]
        self.processes = []
        for port, log in zip(self.ports, self.logs, strict=True):
            with log.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(  # noqa: S603 (this interpreter, our own arguments)
                        [
                            sys.executable,
                            "-m",
                            "waitress",
                            f"--listen=127.0.0.1:{port}",
                            f"--threads={threads}",
                            "--call",
                            "bench.worker:create",
                        ],
                        cwd=REPO,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )

    def wait_until_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for port, process, log in zip(self.ports, self.processes, self.logs, strict=True):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"worker on {port} exited:\n{log.read_text()[-2000:]}")
                try:
                    requests.get(f"http://127.0.0.1:{port}/me", timeout=1)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"worker on {port} did not start") from None
                    time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _request(side: str, port: int, token: str, *, path: str | None = None) -> bytes:
    """A sign-in request with ``token`` (or the same body posted to ``path``)."""
    if side == "ours":
        target, kind = "/api/amazon/token", "application/json"
        body = json.dumps({"access_token": token}).encode()
    else:
        target, kind = "/client-token", "application/x-www-form-urlencoded"
        body = f"access_token={quote(token, safe='')}".encode()
    head = (
        f"POST {path or target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


#: One finished request: (sent at, answered at, succeeded), loop time.
_Done = tuple[float, float, bool]


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, bool, bytes]:
    """(status code, whether the server closes the connection, body) of one answer."""
    status = await reader.readline()
    length, close = 0, not status
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    body = await reader.readexactly(length) if length else b""
    parts = status.split()
    return (parts[1] if len(parts) > 1 else b""), close, body


def _succeeded(side: str, path: str | None, status: bytes, body: bytes) -> bool:
    """Whether an answer is what it should be: a sign-in, or the trivial endpoint's ``ok``.

    A 200 is not enough: ours answers 200 with ``password_required`` (and the
    other prompts) too. Ours signs in with ``{"status": "authenticated"}``;
    the stock app's ``/client-token`` with the user's ``{"id", "username"}``.
    """
    if status != b"200":
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    if not isinstance(answer, dict):
        return False
    if path is not None:
        return bool(answer.get("status") == "ok")
    if side == "ours":
        return bool(answer.get("status") == "authenticated")
    return isinstance(answer.get("id"), int) and "error" not in answer


async def _client(
    side: str,
    path: str | None,
    port: int,
    requests_: Sequence[bytes],
    offset: int,
    deadline: float,
    done: list[_Done],
) -> None:
    loop = asyncio.get_running_loop()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    i = offset
    while loop.time() < deadline:
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert reader is not None
        began = loop.time()
        writer.write(requests_[i % len(requests_)])
        i += 1
        status, close, body = await _response(reader)
        done.append((began, loop.time(), _succeeded(side, path, status, body)))
        if close:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _floor_client(
    port: int,
    context: ssl.SSLContext,
    tokens: Sequence[str],
    offset: int,
    deadline: float,
    done: list[_Done],
) -> None:
    """The mobile floor, over and over: tokeninfo and profile at once, each on its own
    kept-alive HTTPS connection through the delay proxy."""
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{port}"
    pairs = [
        await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
        for _ in range(2)
    ]
    for _, writer in pairs:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    (info_reader, info_writer), (profile_reader, profile_writer) = pairs
    i = offset
    try:
        while loop.time() < deadline:
            token = tokens[i % len(tokens)]
            i += 1
            began = loop.time()
            info_writer.write(
                f"GET /auth/o2/tokeninfo?access_token={quote(token, safe='')} HTTP/1.1\r\n"
                f"Host: {host}\r\n\r\n".encode()
            )
            profile_writer.write(
                f"GET /user/profile HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
            info, profile = await asyncio.gather(_response(info_reader), _response(profile_reader))
            ok = all(
                status == b"200" and not close and b'"user_id"' in body
                for status, close, body in (info, profile)
            )
            done.append((began, loop.time(), ok))
            if not ok:
                return
    finally:
        for _, writer in pairs:
            writer.close()


async def _drive(
    clients: Sequence[Callable[[float, list[_Done]], Awaitable[None]]],
    warmup: float,
    seconds: float,
    on_window: Callable[[int], None],
) -> tuple[float, float, list[_Done]]:
    """Run every client until the window's end; ``on_window`` at its start and end."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    window = (start + warmup, start + warmup + seconds)
    done: list[_Done] = []

    async def mark(at: float, which: int) -> None:
        await asyncio.sleep(at - loop.time())
        await loop.run_in_executor(None, on_window, which)

    await asyncio.gather(
        *(client(window[1], done) for client in clients), mark(window[0], 0), mark(window[1], 1)
    )
    return window[0], window[1], done


def _measure(
    side: str,
    network: Network,
    clients: Sequence[Callable[[float, list[_Done]], Awaitable[None]]],
    *,
    warmup: float,
    seconds: float,
    pids: dict[str, Sequence[int]],
    database_pid: int | None,
) -> LoadResult:
    """Run ``clients`` and count what they got, and the CPU of every process, in the window."""
    pids = {
        **pids,
        "emulator": [network.amazon.process.pid],
        "delay proxy": [network.proxy.process.pid],
        "load clients (bench)": [os.getpid()],
    }
    trees = {"database server": database_pid} if database_pid is not None else {}
    readings: list[_Reading] = []

    def on_window(_which: int) -> None:
        machine = _machine_busy_seconds()
        processes = _processes()
        cpu, ours = _groups_cpu(processes, pids, trees)
        cpu["whole machine"] = machine
        readings.append(_Reading(cpu, processes, ours, *network.stats()))

    began, ended, done = asyncio.run(_drive(clients, warmup, seconds, on_window))
    inside = [(start, end, ok) for start, end, ok in done if began <= end <= ended]
    first, last = readings
    cpu = {name: last.cpu[name] - first.cpu[name] for name in first.cpu}
    cpu["other processes"] = _others_cpu(first.processes, last.processes, first.ours | last.ours)
    return LoadResult(
        side=side,
        workers=len(pids.get("app workers", ())),
        clients=len(clients),
        seconds=ended - began,
        signins=sum(1 for *_, ok in inside if ok),
        errors=sum(1 for *_, ok in inside if not ok),
        latencies_ms=[(end - start) * 1000 for start, end, ok in inside if ok],
        amazon_calls=last.amazon_calls - first.amazon_calls,
        connections=last.connections - first.connections,
        cpu=cpu,
    )


def _phase(
    pool: _Workers,
    side: str,
    network: Network,
    tokens: Sequence[str],
    *,
    clients: int,
    warmup: float,
    seconds: float,
    path: str | None,
    database_pid: int | None,
) -> LoadResult:
    per_port = {port: [_request(side, port, t, path=path) for t in tokens] for port in pool.ports}
    drivers = [
        functools.partial(
            _client,
            side,
            path,
            pool.ports[i % len(pool.ports)],
            per_port[pool.ports[i % len(pool.ports)]],
            i,
        )
        for i in range(clients)
    ]
    return _measure(
        side,
        network,
        drivers,
        warmup=warmup,
        seconds=seconds,
        pids={"app workers": [p.pid for p in pool.processes]},
        database_pid=database_pid,
    )


def run_floor_load(
    network: Network, tokens: Sequence[str], *, clients: int, warmup: float, seconds: float
) -> LoadResult:
    """The throughput floor, measured: no app, ``clients`` bare clients each making the
    mobile floor's two calls (tokeninfo and profile at once) through the delay proxy,
    on kept-alive HTTPS connections, over and over.

    What the emulator and the proxy (and this process's clients) can carry on
    this machine with nothing else to run: no server of sign-ins can do more here.
    """
    context = ssl.create_default_context(cafile=str(network.tls.ca_bundle))
    port = int(network.proxy.info["port"])
    drivers = [functools.partial(_floor_client, port, context, tokens, i) for i in range(clients)]
    return _measure(
        "floor", network, drivers, warmup=warmup, seconds=seconds, pids={}, database_pid=None
    )


def run_load(
    side: str,
    database_url: str,
    config: dict[str, Any],
    network: Network,
    tokens: Sequence[str],
    *,
    workers: int,
    threads: int,
    clients: int,
    warmup: float,
    seconds: float,
    trivial_seconds: float,
    logdir: Path,
    database_pid: int | None = None,
    framework: str = "flask",
) -> tuple[LoadResult, LoadResult]:
    """Load ``workers`` fresh server processes: first a trivial endpoint, then sign-ins.

    The trivial phase (the same request body posted to ``/bench/ping``)
    measures what waitress and Flask cost per request on these very
    processes, hot, so that it can be taken off the sign-ins' CPU.
    ``database_pid``: the database server's root process (PostgreSQL's
    postmaster), whose process tree is counted as "database server".
    Returns (trivial, sign-ins); the workers stop afterwards.
    """
    pool = _Workers(side, database_url, config, network, workers, threads, logdir, framework)
    try:
        pool.wait_until_up()
        common = {"clients": clients, "database_pid": database_pid}
        trivial = _phase(
            pool,
            side,
            network,
            tokens,
            warmup=min(1.0, warmup),
            seconds=trivial_seconds,
            path="/bench/ping",
            **common,
        )
        signins = _phase(
            pool, side, network, tokens, warmup=warmup, seconds=seconds, path=None, **common
        )
    finally:
        pool.stop()
    return trivial, signins
