"""The pure-Python twin of the change detector must pass the same core suite.

The backend is chosen once at import, so the twin's run happens in a child process with
`ORM_PURE_PYTHON=1`; its pytest summary is shown when it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    os.environ.get("ORM_PURE_PYTHON") == "1", reason="already running on the twin"
)
def test_core_suite_passes_on_the_pure_python_twin():
    env = dict(os.environ, ORM_PURE_PYTHON="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/core"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # minutes on a busy 2-core machine; a hang still ends well inside CI
    )
    tail = "\n".join(proc.stdout.splitlines()[-30:])
    assert proc.returncode == 0, f"core suite failed on the pure-Python twin:\n{tail}"
    assert " passed" in tail and not re.search(r"\b\d+ failed\b", tail)
