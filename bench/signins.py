"""One sign-in, many times: latency, calls to Amazon, new connections, SQL, CPU.

The app handles each sign-in in this process through Werkzeug's test client
(Flask's, or over Django's WSGI handler: ``bench`` is a :class:`~bench.apps.BenchApp`
or a :class:`~bench.django_apps.DjangoBenchApp`), so
a latency is the server's handling time: from the request entering the app
to its answer, the calls to "Amazon" (over the delay proxy) included. The
emulator's counters give the calls and the new TCP connections; the engine's
``before_cursor_execute`` gives the SQL statements.
"""

from __future__ import annotations

import math
import secrets
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from .apps import CLIENT_ID, CLIENT_SECRET
from .network import Network

__all__ = [
    "HotCPU",
    "Identities",
    "Sample",
    "cpu_per_signin",
    "floor_cpu",
    "floor_mobile",
    "floor_web",
    "mobile_signins",
    "percentile",
    "web_signins",
]

#: Trivial requests timed to subtract from paced sign-ins (enough for a mean of ~0.2 ms).
PACED_TRIVIAL = 40
#: The redirect URI the test client's app builds (Flask's test host is "localhost").
REDIRECT_URI = "http://localhost/complete/amazon/"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): p99 of 100 samples is the 99th smallest."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Sample:
    """What ``n`` sign-ins of one kind cost."""

    latencies_ms: list[float] = field(default_factory=list)
    amazon_calls: int = 0
    connections: int = 0
    statements: int = 0
    writes: int = 0
    #: Process CPU over the measured sign-ins, seconds (None when not measured).
    cpu_s: float | None = None

    @property
    def n(self) -> int:
        return len(self.latencies_ms)

    def per_signin(self, total: float) -> float:
        return total / self.n if self.n else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p99_ms": percentile(self.latencies_ms, 99),
            "mean_ms": statistics.fmean(self.latencies_ms),
            "amazon_calls": self.per_signin(self.amazon_calls),
            "new_connections": self.per_signin(self.connections),
            "sql_statements": self.per_signin(self.statements),
            "sql_writes": self.per_signin(self.writes),
            "cpu_ms": None if self.cpu_s is None else self.per_signin(self.cpu_s) * 1000,
        }


class Identities:
    """Amazon accounts on the emulator, named so that no two runs share one."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.run = secrets.token_hex(4).upper()
        self.count = 0

    def add(self, kind: str) -> str:
        """A new identity (its name makes a valid, unused username); returns its user_id."""
        self.count += 1
        tag = f"{kind.upper()}{self.run}{self.count:05d}"
        user_id = f"amzn1.account.AEBENCH{tag}"
        self.network.control.add_identity(user_id, f"Bench {tag}", f"{tag.lower()}@example.com")
        return user_id

    def token(self, user_id: str, client_id: str = CLIENT_ID) -> str:
        """What the LWA SDK hands a mobile app after it signed this identity in."""
        return self.network.control.mint_token(client_id, user_id)


def _sign_in_check(bench: Any, response: Any, *, new_user: bool | None) -> None:
    if response.status_code != 200:
        raise RuntimeError(
            f"{bench.side}: sign-in answered {response.status_code}: {response.get_data()[:300]!r}"
        )
    if bench.side == "ours":
        body = response.get_json()
        if body.get("status") != "authenticated":
            raise RuntimeError(f"ours: sign-in did not authenticate: {body}")
        if new_user is not None and body.get("new_user") is not new_user:
            raise RuntimeError(f"ours: expected new_user={new_user}: {body}")


def mobile_signins(
    bench: Any,
    network: Any,
    tokens: Sequence[str],
    n: int,
    *,
    new_user: bool,
    warmup: int = 0,
    measure_cpu: bool = False,
) -> Sample:
    """``n`` sign-ins with client tokens (``tokens[i % len]``), one fresh cookie jar each.

    With ``measure_cpu``, the process CPU over the sign-ins, less that of as
    many trivial requests (same client, same body, paced like the sign-ins):
    the sign-in's own cost beyond the framework's request handling, one at a time.
    """
    bench.activate()
    client = bench.app.test_client(use_cookies=False)
    path = bench.token_path
    for i in range(warmup):
        _sign_in_check(
            bench, client.post(path, **bench.token_request(tokens[i % len(tokens)])), new_user=None
        )

    sample = Sample()
    connections0, calls0 = network.stats()
    statements0, writes0 = bench.sql.snapshot()
    cpu0 = time.process_time()
    for i in range(n):
        kwargs = bench.token_request(tokens[(warmup + i) % len(tokens)])
        start = time.perf_counter()
        response = client.post(path, **kwargs)
        sample.latencies_ms.append((time.perf_counter() - start) * 1000)
        _sign_in_check(bench, response, new_user=new_user)
    cpu1 = time.process_time()
    statements1, writes1 = bench.sql.snapshot()
    connections1, calls1 = network.stats()
    sample.amazon_calls = calls1 - calls0
    sample.connections = connections1 - connections0
    sample.statements = statements1 - statements0
    sample.writes = writes1 - writes0

    if measure_cpu:
        # The trivial requests are paced like the sign-ins (each one after a
        # wait as long as a sign-in's), so that both pay the same for running
        # on a core that sat idle in between (caches, clock): on this kind of
        # machine that alone adds a fifth to the CPU time of the same work.
        pause = statistics.fmean(sample.latencies_ms) / 1000
        kwargs = bench.token_request(tokens[0])
        for _ in range(max(5, warmup)):
            client.post("/bench/ping", **kwargs)
        paced = min(n, PACED_TRIVIAL)
        trivial = 0.0
        for _ in range(paced):
            time.sleep(pause)
            began = time.process_time()
            client.post("/bench/ping", **kwargs)
            trivial += time.process_time() - began
        sample.cpu_s = max(0.0, (cpu1 - cpu0) - trivial / paced * n)
    return sample


@dataclass(frozen=True)
class HotCPU:
    """CPU (ms) per sign-in, hot, over several rounds: the figure and its spread."""

    #: The best round's sign-ins less the best round's trivial requests.
    ms: float
    #: Each round's sign-ins less the same round's trivial requests.
    rounds: list[float]

    def summary(self) -> dict[str, Any]:
        return {
            "ms": self.ms,
            "min_ms": min(self.rounds),
            "median_ms": statistics.median(self.rounds),
            "max_ms": max(self.rounds),
            "rounds_ms": self.rounds,
        }


def side_figures(mobile: Sample, web: Sample, new_user: Sample, cpu_hot: HotCPU) -> dict[str, Any]:
    """One side's in-process figures, as the report reads them (Flask's measured
    in the bench's process, Django's in :mod:`bench.django_side`'s)."""
    return {
        "mobile": mobile.summary(),
        "web": web.summary(),
        "new_user": new_user.summary(),
        "cpu_hot_ms": cpu_hot.ms,
        "cpu_hot": cpu_hot.summary(),
    }


def _best_of(rounds: int, signin: Callable[[], float], trivial: Callable[[], float]) -> HotCPU:
    """Alternate ``rounds`` rounds of sign-ins and trivial requests (each returns ms per item).

    Work on a shared machine only ever takes longer than it needs (a
    neighbour's burst, a garbage collection, a cold cache), so the least of
    each is the figure: best sign-in round less best trivial round.
    """
    signins, trivials = [], []
    for _ in range(rounds):
        signins.append(signin())
        trivials.append(trivial())
    return HotCPU(
        ms=max(0.0, min(signins) - min(trivials)),
        rounds=[max(0.0, a - b) for a, b in zip(signins, trivials, strict=True)],
    )


def cpu_per_signin(
    bench: Any, tokens: Sequence[str], n: int, *, rounds: int = 10, warmup: int = 10
) -> HotCPU:
    """Process CPU (ms) of one mobile sign-in beyond a trivial request, hot.

    ``bench`` must talk to the emulator directly (no delay proxy): sign-ins
    run back to back, so no core sits idle between them and what is left is
    the work itself, as on a busy server. The trivial request (the same body
    posted to ``/bench/ping``) is measured the same way and subtracted. The
    ``n`` sign-ins are split in ``rounds`` rounds (see :func:`_best_of`).
    """
    bench.activate()
    client = bench.app.test_client(use_cookies=False)
    path = bench.token_path
    trivial_body = bench.token_request(tokens[0])
    for i in range(warmup):
        _sign_in_check(
            bench, client.post(path, **bench.token_request(tokens[i % len(tokens)])), new_user=None
        )
        client.post("/bench/ping", **trivial_body)
    each = max(1, n // rounds)

    def signin() -> float:
        began = time.process_time()
        for i in range(each):
            response = client.post(path, **bench.token_request(tokens[i % len(tokens)]))
            _sign_in_check(bench, response, new_user=False)
        return (time.process_time() - began) / each * 1000

    def trivial() -> float:
        began = time.process_time()
        for _ in range(each):
            client.post("/bench/ping", **trivial_body)
        return (time.process_time() - began) / each * 1000

    return _best_of(rounds, signin, trivial)


def _authorize(network: Network, authorize_url: str, user_id: str, http: requests.Session) -> str:
    """What the person does on Amazon's page: allow. Returns the callback URL (with the code)."""
    query = dict(parse_qsl(urlsplit(authorize_url).query))
    # The consent page is the browser's part, not the server's: it is posted
    # to the emulator directly rather than over the delay proxy.
    response = http.post(
        f"{network.control_url}/ap/oa",
        data={**query, "user_id": user_id, "decision": "allow"},
        allow_redirects=False,
    )
    if response.status_code != 302:
        raise RuntimeError(f"consent answered {response.status_code}: {response.text[:300]}")
    return response.headers["Location"]


def web_signins(
    bench: Any, network: Any, user_ids: Sequence[str], n: int, *, warmup: int = 0
) -> Sample:
    """``n`` web sign-ins; each callback (``/complete/amazon/?code=...``) is measured."""
    bench.activate()
    sample = Sample()
    http = requests.Session()
    try:
        for i in range(warmup + n):
            browser = bench.app.test_client()
            start = bench.start_web(browser)
            if start.status_code != 302:
                raise RuntimeError(f"{bench.side}: /login/amazon/ answered {start.status_code}")
            callback = urlsplit(
                _authorize(network, start.headers["Location"], user_ids[i % len(user_ids)], http)
            )
            target = f"{callback.path}?{callback.query}"

            connections0, calls0 = network.stats()
            statements0, writes0 = bench.sql.snapshot()
            began = time.perf_counter()
            response = browser.get(target)
            elapsed = (time.perf_counter() - began) * 1000
            statements1, writes1 = bench.sql.snapshot()
            connections1, calls1 = network.stats()

            location = response.headers.get("Location", "")
            if response.status_code != 302 or not location.endswith("/me"):
                raise RuntimeError(
                    f"{bench.side}: callback answered {response.status_code} -> {location!r}: "
                    f"{response.get_data()[:300]!r}"
                )
            if i < warmup:
                continue
            sample.latencies_ms.append(elapsed)
            sample.amazon_calls += calls1 - calls0
            sample.connections += connections1 - connections0
            sample.statements += statements1 - statements0
            sample.writes += writes1 - writes0
    finally:
        http.close()
    return sample


def _session(network: Network) -> requests.Session:
    session = requests.Session()
    session.verify = str(network.tls.ca_bundle)
    return session


def _timed(network: Network, n: int, warmup: int, one: Callable[[int], None]) -> Sample:
    for i in range(warmup):
        one(i)
    sample = Sample()
    connections0, calls0 = network.stats()
    cpu0 = time.process_time()
    for i in range(n):
        start = time.perf_counter()
        one(warmup + i)
        sample.latencies_ms.append((time.perf_counter() - start) * 1000)
    sample.cpu_s = time.process_time() - cpu0
    connections1, calls1 = network.stats()
    sample.amazon_calls = calls1 - calls0
    sample.connections = connections1 - connections0
    return sample


def floor_mobile(network: Network, token: str, n: int, *, warmup: int = 3) -> Sample:
    """Tokeninfo and profile at once, each on its own warm kept-alive connection."""
    tokeninfo, profile = _session(network), _session(network)
    api = network.api_url
    with ThreadPoolExecutor(max_workers=1) as pool:

        def one(_: int) -> None:
            info = pool.submit(
                tokeninfo.get, f"{api}/auth/o2/tokeninfo", params={"access_token": token}
            )
            answer = profile.get(
                f"{api}/user/profile", headers={"Authorization": f"Bearer {token}"}
            )
            if answer.status_code != 200 or info.result().status_code != 200:
                raise RuntimeError("floor: Amazon refused the token")

        try:
            return _timed(network, n, warmup, one)
        finally:
            tokeninfo.close()
            profile.close()


def floor_cpu(network: Network, token: str, n: int, *, rounds: int = 10) -> HotCPU:
    """CPU (ms) of the mobile floor's two calls, hot: straight to the emulator, back to back.

    The figure to set beside a server's CPU under load, where no core idles
    between sign-ins (the delay proxy is left out: it only adds waiting).
    Best of ``rounds`` rounds, as :func:`cpu_per_signin` (nothing to subtract).
    """
    direct = network.direct_url
    tokeninfo, profile = _session(network), _session(network)
    each = max(1, n // rounds)
    with ThreadPoolExecutor(max_workers=1) as pool:

        def one() -> None:
            info = pool.submit(
                tokeninfo.get, f"{direct}/auth/o2/tokeninfo", params={"access_token": token}
            )
            profile.get(
                f"{direct}/user/profile", headers={"Authorization": f"Bearer {token}"}
            ).json()
            info.result().json()

        def calls() -> float:
            began = time.process_time()
            for _ in range(each):
                one()
            return (time.process_time() - began) / each * 1000

        try:
            for _ in range(10):
                one()
            return _best_of(rounds, calls, lambda: 0.0)
        finally:
            tokeninfo.close()
            profile.close()


def floor_web(network: Network, user_id: str, n: int, *, warmup: int = 3) -> Sample:
    """The token exchange, then the profile, one after the other on one warm connection."""
    session = _session(network)
    http = requests.Session()
    api = network.api_url
    codes: list[str] = []
    for _ in range(n + warmup):
        query = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "profile",
            "state": secrets.token_urlsafe(8),
        }
        callback = _authorize(network, "?" + urlencode(query), user_id, http)
        codes.append(dict(parse_qsl(urlsplit(callback).query))["code"])
    http.close()

    def one(i: int) -> None:
        token = session.post(
            f"{api}/auth/o2/token",
            data={
                "grant_type": "authorization_code",
                "code": codes[i],
                "redirect_uri": REDIRECT_URI,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
        access_token = token.json()["access_token"]
        answer = session.get(
            f"{api}/user/profile", headers={"Authorization": f"Bearer {access_token}"}
        )
        if answer.status_code != 200:
            raise RuntimeError("floor: profile refused")

    try:
        return _timed(network, n, warmup, one)
    finally:
        session.close()
