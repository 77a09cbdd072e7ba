"""compare.py runs end to end in its quick mode: every column's cells pass the database
verification (a smoke test: no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COMPARE = Path(__file__).resolve().parent.parent / "benchmarks" / "compare.py"


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
    table = [line for line in out.splitlines() if line.startswith("| W")]
    assert [line.split("|")[1].strip()[:2] for line in table[:3]] == ["W1", "W2", "W3"]
    header = next(line for line in out.splitlines() if line.startswith("| workload"))
    assert "orm (compiled)" in header and "orm (pure Python)" in header
    w1 = next(line for line in table if line.startswith("| W1"))
    cells = [c.strip() for c in w1.split("|")[2:-1]]
    assert cells[0].endswith(" s") and all(c.endswith("x") for c in cells[1:3]), w1
