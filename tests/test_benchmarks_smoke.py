"""compare.py runs end to end in its quick mode: every column's cells pass the database
verification (a smoke test: no timing is asserted).

Quick mode keeps it cheap without skipping anything: N = 1,000, one repetition, one
whole-process run for START / IMPORT, and the cells of a column share one process (the library
is imported once per column, not once per cell); every column still runs every workload it
implements on a fresh database, checked row by row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COMPARE = Path(__file__).resolve().parent.parent / "benchmarks" / "compare.py"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")[1:-1]]


def test_compare_quick_mode_verifies_every_cell():
    proc = subprocess.run(
        [sys.executable, str(COMPARE), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "FAILED" not in out
    lines = out.splitlines()
    header = _cells(next(line for line in lines if line.startswith("| workload")))
    table = [_cells(line) for line in lines if line.startswith("| ")]
    rows = {c[0]: c[1:] for c in table[1:]}
    labels = [label.split()[0] for label in rows]
    assert labels[:3] == ["W1", "W2", "W3"] and labels[-3:] == ["START", "START", "IMPORT"]
    columns = header[1:]
    assert columns[:4] == ["raw sqlite3", "raw VALUES", "orm (compiled)", "orm (pure Python)"]

    w1 = next(cells for label, cells in rows.items() if label.startswith("W1"))
    raw, raw_values, orm, orm_pure = w1[:4]
    assert raw.endswith(" s") and raw_values.endswith(" s"), w1
    assert orm.endswith("x") and orm_pure.endswith("x"), w1
    start_row, start_ms_row, import_row = (rows[label] for label in list(rows)[-3:])
    # every column that runs here (peers may be missing) has a start-up time and an import time
    for name, start, start_ms, imported in zip(
        columns, start_row, start_ms_row, import_row, strict=True
    ):
        if name == "raw VALUES" or name == "Peewee (bulk)":
            assert start == start_ms == imported == "-"
        elif start not in ("not installed", "import error", "unavailable"):
            assert start_ms.endswith(" ms") and imported.endswith(" ms"), (name, start_ms)
            assert start.endswith("x") or name == "raw sqlite3", (name, start)
