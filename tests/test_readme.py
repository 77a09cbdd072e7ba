"""The README's short tour runs as written (a reader copies it first)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_short_tour_runs_as_written(tmp_path):
    text = README.read_text(encoding="utf-8")
    tour = re.search(r"## A short tour\n\n```python\n(.*?)```", text, re.S)
    assert tour, "README has a 'A short tour' python block"
    proc = subprocess.run(
        [sys.executable, "-c", tour.group(1)], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    shown = proc.stdout.strip().splitlines()[-1]  # print(wrap(user).to_json())
    assert "'email': 'foo@bar.com'" in shown and "'age': 0" in shown
    assert "password" not in shown
