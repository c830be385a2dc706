"""``python -m bench --quick`` runs end to end and reports every figure.

A smoke test only: the figures depend on the machine, so none is checked
against a target here (``make bench`` is where they are judged).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.report import ROWS

REPO = Path(__file__).resolve().parents[1]


def test_quick_bench_prints_the_table_and_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--db", "sqlite", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    table = result.stdout
    assert "machine:" in table and "cores" in table
    assert "PostgreSQL" not in table
    # A block per framework, Django's beside Flask's. Rows of different
    # scenarios share labels ("  calls to Amazon per sign-in"): count each
    # label's lines in the block, so that a missing sub-row fails too.
    lines = table.splitlines()
    shown = Counter(f"{label} ({unit})" if unit else label for _key, label, unit in ROWS)
    for title in ("SQLite, Flask", "SQLite, Django"):
        first = next(i for i, line in enumerate(lines) if line.startswith(f"{title} "))
        block = lines[first + 2 : lines.index("", first)]
        for text, expected in shown.items():
            found = sum(1 for line in block if line.startswith(f"{text}  "))
            assert found == expected, f"{text!r}: {found} rows in the {title} block, not {expected}"
        assert len(block) == len(ROWS), block

    document = json.loads(out.read_text())
    assert document["databases"] == ["sqlite"]
    assert document["frameworks"] == ["flask", "django"]
    assert document["machine"]["cores"] >= 1
    keys = [key for key, _, _ in ROWS]
    for framework in ("flask", "django"):
        rows = [row for row in document["rows"] if row["framework"] == framework]
        assert [row["key"] for row in rows] == keys, framework
        for row in rows:
            assert row["db"] == "sqlite"
            assert row["ours"] is not None, (framework, row["key"])
            assert row["stock"] is not None, (framework, row["key"])
    # Django's rows carry the ratio targets: p50 against the floor and stock,
    # the web callback against stock, sign-ins per second against stock's.
    django = {row["key"]: row for row in document["rows"] if row["framework"] == "django"}
    goals = {
        key: [t["goal"] for t in row["targets"]] for key, row in django.items() if row["targets"]
    }
    assert goals == {
        "mobile.p50_ms": ["<=1.15x floor", ">=2.5x faster than stock"],
        "web.p50_ms": [">=2.5x faster than stock"],
        "load.signins_per_s": [">=4x stock's"],
    }
    assert document["targets"]["passed"] + document["targets"]["missed"] > 0


def test_other_processes_count_only_what_they_used_between_the_readings() -> None:
    from bench.load import _TICKS, _others_cpu, _Process

    bench_pid, shell, job, leaving_child, newcomer = 10, 20, 21, 30, 40
    ours = {(bench_pid, 1)}
    before = {
        bench_pid: _Process(parent=1, started=1, own=500, children=0),
        # Something else running: a shell with a job of its own.
        shell: _Process(parent=1, started=2, own=100, children=0),
        job: _Process(parent=shell, started=3, own=40, children=0),
        # A child of the bench's, about to end.
        leaving_child: _Process(parent=bench_pid, started=4, own=900, children=0),
    }
    after = {
        bench_pid: _Process(parent=1, started=1, own=600, children=960),
        # The job ended (it had used 40 + 10 ticks), and a short batch (25
        # ticks) started and ended in between: the shell waited for both.
        shell: _Process(parent=1, started=2, own=105, children=50 + 25),
        # A process that started in between and still runs: counted whole.
        newcomer: _Process(parent=1, started=9, own=7, children=0),
    }

    # The shell's 5, the job's last 10, the batch's 25 and the newcomer's 7.
    # The bench's child used its last 60 ticks in the bench's own children:
    # no other process holds them, and its 900 are not taken off the others.
    assert _others_cpu(before, after, ours) * _TICKS == 5 + 10 + 25 + 7
