"""Two processes writing one SQLite file at once (README, "Threads and forks" and "WAL for
concurrent readers"): one writer at a time, and a lock not obtained within `busy_timeout` is
a `LockWaitTimeoutException` that wrote nothing.

Each writer (tests/proof/workloads.py, `writer`) runs many small units of work: even steps a
`with em.transaction()` block that increments a counter both writers share and one of its
own and inserts an event, odd steps a flush inserting an event. `busy_timeout` is a few
milliseconds, so that waits for the other writer's lock run out. Every step must either
commit or raise LockWaitTimeoutException (in WAL also SerializationFailureException: a
transaction whose reads the other writer's commit made stale, refused at once; any other
exception ends the writer with a traceback and fails the test), and at the end the file holds exactly the committed work of
both: each committed event once, no event of a step that timed out, the shared counter equal
to the transactions committed by both (no lost update), each own counter to its writer's.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from orm import ORM
from tests.proof import SCALE, child_env
from tests.proof.workloads import WRITER_ENTITIES, Counter

STEPS = 200 * SCALE
#: milliseconds: long enough for most waits, short enough that some run out
BUSY_TIMEOUT = 5


def _writers(path: Path, journal: str, tmp_path: Path) -> list[list[str]]:
    """Run both writers, started together; the lines each printed."""
    procs = []
    for writer in (1, 2):
        err = (tmp_path / f"writer{writer}.err").open("w")
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "tests.proof.workloads", "writer", "--path", str(path),
             "--journal", journal, "--busy-timeout", str(BUSY_TIMEOUT), "--writer",
             str(writer), "--count", str(STEPS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            env=child_env(),
        ), err))
    for proc, _ in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc, _ in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = []
    for writer, (proc, err) in enumerate(procs, 1):
        out, _ = proc.communicate(timeout=120)
        err.close()
        stderr = (tmp_path / f"writer{writer}.err").read_text()
        assert proc.returncode == 0, f"writer {writer} failed:\n{stderr[-3000:]}"
        outputs.append(out.splitlines())
    return outputs


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_two_processes_writing_one_file_lose_and_duplicate_nothing(
    tmp_path, journal, record_property
):
    path = tmp_path / "writers.db"
    with ORM.init(db_name=str(path), entities=WRITER_ENTITIES, journal_mode=journal) as orm:
        orm.schema.create_schema()
        em = orm.em.fork()
        for key in (0, 1, 2):
            em.persist(Counter(id=key))
        em.flush()

    outputs = _writers(path, journal, tmp_path)

    committed: dict[int, set[int]] = {}
    timed_out = 0
    for writer, lines in enumerate(outputs, 1):
        outcome = dict(line.split()[::-1] for line in lines)  # step -> commit | timeout
        assert sorted(map(int, outcome)) == list(range(STEPS)), f"writer {writer}: {lines[-3:]}"
        assert set(outcome.values()) <= {"commit", "timeout"}
        committed[writer] = {int(i) for i, what in outcome.items() if what == "commit"}
        timed_out += sum(what == "timeout" for what in outcome.values())

    db = sqlite3.connect(path)
    try:
        assert db.execute("pragma integrity_check").fetchall() == [("ok",)]
        events = db.execute("select writer, seq, kind from proof_event").fetchall()
        counters = dict(db.execute("select id, value from proof_counter").fetchall())
    finally:
        db.close()
    assert len(events) == len(set(events)), "an event was written twice"
    for writer in (1, 2):
        stored = {seq for w, seq, _ in events if w == writer}
        assert stored == committed[writer], (
            f"writer {writer}: lost {sorted(committed[writer] - stored)[:10]}, "
            f"written although not committed {sorted(stored - committed[writer])[:10]}"
        )
        assert all(kind == ("transaction" if seq % 2 == 0 else "flush")
                   for w, seq, kind in events if w == writer)
    transactions = {w: sum(1 for i in committed[w] if i % 2 == 0) for w in (1, 2)}
    assert counters == {0: transactions[1] + transactions[2], **transactions}, (
        "an increment was lost or counted twice"
    )
    summary = (f"{journal}: {2 * STEPS} steps, {2 * STEPS - timed_out} committed, "
               f"{timed_out} refused (LockWaitTimeoutException, SerializationFailureException; "
               f"busy_timeout {BUSY_TIMEOUT} ms)")
    print(f"\n{summary}")
    record_property("writers", summary)
