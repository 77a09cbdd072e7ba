"""Proof tests: what README's "Transactions, concurrency and what we guarantee" promises,
checked against real processes, real SIGKILL, real files and the real PostgreSQL server
(docs/proof.md has what each one does and the numbers measured).

`ORM_PROOF_SCALE` (a whole number, 1 by default) multiplies the kills, the transactions and
the entity counts: 1 is the CI run (well under a minute on both databases), 10 the long run.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import orm

ROOT = Path(__file__).resolve().parent.parent.parent


def _scale() -> int:
    raw = os.environ.get("ORM_PROOF_SCALE", "1")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"ORM_PROOF_SCALE must be a whole number, 1 or more, not {raw!r}")
    return value


SCALE = _scale()


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a workload process: it imports the `orm` this process imported
    (a checkout's src, or the installed package) and the tests package from the checkout."""
    env = dict(os.environ)
    paths = [str(Path(orm.__file__).resolve().parent.parent), str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def pg_schema(kind: str) -> str:
    """A schema of this test's own on the PostgreSQL server, dropped by the test."""
    return f"orm_proof_{kind}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
