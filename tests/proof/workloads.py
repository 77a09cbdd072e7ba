"""The programs the proof tests run as processes of their own (`python -m
tests.proof.workloads KIND ...`): a writer that is killed mid-flush, one of two writers on one
SQLite file, and a long insert-and-clear run measured with tracemalloc.

Each speaks line by line on stdout, flushed at once, so that what a killed process said last
is exactly what it had done: `done k` is printed only after `flush()` returned.

The crash writer's flush k (k = 1, 2, ...) is recognisable in the database:

- inserts `batch` rows with `batch = k`, `seq = 0 .. batch-1`;
- updates every row of batch k-1 (`updated_by = k`, a new `value`);
- removes the even rows of batch k-2 and what is left of batch k-3 (its odd rows);
- inserts its ledger row, `Ledger(id=k)`.

So after K committed flushes the tables hold exactly `expected_items(K, batch)`, whatever
happened to the flushes after K; `row_checksum` ties each row's columns together.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
import zlib
from typing import Any

from orm import (
    ORM,
    LockWaitTimeoutException,
    PrimaryKey,
    Property,
    SerializationFailureException,
    entity,
)


@entity(table_name="proof_item")
class Item:
    id: int = PrimaryKey()
    batch: int = Property(index=True)
    seq: int
    value: int
    note: str
    checksum: int
    updated_by: int | None = None


@entity(table_name="proof_ledger")
class Ledger:
    id: int = PrimaryKey(autoincrement=False)
    rows: int


@entity(table_name="proof_counter")
class Counter:
    id: int = PrimaryKey(autoincrement=False)
    value: int = 0


@entity(table_name="proof_event")
class Event:
    id: int = PrimaryKey()
    writer: int
    seq: int
    kind: str


@entity(table_name="proof_record")
class Record:
    id: int = PrimaryKey()
    chunk: int = Property(index=True)
    name: str
    email: str
    score: float


CRASH_ENTITIES = [Item, Ledger]
WRITER_ENTITIES = [Counter, Event]
MEMORY_ENTITIES = [Record]


# -- the crash writer's data ----------------------------------------------------------------------


def first_value(batch: int, seq: int) -> int:
    return (batch * 7919 + seq * 104729) % 1_000_003


def updated_value(batch: int, seq: int) -> int:
    return (first_value(batch, seq) * 31 + 7) % 1_000_003


def note(batch: int, seq: int) -> str:
    return f"batch {batch} row {seq} " + "x" * (seq % 40)


def row_checksum(batch: int, seq: int, value: int, updated_by: int | None) -> int:
    return zlib.crc32(f"{batch}/{seq}/{value}/{updated_by}".encode())


def expected_items(committed: int, size: int) -> set[tuple[int, int, int, int | None]]:
    """(batch, seq, value, updated_by) of every row after flushes 1..committed."""
    out: set[tuple[int, int, int, int | None]] = set()
    if committed >= 1:
        k = committed
        out.update((k, s, first_value(k, s), None) for s in range(size))
    if committed >= 2:
        k = committed - 1
        out.update((k, s, updated_value(k, s), k + 1) for s in range(size))
    if committed >= 3:
        k = committed - 2
        out.update((k, s, updated_value(k, s), k + 1) for s in range(1, size, 2))
    return out


def _crash_writer(orm: ORM, size: int) -> None:
    em = orm.em.fork()
    last = em.connection.query("select max(id) from proof_ledger")[0][0] or 0
    print(f"ready {last}", flush=True)
    k = last + 1
    while True:
        em.clear()
        # read everything first: in FlushMode.AUTO a query over Item with pending changes
        # would flush them as a transaction of their own
        previous = em.find(Item, {"batch": k - 1})
        older = em.find(Item, {"batch": {"$in": [k - 2, k - 3]}})
        for item in previous:
            item.value = updated_value(item.batch, item.seq)
            item.updated_by = k
            item.checksum = row_checksum(item.batch, item.seq, item.value, k)
        for item in older:
            if item.batch == k - 3 or item.seq % 2 == 0:
                em.remove(item)
        for seq in range(size):
            value = first_value(k, seq)
            em.persist(Item(batch=k, seq=seq, value=value, note=note(k, seq),
                            checksum=row_checksum(k, seq, value, None)))
        em.persist(Ledger(id=k, rows=size))
        print(f"begin {k}", flush=True)
        started = time.perf_counter()
        em.flush()
        print(f"done {k} {time.perf_counter() - started:.4f}", flush=True)
        k += 1


# -- one of two writers ---------------------------------------------------------------------------


def _writer(orm: ORM, writer: int, count: int) -> None:
    """Even steps: a transaction that increments the shared counter (id 0) and this writer's
    own (id = writer), and inserts an event. Odd steps: a flush inserting an event. Each
    step reports `commit i` or `timeout i` (a LockWaitTimeoutException or, in WAL, a
    SerializationFailureException); anything else ends the program with `error`."""
    print("ready", flush=True)
    sys.stdin.readline()  # both writers start together
    for i in range(count):
        try:
            if i % 2 == 0:
                with orm.em.fork().transaction() as tx:
                    shared = tx.find_one_or_fail(Counter, 0)
                    mine = tx.find_one_or_fail(Counter, writer)
                    shared.value += 1
                    mine.value += 1
                    tx.persist(Event(writer=writer, seq=i, kind="transaction"))
            else:
                em = orm.em.fork()
                em.persist(Event(writer=writer, seq=i, kind="flush")).flush()
        except (LockWaitTimeoutException, SerializationFailureException):
            # a lock not had in time; in WAL, a transaction whose reads another writer's
            # commit made stale (refused at once): both wrote nothing, both to retry
            print(f"timeout {i}", flush=True)
        else:
            print(f"commit {i}", flush=True)


# -- memory -----------------------------------------------------------------------------------------


def _memory(orm: ORM, total: int, chunk: int, warm: int, keep: bool) -> None:
    """Insert `total` records `chunk` at a time; each flush also updates a hundred records
    of the chunk before (loaded by a query) and removes ten of them, then the EntityManager
    is cleared. tracemalloc's traced memory after `warm` chunks and at the end. `keep` holds on
    to every record (what a leak would do), to show the measurement sees it."""
    from orm import diff_backend

    em = orm.em.fork()
    kept: list[Any] = []
    tracemalloc.start()
    started = time.perf_counter()
    baseline = 0
    chunks = total // chunk
    for c in range(chunks):
        records = em.find(Record, {"chunk": c - 1}, order_by={"id": "asc"}, limit=100)
        for j, record in enumerate(records):
            if j % 10 == 0:
                em.remove(record)
            else:
                record.score += 1
        records += [
            Record(chunk=c, name=f"record {c}-{j}", email=f"r{c}.{j}@example.org",
                   score=j / 7)
            for j in range(chunk)
        ]
        for record in records[-chunk:]:
            em.persist(record)
        em.flush()
        em.clear()
        if keep:
            kept.extend(records[-chunk:])
        del records
        if c + 1 == warm:
            gc.collect()
            baseline = tracemalloc.get_traced_memory()[0]
    gc.collect()
    final, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stored = orm.em.fork().count(Record)
    print(json.dumps({
        "backend": diff_backend(), "total": total, "chunk": chunk, "warm": warm,
        "baseline": baseline, "final": final, "growth": final - baseline, "peak": peak,
        "stored": stored, "seconds": round(time.perf_counter() - started, 2),
        "kept": len(kept),
    }), flush=True)


# -- command line -----------------------------------------------------------------------------------


def _open(args: argparse.Namespace, entities: list[type]) -> ORM:
    options: dict[str, Any] = {}
    if args.url:
        options.update(client_url=args.url, schema=args.schema)
    else:
        options.update(db_name=args.path)
        if args.journal:
            options["journal_mode"] = args.journal
        if args.busy_timeout is not None:
            options["busy_timeout"] = args.busy_timeout
    return ORM.init(entities=entities, **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.proof.workloads")
    parser.add_argument("kind", choices=["crash", "writer", "memory"])
    parser.add_argument("--path", help="SQLite file")
    parser.add_argument("--url", help="PostgreSQL URL (with --schema)")
    parser.add_argument("--schema")
    parser.add_argument("--journal")
    parser.add_argument("--busy-timeout", type=int)
    parser.add_argument("--create", action="store_true", help="create the tables first")
    parser.add_argument("--size", type=int, default=2000, help="crash: rows per batch")
    parser.add_argument("--writer", type=int, default=1)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    entities = {"crash": CRASH_ENTITIES, "writer": WRITER_ENTITIES,
                "memory": MEMORY_ENTITIES}[args.kind]
    orm = _open(args, entities)
    if args.create:
        if args.url:
            orm.schema.refresh_database()
        else:
            orm.schema.create_schema()
    try:
        if args.kind == "crash":
            _crash_writer(orm, args.size)
        elif args.kind == "writer":
            _writer(orm, args.writer, args.count)
        else:
            _memory(orm, args.count, args.chunk, args.warm, args.keep)
    finally:
        orm.close()


if __name__ == "__main__":
    main()
