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
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    table = result.stdout
    assert "machine:" in table and "cores" in table
    assert "SQLite" in table and "PostgreSQL" not in table
    # Rows of different scenarios share labels ("  calls to Amazon per
    # sign-in"): count each label's lines in the database's block, so that a
    # missing sub-row fails too.
    lines = table.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("SQLite "))
    block = lines[first + 2 : lines.index("", first)]
    shown = Counter(f"{label} ({unit})" if unit else label for _key, label, unit in ROWS)
    for text, expected in shown.items():
        found = sum(1 for line in block if line.startswith(f"{text}  "))
        assert found == expected, f"{text!r}: {found} rows in the SQLite block, not {expected}"
    assert len(block) == len(ROWS), block

    document = json.loads(out.read_text())
    assert document["databases"] == ["sqlite"]
    assert document["machine"]["cores"] >= 1
    assert [row["key"] for row in document["rows"]] == [key for key, _, _ in ROWS]
    for row in document["rows"]:
        assert row["db"] == "sqlite"
        assert row["ours"] is not None, row["key"]
        assert row["stock"] is not None, row["key"]
    assert document["targets"]["passed"] + document["targets"]["missed"] > 0
