"""The one `sqlite3` connection of an ORM: statements, transactions with savepoints, and the
query log in MikroORM's format.

The connection runs in autocommit mode (`isolation_level=None`) and issues `begin`,
`commit`, `rollback` and savepoints itself, so that every transaction boundary is explicit and
shows in the log. Logging costs nothing when it is off: the flag is checked once per
statement, never per row.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from . import errors
from .platforms.sqlite import SqlitePlatform

__all__ = ["Connection"]


#: rows fetched (and hydrated) at a time by query_chunks
FETCH_CHUNK = 1000


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str | None, value: Any) -> bool:
    if pattern is None or value is None:
        return False
    return _compiled(pattern).search(str(value)) is not None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Connection:
    """A sqlite3 connection plus transaction depth and query logging."""

    def __init__(
        self,
        db_name: str,
        platform: SqlitePlatform,
        *,
        log_queries: bool = False,
        resolve_column: Callable[[str, str], tuple[str | None, str | None]] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.platform = platform
        self.db_name = db_name
        self.log_queries = log_queries
        self.timeout = timeout
        #: one transaction at a time on the shared connection: forks used from several
        #: threads (request contexts) take turns instead of interleaving their statements
        self._lock = threading.RLock()
        self._resolve_column = resolve_column
        self._depth = 0
        #: per open transaction or savepoint, innermost last: what to undo in memory if it
        #: is rolled back (see on_rollback)
        self._undo: list[list[Callable[[], None]]] = []
        #: the database as the user named it (plus the absolute path of a file), for messages
        #: about the file itself: not a database, cannot be opened
        self._label = repr(db_name)
        if db_name != ":memory:" and not db_name.startswith("file:"):
            # os.path rather than pathlib: opening a database must not import pathlib
            absolute = os.path.realpath(os.path.expanduser(db_name))
            self._label += f" ({absolute})"
            folder = os.path.dirname(absolute)
            if not os.path.isdir(folder):
                raise errors.ConnectionException(
                    f"Cannot open database {db_name!r}: folder {folder!r} does not exist."
                )
        try:
            raw = sqlite3.connect(
                db_name,
                isolation_level=None,
                check_same_thread=False,
                timeout=timeout,
                uri=db_name.startswith("file:"),
            )
            raw.execute("pragma foreign_keys = on")
            raw.create_function("regexp", 2, _regexp, deterministic=True)
        except sqlite3.Error as exc:
            raise errors.ConnectionException(
                f"Cannot open database {db_name!r}: {exc}"
            ) from exc
        self._raw: sqlite3.Connection | None = raw
        try:
            limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except AttributeError:  # pragma: no cover - Python < 3.11
            limit = 999
        #: how many `?` one statement may hold
        self.max_variables = limit

    # -- state ------------------------------------------------------------------------------
    @property
    def raw(self) -> sqlite3.Connection:
        raw = self._raw
        if raw is None:
            raise errors.ValidationError(
                "This ORM is closed (orm.close() was called); create a new one with ORM.init()."
            )
        return raw

    @property
    def is_open(self) -> bool:
        return self._raw is not None

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @property
    def depth(self) -> int:
        """How many transactions and savepoints are open (meaningful to the thread holding
        the connection, which is the one inside them)."""
        return self._depth

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Run `undo` if the innermost open transaction or savepoint is rolled back, or any
        enclosing one before the outermost commits. A flush inside a transaction registers
        here how to make what it wrote pending again, so the Unit of Work never believes
        in rows the database does not hold. Outside a transaction this does nothing."""
        if self._depth:
            self._undo[-1].append(undo)

    def _run_undo(self, actions: list[Callable[[], None]]) -> None:
        """Newest first; every action runs even if one fails (the first error is raised)."""
        failure: BaseException | None = None
        for undo in reversed(actions):
            try:
                undo()
            except BaseException as exc:  # pragma: no cover - undo actions do not raise
                failure = failure or exc
        if failure is not None:  # pragma: no cover
            raise failure

    def close(self) -> None:
        """Close the connection; an open transaction is rolled back (and what flushes
        inside it wrote becomes pending again)."""
        raw = self._raw
        if raw is not None:
            pending = [undo for frame in self._undo for undo in frame]
            try:
                if self._depth and raw.in_transaction:
                    raw.execute("rollback")
            except sqlite3.Error as exc:
                raise self._error(exc, "rollback", ()) from exc
            finally:
                # closed even when the rollback fails: the file's lock must not outlive us
                raw.close()
                self._raw = None
                self._depth = 0
                self._undo = []
                self._run_undo(pending)

    # -- logging ----------------------------------------------------------------------------
    def _log(self, sql: str, params: Any, started: float, outcome: str | None) -> None:
        took = int((time.perf_counter() - started) * 1000)
        text = self.platform.inline_params(sql, params) if params else sql
        line = f"[query] {text}"
        if outcome is not None:
            line += f" [took {took} ms, {outcome}]"
        self.emit(line)

    def emit(self, line: str) -> None:
        # `logging` is imported when a line is logged (query logging on), not at start-up
        import logging

        logging.getLogger("orm.query").info(line)

    def _error(self, exc: sqlite3.Error, sql: str, params: Any) -> errors.DriverException:
        shown = self.platform.inline_params(sql, params) if params else sql
        return self.platform.map_error(
            exc, shown, params, self._resolve_column, database=self._label
        )


    # -- statements -------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a SELECT and return all rows (tuples, in the selected column order)."""
        raw = self.raw
        started = time.perf_counter()
        try:
            self._acquire()
            try:
                rows = raw.execute(sql, params).fetchall()
            finally:
                self._lock.release()
        except sqlite3.Error as exc:
            raise self._error(exc, sql, params) from exc
        if self.log_queries:
            self._log(sql, params, started, _plural(len(rows), "result"))
        return rows

    def query_chunks(
        self, sql: str, params: Sequence[Any], consume: Callable[[list[tuple]], None]
    ) -> int:
        """Run a SELECT and hand its rows to `consume` FETCH_CHUNK at a time; returns the
        row count. Each chunk is processed while it is still in the CPU cache: fetching a
        million rows first and hydrating them afterwards doubled the cost per row."""
        raw = self.raw
        started = time.perf_counter()
        count = 0
        try:
            self._acquire()
            try:
                cursor = raw.execute(sql, params)
                fetch = cursor.fetchmany
                while True:
                    rows = fetch(FETCH_CHUNK)
                    if not rows:
                        break
                    count += len(rows)
                    consume(rows)
            finally:
                self._lock.release()
        except sqlite3.Error as exc:
            raise self._error(exc, sql, params) from exc
        if self.log_queries:
            self._log(sql, params, started, _plural(count, "result"))
        return count

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one write statement; the cursor tells rowcount and lastrowid."""
        raw = self.raw
        started = time.perf_counter()
        try:
            self._acquire()
            try:
                cursor = raw.execute(sql, params)
            finally:
                self._lock.release()
        except sqlite3.Error as exc:
            raise self._error(exc, sql, params) from exc
        if self.log_queries:
            affected = max(cursor.rowcount, 0)
            self._log(sql, params, started, f"{_plural(affected, 'row')} affected")
        return cursor

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> int:
        """Run one statement for many parameter rows; returns the rows affected. The log
        shows each row's statement, the timing on the last."""
        raw = self.raw
        started = time.perf_counter()
        try:
            self._acquire()
            try:
                cursor = raw.executemany(sql, rows)
            finally:
                self._lock.release()
        except sqlite3.Error as exc:
            raise self._error(exc, sql, rows[0] if rows else ()) from exc
        affected = cursor.rowcount
        if self.log_queries:
            took = int((time.perf_counter() - started) * 1000)
            inline = self.platform.inline_params
            for r in rows[:-1]:
                self.emit(f"[query] {inline(sql, r)}")
            outcome = f"[took {took} ms, {_plural(max(affected, 0), 'row')} affected]"
            self.emit(f"[query] {inline(sql, rows[-1])} {outcome}")
        return affected

    def script(self, statements: list[str]) -> None:
        for sql in statements:
            self.execute(sql)

    # -- transactions -----------------------------------------------------------------------
    def _control(self, sql: str) -> None:
        started = time.perf_counter()
        try:
            self.raw.execute(sql)
        except sqlite3.Error as exc:
            raise self._error(exc, sql, ()) from exc
        if self.log_queries:
            self._log(sql, (), started, None)

    def _acquire(self) -> None:
        """Take the connection (reentrant). Another thread's transaction is waited for as
        long as SQLite's own busy timeout, then LockWaitTimeoutException: never forever."""
        if not self._lock.acquire(timeout=self.timeout):
            raise errors.LockWaitTimeoutException(
                f"Waited {self.timeout} s for another thread's transaction on this ORM's "
                f"connection. Keep transactions short, finish a transaction on the thread "
                f"that began it, or raise the `timeout` option."
            )

    @contextmanager
    def locked(self) -> Iterator[Connection]:
        """Hold the connection for a block (statements and pragmas that belong together)."""
        self._acquire()
        try:
            yield self
        finally:
            self._lock.release()

    def begin(self) -> None:
        """Open a transaction, or a savepoint inside the current one. The calling thread
        holds the connection until the matching commit or rollback."""
        self._acquire()
        try:
            if self._depth == 0:
                self._control("begin")
            else:
                self._control(f"savepoint trx{self._depth}")
        except BaseException:
            self._lock.release()
            raise
        self._depth += 1
        self._undo.append([])

    def commit(self) -> None:
        """Commit the transaction, or release the innermost savepoint. On failure nothing
        changes here: the caller rolls back (so a failed COMMIT, a locked database say, is
        still undone, and the connection released)."""
        if self._depth == 0:
            return
        if not self.raw.in_transaction:
            raise errors.DriverException(
                "The database rolled this transaction back on its own (a trigger's RAISE, "
                "say) before it could be committed: nothing of it was written."
            )
        if self._depth == 1:
            self._control("commit")
        else:
            self._control(f"release savepoint trx{self._depth - 1}")
        self._depth -= 1
        undo = self._undo.pop()
        if self._undo:  # a released savepoint is undone with the enclosing transaction
            self._undo[-1].extend(undo)
        self._lock.release()

    def rollback(self) -> None:
        """Roll back the transaction, or to the innermost savepoint; only the bookkeeping
        when SQLite already ended the transaction itself. What the flushes inside it wrote
        becomes pending again in their Units of Work (see on_rollback)."""
        if self._depth == 0:
            return
        self._depth -= 1
        undo = self._undo.pop()
        try:
            if self.raw.in_transaction:
                if self._depth == 0:
                    self._control("rollback")
                else:
                    self._control(f"rollback to savepoint trx{self._depth}")
                    self._control(f"release savepoint trx{self._depth}")
        finally:
            try:
                self._run_undo(undo)
            finally:
                self._lock.release()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """`begin` ... `commit`, or `rollback` if the block (or the commit) raises; savepoints
        when nested."""
        self.begin()
        try:
            yield self
            self.commit()
        except BaseException:
            self.rollback()
            raise
