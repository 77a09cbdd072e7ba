"""Database templates and the independent check after every cell, with raw sqlite3 only
(on PostgreSQL the rows come from ``_pg.Server.read_rows``, checked by the same rules).

The parent process never imports a library under test. It creates the schema (and, for every
workload but W1, the N seed rows) itself, copies that template to a fresh file for each cell,
and afterwards reads the file back row by row and compares it with what the workload must have
produced. A library that skipped work, wrote a different datetime format, touched the wrong rows
or wrote anything during a read-only workload fails here, whatever it reported.
"""

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from _common import (
    BASE_TIME,
    INSERT_SQL,
    SCHEMA_DDL,
    SELECT_ALL_SQL,
    Observations,
    committed_fingerprint,
    is_touched,
    lookup_pks,
    row_values,
    touched_count,
)

Row = tuple[Any, ...]

#: workloads that time whole processes (see _common.time_startup_script / time_import)
STARTUP_WORKLOADS = ("START", "IMPORT")

#: How many differing rows a failure message quotes.
_EXAMPLES = 2


def create_template(path: str, n: int) -> None:
    """Create the shared schema at ``path`` and insert seed rows 0..n-1 (ids 1..n)."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            for ddl in SCHEMA_DDL:
                conn.execute(ddl)
            conn.executemany(
                INSERT_SQL,
                (
                    (
                        f"User {i}",
                        f"user{i}@example.com",
                        "secret",
                        "",
                        i % 90,
                        (BASE_TIME + timedelta(seconds=i)).isoformat(" "),
                    )
                    for i in range(n)
                ),
            )
    finally:
        conn.close()


def verify(
    workload: str,
    path: str,
    n: int,
    observations: Observations,
    rows: Callable[[], Iterable[Row]] | None = None,
) -> str | None:
    """Check the database and the cell's report after ``workload``; ``None`` if correct.

    ``n`` is the number of seed rows (for W1: the number of rows that must have been inserted;
    for START and IMPORT: the number of whole-process runs, each of which must have succeeded).
    ``rows`` reads the table in id order, ``created_at`` as SQLite's text (default: the SQLite
    file at ``path``).
    """
    read = rows if rows is not None else lambda: _read_rows(path)
    try:
        if workload == "W1":
            return _verify_inserted(read(), n)
        if workload in STARTUP_WORKLOADS:
            # the runs wrote their own databases (checked by the cell); this one stays empty
            return _verify_rows(read(), iter(())) or _verify_observations(
                workload, n, observations
            )
        problem = _verify_rows(read(), _expected_rows(workload, n))
        if problem:
            return problem
        return _verify_observations(workload, n, observations)
    except sqlite3.Error as exc:
        return f"cannot read the database back: {exc}"


def verify_committed(
    path: str,
    committed: list[int] | None,
    fingerprint: Callable[[], list[int]] | None = None,
) -> str | None:
    """The state another connection saw right after the timed block must be the final one
    (``fingerprint`` reads the final state; default: the SQLite file at ``path``)."""
    if committed is None:
        return None
    final = fingerprint() if fingerprint is not None else committed_fingerprint(path)
    if committed != final:
        return (
            f"not committed inside the timed block: right after it another connection saw "
            f"(rows, age total) = {tuple(committed)}, the final database has {tuple(final)}"
        )
    return None


def _read_rows(path: str) -> Iterator[Row]:
    conn = sqlite3.connect(path)
    try:
        yield from conn.execute(SELECT_ALL_SQL + " order by id")
    finally:
        conn.close()


def _expected_rows(workload: str, n: int) -> Iterator[Row]:
    """The rows, in id order, that must be in the database after a workload on the seed."""
    for i in range(n):
        row = row_values(i)
        if workload == "W3" and is_touched(i + 1):
            yield row[:5] + (row[5] + 1,) + row[6:]
        elif workload == "W6" and is_touched(i + 1):
            continue
        else:
            yield row


def _verify_rows(rows: Iterable[Row], expected: Iterable[Row]) -> str | None:
    """Merge-join actual and expected rows on id; describe missing, extra and differing rows."""
    missing = extra = differing = 0
    examples: list[str] = []
    actual_iter, expected_iter = iter(rows), iter(expected)
    actual, want = next(actual_iter, None), next(expected_iter, None)
    while actual is not None or want is not None:
        if want is None or (actual is not None and actual[0] < want[0]):
            extra += 1
            if len(examples) < _EXAMPLES:
                examples.append(f"unexpected row {actual!r}")
            actual = next(actual_iter, None)
        elif actual is None or want[0] < actual[0]:
            missing += 1
            if len(examples) < _EXAMPLES:
                examples.append(f"missing row id={want[0]}")
            want = next(expected_iter, None)
        else:
            if actual != want:
                differing += 1
                if len(examples) < _EXAMPLES:
                    examples.append(f"id={want[0]}: expected {want!r}, found {actual!r}")
            actual, want = next(actual_iter, None), next(expected_iter, None)
    if missing or extra or differing:
        return f"{missing} rows missing, {extra} unexpected, {differing} differ; " + "; ".join(
            examples
        )
    return None


def _verify_inserted(rows: Iterable[Row], n: int) -> str | None:
    """W1: exactly rows 0..n-1, in any id order, each with exactly the expected values."""
    seen = bytearray(n)
    count = wrong = 0
    examples: list[str] = []
    for row in rows:
        count += 1
        name = row[1]
        index = int(name[5:]) if isinstance(name, str) and name[5:].isdigit() else -1
        if 0 <= index < n and not seen[index] and row[1:] == row_values(index)[1:]:
            seen[index] = 1
            continue
        wrong += 1
        if len(examples) < _EXAMPLES:
            expected = row_values(index)[1:] if 0 <= index < n else "a row 'User 0'..'User N-1'"
            examples.append(f"id={row[0]}: expected {expected!r}, found {row[1:]!r}")
    if count != n or wrong:
        missing = n - sum(seen)
        return "; ".join(
            [f"{count} rows (expected {n}), {missing} missing, {wrong} wrong", *examples]
        )
    return None


def _verify_observations(workload: str, n: int, observations: Observations) -> str | None:
    """Compare what the cell says it loaded or found with what the seed implies."""
    if workload in ("W2", "MEM"):
        expected = {"loaded": n, "age_sum": sum(i % 90 for i in range(n))}
    elif workload == "W5":
        pks = lookup_pks(n)
        expected = {"found": len(pks), "age_sum": sum((pk - 1) % 90 for pk in pks)}
    elif workload == "W3":
        expected = {"updated": touched_count(n)}
    elif workload == "W4":
        expected = {"loaded": n}
    elif workload == "W6":
        expected = {"removed": touched_count(n)}
    elif workload == "START":
        expected = {"scripts_ok": n}
    elif workload == "IMPORT":
        expected = {"imports_ok": n}
    else:
        return None
    got = {key: observations.get(key) for key in expected}
    if got != expected:
        return f"cell reported {got}, expected {expected}"
    return None
