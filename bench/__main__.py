"""``python -m bench`` (``make bench``): measure, print the table, write ``.bench/results.json``.

Options: ``--db sqlite,postgres`` (default both; PostgreSQL is skipped with a
note when its binaries are absent), ``--framework flask,django`` (default
both), ``--rtt-ms 30``, ``--quick`` (a tiny run, for the smoke test), ``--out
PATH``. Progress goes to standard error, the
table to standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .apps import (
    CLIENT_ID,
    CLIENT_SECRET,
    SIDES,
    build,
    databases,
    settings,
)
from .load import BUSY_CORES, database_server_pid, run_floor_load, run_load
from .network import REPO, Network
from .report import FRAMEWORKS, ROWS, Row, machine, render, rows_for
from .signins import (
    Identities,
    cpu_per_signin,
    floor_cpu,
    floor_mobile,
    floor_web,
    mobile_signins,
    side_figures,
    web_signins,
)
from .stock import point_at
from .tls import make_tls_files


@dataclass(frozen=True)
class Plan:
    """How many of each: the defaults keep a full run (both databases) under three minutes."""

    mobile: int = 100
    web: int = 50
    new_users: int = 40
    returning_users: int = 8
    warmup: int = 5
    #: Hot CPU sign-ins, in ten rounds (stock: a quarter, each one costs it a TLS set-up).
    cpu: int = 500
    floor_mobile: int = 100
    floor_web: int = 50
    floor_cpu: int = 500
    workers: int = 2
    threads: int = 16
    clients: int = 32
    load_warmup_s: float = 2.0
    load_seconds: float = 4.0
    trivial_seconds: float = 1.5


QUICK = Plan(
    mobile=10,
    web=4,
    new_users=4,
    returning_users=4,
    warmup=2,
    cpu=20,
    floor_mobile=10,
    floor_web=4,
    floor_cpu=20,
    threads=4,
    clients=8,
    load_warmup_s=1.0,
    load_seconds=1.5,
    trivial_seconds=1.0,
)


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _postgres_missing() -> str | None:
    """Why PostgreSQL cannot run here, or None."""
    from tests.postgres import _binary

    if os.environ.get("TEST_POSTGRES_URL"):
        return None
    try:
        _binary("initdb")
        _binary("pg_ctl")
    except RuntimeError as error:
        return str(error)
    return None


@contextlib.contextmanager
def _database_server(kind: str) -> Iterator[str | None]:
    if kind != "postgres":
        yield None
        return
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


def _flask_side(
    database_url: str,
    config: dict[str, Any],
    side: str,
    network: Network,
    job: dict[str, Any],
    plan: Plan,
    progress: str,
) -> dict[str, Any]:
    """One Flask side's in-process figures (what :mod:`bench.django_side` measures for Django)."""
    tokens = job["tokens"]
    app = build(database_url, config, side=side)
    try:
        _progress(f"{progress}: first sign-ins of {len(tokens)} returning users (set-up)")
        mobile_signins(app, network, tokens, len(tokens), new_user=True)
        _progress(f"{progress}: {plan.mobile} mobile sign-ins")
        mobile = mobile_signins(
            app, network, tokens, plan.mobile, new_user=False, warmup=plan.warmup, measure_cpu=True
        )
        _progress(f"{progress}: {plan.web} web callbacks")
        web = web_signins(app, network, job["returning"], plan.web, warmup=2)
        _progress(f"{progress}: {plan.new_users} new-user sign-ins")
        new_user = mobile_signins(app, network, job["fresh_tokens"], plan.new_users, new_user=True)
    finally:
        app.close()
    _progress(f"{progress}: CPU, {job['hot']} sign-ins back to back, straight to the emulator")
    direct = build(
        database_url, settings(network.direct_url, network.tls.ca_bundle, side=side), side=side
    )
    point_at(network.direct_url)
    try:
        cpu_hot = cpu_per_signin(direct, tokens, job["hot"])
    finally:
        point_at(network.api_url)
        direct.close()
    return side_figures(mobile, web, new_user, cpu_hot)


def _django_side(
    database_url: str,
    config: dict[str, Any],
    side: str,
    network: Network,
    job: dict[str, Any],
    plan: Plan,
    progress: str,
) -> dict[str, Any]:
    """One Django side's in-process figures, measured by ``python -m bench.django_side``."""
    _progress(
        f"{progress}: {plan.mobile} mobile sign-ins, {plan.web} web callbacks, "
        f"{plan.new_users} new users, CPU ({job['hot']} sign-ins), in a Django process"
    )
    job = {
        **job,
        "side": side,
        "database_url": database_url,
        "config": config,
        "plan": asdict(plan),
        "network": {
            "api_url": network.api_url,
            "direct_url": network.direct_url,
            "control_url": network.control_url,
            "ca_bundle": str(network.tls.ca_bundle),
        },
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.django_side"],
        cwd=REPO,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{progress}: the Django process failed:\n{done.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _measure_database(
    kind: str,
    server_url: str | None,
    network: Network,
    identities: Identities,
    plan: Plan,
    workdir: Path,
    order: Sequence[str] = SIDES,
    framework: str = "flask",
) -> dict[str, dict[str, Any]]:
    """Every figure of both sides of ``framework`` on one database kind, the sides in ``order``."""
    results: dict[str, dict[str, Any]] = {}
    returning = [identities.add("r") for _ in range(plan.returning_users)]
    tokens = [identities.token(user_id) for user_id in returning]
    dbdir = workdir / f"{kind}-{framework}"
    dbdir.mkdir(exist_ok=True)
    server_pid = database_server_pid(server_url) if server_url else None
    in_process = _django_side if framework == "django" else _flask_side
    with databases(kind, dbdir, server_url) as urls:
        for side in order:
            config = settings(network.api_url, network.tls.ca_bundle, side=side)
            fresh = [identities.add("n") for _ in range(plan.new_users)]
            job = {
                "tokens": tokens,
                "returning": returning,
                "fresh_tokens": [identities.token(user_id) for user_id in fresh],
                "hot": plan.cpu if side == "ours" else max(10, plan.cpu // 4),
            }
            progress = f"{kind}/{framework}/{side}"
            figures = in_process(urls[side], config, side, network, job, plan, progress)
            _progress(
                f"{progress}: load, {plan.clients} clients on {plan.workers} workers "
                f"({plan.load_warmup_s:g} s warm-up, {plan.load_seconds:g} s measured)"
            )
            trivial, load = run_load(
                side,
                urls[side],
                config,
                network,
                tokens,
                workers=plan.workers,
                threads=plan.threads,
                clients=plan.clients,
                warmup=plan.load_warmup_s,
                seconds=plan.load_seconds,
                trivial_seconds=plan.trivial_seconds,
                logdir=dbdir,
                database_pid=server_pid,
                framework=framework,
            )
            for phase in (trivial, load):
                if phase.errors or not phase.signins:
                    raise RuntimeError(
                        f"{progress}: load test had {phase.errors} errors, "
                        f"{phase.signins} answers (worker logs: {dbdir})"
                    )
            signin_cpu = load.summary()["cpu_ms_per_signin"]["app workers"]
            trivial_cpu = trivial.summary()["cpu_ms_per_signin"]["app workers"]
            results[side] = {
                "mobile": figures["mobile"],
                "web": figures["web"],
                "new_user": figures["new_user"],
                "load": load.summary(),
                "load_trivial": trivial.summary(),
                "cpu": {
                    "hot_ms": figures["cpu_hot_ms"],
                    "hot": figures["cpu_hot"],
                    # Worker CPU per sign-in under load, less what the same
                    # workers spend per trivial request (waitress + the framework).
                    "under_load_ms": signin_cpu - trivial_cpu,
                    "under_load_signin_ms": signin_cpu,
                    "under_load_trivial_ms": trivial_cpu,
                    "sequential_ms": figures["mobile"]["cpu_ms"],
                },
            }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="What a Login with Amazon sign-in costs: this library, stock social-core "
        "7 and the physical floor, over an emulated link to Amazon.",
    )
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument(
        "--framework", default="flask,django", help="flask, django or both (default both)"
    )
    parser.add_argument("--rtt-ms", type=float, default=30.0, help="round trip to Amazon")
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results.json")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.db.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in ("sqlite", "postgres")]
    if unknown or not kinds:
        parser.error(f"--db takes sqlite and/or postgres, not {', '.join(unknown) or 'nothing'}")
    frameworks = [name.strip() for name in args.framework.split(",") if name.strip()]
    strange = [name for name in frameworks if name not in FRAMEWORKS]
    if strange or not frameworks:
        parser.error(
            f"--framework takes flask and/or django, not {', '.join(strange) or 'nothing'}"
        )
    plan = QUICK if args.quick else Plan()
    began = time.monotonic()

    notes: list[str] = []
    skipped: dict[str, str] = {}
    if "postgres" in kinds and (why := _postgres_missing()):
        kinds.remove("postgres")
        skipped["postgres"] = why
        notes.append(f"PostgreSQL skipped: {why}")

    with tempfile.TemporaryDirectory(prefix="sal-bench-") as tmp:
        workdir = Path(tmp)
        tls = make_tls_files(workdir / "tls")
        # Every client in this run and in the workers trusts the throwaway CA.
        # requests lets REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) override a
        # Session's own ``verify``, so they must name our bundle too.
        os.environ["REQUESTS_CA_BUNDLE"] = str(tls.ca_bundle)
        os.environ.pop("CURL_CA_BUNDLE", None)
        _progress(f"starting the emulator (HTTPS) and the delay proxy ({args.rtt_ms:g} ms)")
        with Network(tls, args.rtt_ms) as network:
            point_at(network.api_url)
            network.control.add_client(CLIENT_ID, CLIENT_SECRET)
            calibration = network.calibrate()
            identities = Identities(network)
            floor_users = [identities.add("f") for _ in range(plan.returning_users)]
            floor_user = floor_users[0]
            _progress(f"floor: {plan.floor_mobile} mobile, {plan.floor_web} web")
            floor_tokens = [identities.token(user_id) for user_id in floor_users]
            floor_token = floor_tokens[0]
            floor_hot = floor_cpu(network, floor_token, plan.floor_cpu)
            floor: dict[str, Any] = {
                "mobile": floor_mobile(network, floor_token, plan.floor_mobile).summary(),
                "web": floor_web(network, floor_user, plan.floor_web).summary(),
                "cpu_hot_ms": floor_hot.ms,
                "cpu_hot": floor_hot.summary(),
            }
            _progress(
                f"floor: load, {plan.clients} bare clients ({plan.load_warmup_s:g} s warm-up, "
                f"{plan.load_seconds:g} s measured)"
            )
            floor_load = run_floor_load(
                network,
                floor_tokens,
                clients=plan.clients,
                warmup=plan.load_warmup_s,
                seconds=plan.load_seconds,
            )
            if floor_load.errors or not floor_load.signins:
                raise RuntimeError(
                    f"floor load: {floor_load.errors} errors, {floor_load.signins} answers"
                )
            floor["load"] = floor_load.summary()
            results: dict[str, dict[str, Any]] = {name: {} for name in frameworks}
            orders: dict[str, dict[str, list[str]]] = {name: {} for name in frameworks}
            for index, kind in enumerate(kinds):
                with _database_server(kind) as server_url:
                    for turn, framework in enumerate(frameworks):
                        # Every other run, stock goes first: neither side always
                        # runs on a machine the other one just warmed (or heated).
                        order = SIDES if (index + turn) % 2 == 0 else tuple(reversed(SIDES))
                        orders[framework][kind] = list(order)
                        results[framework][kind] = _measure_database(
                            kind,
                            server_url,
                            network,
                            identities,
                            plan,
                            workdir,
                            order,
                            framework,
                        )

    rows: list[Row] = []
    for framework, by_kind in results.items():
        for kind, sides in by_kind.items():
            rows.extend(rows_for(kind, sides["ours"], sides["stock"], floor, framework))
    about = machine()
    elapsed = time.monotonic() - began
    header = [
        "Login with Amazon: what a sign-in costs (one run"
        f"{', --quick' if args.quick else ''}, {elapsed:.0f} s)",
        f"machine: {about['cores']} cores, {about['cpu']}, {about['implementation']} "
        f"{about['python']}, {about['os']}",
        f"link to Amazon: {args.rtt_ms:g} ms round trip asked, {calibration['rtt_ms']:.1f} ms "
        f"measured through the proxy; first byte of a new connection after "
        f"{calibration['first_byte_ms']:.1f} ms; HTTPS (TLS 1.3, throwaway CA)",
        f"samples per side: {plan.mobile} mobile, {plan.web} web, {plan.new_users} new users; "
        f"load: {plan.clients} clients, {plan.workers} waitress workers x {plan.threads} "
        f"threads, {plan.load_seconds:g} s after {plan.load_warmup_s:g} s warm-up",
        "this library: POST /api/amazon/token, /complete/amazon/, AMAZON_PIPELINE; stock: "
        "social-core's AmazonOAuth2 + DEFAULT_AUTH_PIPELINE (do_auth in a view), same storage",
        "Django: social_amazon_link.django (its strategy, storage and URLs) beside stock "
        "social_django 8 (its strategy, storage, /complete/amazon/, do_auth in a view), the "
        "same user model and database, Django's signed-cookie sessions (as Flask's)",
    ]
    if args.quick:
        notes.append("--quick: too few samples and clients to judge the targets.")
    notes[:0] = [
        "floor: a bare client making only the unavoidable calls on warm kept-alive connections "
        "(mobile: tokeninfo and profile at once; web: token, then profile), measured: latency, "
        "calls to Amazon and new connections; it keeps no accounts, so it has no SQL (-); "
        "CPU = a bare requests client making the mobile calls, hot; sign-ins/s and p50 under "
        f"load = {plan.clients} bare clients making the mobile calls at once, over and "
        "over, on kept-alive connections through the same proxy to the same emulator, measured "
        "(what the emulator and the proxy can carry on this machine with no app).",
        "Latencies are the server's handling time (Werkzeug's test client, in process, over "
        "Flask or Django's WSGI handler). CPU is "
        "process CPU per sign-in less that of a request to a trivial endpoint with the same "
        "body: back to back against the emulator (hot, the target's figure: the best of ten "
        "rounds less the best round of trivial requests, as anything else on the machine only "
        "adds to it; the rounds' spread is printed beside it); in the load test's "
        "workers (the same workers' trivial requests under load subtracted); and one at a time "
        "over the link, where each sign-in starts on a core that idled for a round trip.",
        "stock makes one call to Amazon for a client token: it never asks tokeninfo whom the "
        "token was issued to, so it signs in with any app's token.",
    ]
    phases = {"floor load": floor["load"]}
    for framework, by_kind in results.items():
        for kind, sides in by_kind.items():
            for side in orders[framework][kind]:
                name = f"{kind} {framework} load test, {side}"
                phases[name] = sides[side]["load"]
                phases[f"{name}, trivial requests"] = sides[side]["load_trivial"]
    for name, phase in phases.items():
        if name.endswith("trivial requests"):
            continue
        busy = phase["cpu_cores_busy"]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in busy.items() if k != "whole machine")
        notes.append(
            f"{name}: cores busy {busy['whole machine']:.2f} of {about['cores']}: {parts}."
        )
    crowded = {
        name: phase["cpu_cores_busy"]["other processes"]
        for name, phase in phases.items()
        if phase["machine_busy"]
    }
    if crowded:
        warning = (
            f"WARNING: the machine was busy: other processes kept more than {BUSY_CORES:g} of a "
            "core busy during "
            + "; ".join(f"{name} ({cores:.2f} cores)" for name, cores in crowded.items())
            + ". Figures measured then (throughput, CPU under load) are low; re-run on a quiet "
            "machine."
        )
        notes.insert(0, warning)
        _progress(warning)
    for row in rows:
        for target in row.targets:
            if not target.passed and target.why:
                notes.append(
                    f"{row.db} {row.framework} {row.key} misses {target.goal}: {target.why}."
                )
    print(render(header, rows, notes), flush=True)

    passed = sum(t.passed for row in rows for t in row.targets)
    missed = sum(not t.passed for row in rows for t in row.targets)
    document = {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": round(elapsed, 1),
        "machine": about,
        "network": {"rtt_ms": args.rtt_ms, **calibration},
        "plan": asdict(plan),
        "databases": kinds,
        "frameworks": frameworks,
        "skipped": skipped,
        "row_keys": [key for key, _, _ in ROWS],
        "rows": [row.as_dict() for row in rows],
        "targets": {"passed": passed, "missed": missed},
        "floor": floor,
        "side_order": orders,
        "machine_busy": {
            "threshold_cores": BUSY_CORES,
            "busy": bool(crowded),
            "phases": crowded,
        },
        "results": results,
        "notes": notes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    _progress(f"wrote {args.out} ({passed} targets met, {missed} missed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
