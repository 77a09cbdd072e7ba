"""Connections: statements, transactions with savepoints, and the query log in MikroORM's
format, for any driver (`Connection`). The drivers' connections live with their platforms:
`platforms.sqlite_connection` (the one `sqlite3` connection of an SQLite ORM) and
`platforms.postgresql_connection` (a pool of psycopg connections).

Every driver runs in autocommit mode and the base class issues `begin`, `commit`,
`rollback` and savepoints itself, so that every transaction boundary is explicit and shows in
the log the same way on every database. Logging costs nothing when it is off: the flag is
checked once per statement, never per row.

A subclass says how a statement gets a driver connection (`_take`/`_give`: SQLite locks its
single connection, PostgreSQL borrows one from its pool), how a transaction holds one
(`_hold`/`_unhold`), whose transaction state the calling thread sees (`_state`), and what its
driver's errors are (`_driver_errors`); the bookkeeping (depth, savepoint names, undo frames)
is written once, here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from . import errors
from ._typing import TYPE_CHECKING
from .platforms.base import Platform

if TYPE_CHECKING:
    from typing import Any

__all__ = ["Connection", "TransactionState", "FETCH_CHUNK"]


#: rows fetched (and hydrated) at a time by query_chunks
FETCH_CHUNK = 1000

ResolveColumn = Callable[[str, str], tuple[str | None, str | None]]


#: what a driver raises for a parameter it cannot send (a str holding a lone surrogate, an
#: int beyond 64 bits): the user's value, not the database, is at fault
_UNBINDABLE = (UnicodeEncodeError, OverflowError)


def _unbindable(exc: Exception, sql: str, params: Any) -> errors.ValidationError:
    """A ValidationError naming the value a statement could not bind and why."""
    if isinstance(exc, UnicodeEncodeError):
        bad: Any = exc.object
        reason = "it holds a character that cannot be encoded as UTF-8 (a lone surrogate)"
    else:
        ints = [p for p in params or () if isinstance(p, int) and not -(2**63) <= p < 2**63]
        bad = ints[0] if ints else None
        reason = "it does not fit the database's 64-bit integers"
    return errors.ValidationError(
        f"The value {errors._short(bad, 60)} cannot be stored or compared: {reason}. Fix the value; "
        f"nothing of this statement was written. The statement was: {sql}"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class TransactionState:
    """The open transaction of one holder (the whole connection on SQLite, one thread on
    PostgreSQL): how many transactions and savepoints are open, and per level, innermost
    last, what to undo in memory if it is rolled back (see `Connection.on_rollback`)."""

    __slots__ = ("depth", "undo")

    def __init__(self) -> None:
        self.depth = 0
        self.undo: list[list[Callable[[], None]]] = []


class Connection:
    """Driver-neutral: logging, error mapping, depth and savepoints, undo frames.

    Subclasses implement the driver hooks below (`_take`, `_give`, `_hold`, `_unhold`,
    `_held`, `_state`, `_server_in_transaction`, `_commit_refusal`, `_executemany`, `close`).
    """

    #: the driver's exception classes, mapped to ours through `platform.map_error`
    _driver_errors: tuple[type[BaseException], ...] = ()
    #: the database as messages name it (never with a password); a subclass sets it, or
    #: makes it a property computed on first use
    _label: str = ""

    def __init__(
        self,
        platform: Platform,
        *,
        log_queries: bool = False,
        resolve_column: ResolveColumn | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.platform = platform
        self.log_queries = log_queries
        self.timeout = timeout
        self._resolve_column = resolve_column
        #: how many parameters one statement may bind
        self.max_variables = 999

    def describe(self) -> str:
        """The database, as log lines and `orm debug` name it (never with a password)."""
        return self._label

    # -- driver hooks -----------------------------------------------------------------------
    def _state(self) -> TransactionState:
        """The transaction state the calling thread sees."""
        raise NotImplementedError

    def _take(self) -> Any:
        """The driver connection one statement runs on, held until `_give`."""
        raise NotImplementedError

    def _give(self, raw: Any) -> None:
        raise NotImplementedError

    def _hold(self) -> None:
        """Hold the driver connection for one more level of `begin` or `locked()`; the
        statements of the calling thread run on it until the matching `_unhold`."""
        raise NotImplementedError

    def _unhold(self) -> None:
        raise NotImplementedError

    def _held(self) -> Any:
        """The driver connection the calling thread holds (inside `_hold`)."""
        raise NotImplementedError

    #: how often a read or a `begin` runs again after finding its connection closed while
    #: idle (every pooled connection may be: a server restart closes them all)
    _stale_retries = 0

    def _stale(self, raw: Any) -> bool:
        """Whether a statement failed because `raw`, a connection the calling thread held
        for no transaction, had been closed by the server while idle (so nothing ran and
        running it again on another connection is safe)."""
        return False

    def _server_in_transaction(self, raw: Any) -> bool:
        """The database still has the transaction open (it may have ended it on its own)."""
        raise NotImplementedError

    def _commit_refusal(self, raw: Any) -> errors.DriverException | None:
        """Why the open transaction cannot be committed, or None when it can."""
        if not self._server_in_transaction(raw):
            return errors.DriverException(
                "The database rolled this transaction back on its own (a trigger's RAISE, "
                "say) before it could be committed: nothing of it was written."
            )
        return None

    def _executemany(self, raw: Any, sql: str, rows: list[Sequence[Any]]) -> Any:
        return raw.executemany(sql, rows)

    def close(self) -> None:
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------
    @property
    def raw(self) -> Any:
        """The driver connection (tests and tools only: it bypasses logging and errors)."""
        raise NotImplementedError

    @property
    def is_open(self) -> bool:
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        return self._state().depth > 0

    @property
    def in_own_transaction(self) -> bool:
        """Whether the calling thread is inside a transaction it began (not merely another
        thread's, which a shared connection would also report)."""
        return self._state().depth > 0

    @property
    def depth(self) -> int:
        """How many transactions and savepoints are open (meaningful to the thread holding
        the connection, which is the one inside them)."""
        return self._state().depth

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Run `undo` if the innermost open transaction or savepoint is rolled back, or any
        enclosing one before the outermost commits. A flush inside a transaction registers
        here how to make what it wrote pending again, so the Unit of Work never believes
        in rows the database does not hold. Outside a transaction this does nothing."""
        state = self._state()
        if state.depth:
            state.undo[-1].append(undo)

    def _run_undo(self, actions: list[Callable[[], None]]) -> None:
        """Newest first, except that actions marked `late` (re-reading what queries saw) run
        after all the others, once the entities are back to their state before the
        transaction; every action runs even if one fails (the first error is raised)."""
        failure: BaseException | None = None
        ordered = [u for u in reversed(actions) if not getattr(u, "late", False)]
        ordered += [u for u in actions if getattr(u, "late", False)]
        for undo in ordered:
            try:
                undo()
            except BaseException as exc:  # pragma: no cover - undo actions do not raise
                failure = failure or exc
        if failure is not None:  # pragma: no cover
            raise failure

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

    def _error(self, exc: BaseException, sql: str, params: Any) -> errors.DriverException:
        shown = self.platform.inline_params(sql, params) if params else sql
        return self.platform.map_error(  # type: ignore[attr-defined]
            exc, shown, params, self._resolve_column, database=self._label
        )

    # -- statements -------------------------------------------------------------------------
    def query(
        self, sql: str, params: Sequence[Any] = (), *, retry_stale: bool = True
    ) -> list[tuple]:
        """Run a SELECT and return all rows (tuples, in the selected column order).
        `retry_stale=False` for a write that returns rows (`insert ... returning`): the
        server may have closed the connection after the write committed, so it is never
        run a second time."""
        started = time.perf_counter()
        raw = self._take()
        try:
            attempts = self._stale_retries if retry_stale else 0
            while True:
                try:
                    rows = raw.execute(sql, params).fetchall()
                    break
                except self._driver_errors:
                    if attempts <= 0 or not self._stale(raw):
                        raise
                # a pooled connection the server closed while it was idle (a restart, an
                # idle timeout): nothing ran, so the read runs again on another one
                attempts -= 1
                self._give(raw)
                raw = None
                raw = self._take()
        except self._driver_errors as exc:
            raise self._error(exc, sql, params) from exc
        except _UNBINDABLE as exc:
            raise _unbindable(exc, sql, params) from exc
        finally:
            if raw is not None:
                self._give(raw)
        if self.log_queries:
            self._log(sql, params, started, _plural(len(rows), "result"))
        return rows

    def query_chunks(
        self, sql: str, params: Sequence[Any], consume: Callable[[list[tuple]], None]
    ) -> int:
        """Run a SELECT and hand its rows to `consume` FETCH_CHUNK at a time; returns the
        row count. Each chunk is processed while it is still in the CPU cache: fetching a
        million rows first and hydrating them afterwards doubled the cost per row."""
        started = time.perf_counter()
        count = 0
        raw = self._take()
        try:
            attempts = self._stale_retries
            while True:
                try:
                    cursor = raw.execute(sql, params)
                    break
                except self._driver_errors:
                    if attempts <= 0 or not self._stale(raw):
                        raise
                # as in query(): no row was read yet, so the read runs again on another
                # connection
                attempts -= 1
                self._give(raw)
                raw = None
                raw = self._take()
            fetch = cursor.fetchmany
            while True:
                rows = fetch(FETCH_CHUNK)
                if not rows:
                    break
                count += len(rows)
                consume(rows)
        except self._driver_errors as exc:
            raise self._error(exc, sql, params) from exc
        except _UNBINDABLE as exc:
            raise _unbindable(exc, sql, params) from exc
        finally:
            if raw is not None:
                self._give(raw)
        if self.log_queries:
            self._log(sql, params, started, _plural(count, "result"))
        return count

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one write statement; the cursor tells rowcount (and on SQLite lastrowid)."""
        started = time.perf_counter()
        raw = self._take()
        try:
            cursor = raw.execute(sql, params)
        except self._driver_errors as exc:
            raise self._error(exc, sql, params) from exc
        except _UNBINDABLE as exc:
            raise _unbindable(exc, sql, params) from exc
        finally:
            self._give(raw)
        if self.log_queries:
            affected = max(cursor.rowcount, 0)
            self._log(sql, params, started, f"{_plural(affected, 'row')} affected")
        return cursor

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> int:
        """Run one statement for many parameter rows; returns the rows affected. The log
        shows each row's statement, the timing on the last."""
        started = time.perf_counter()
        raw = self._take()
        try:
            cursor = self._executemany(raw, sql, rows)
        except self._driver_errors as exc:
            raise self._error(exc, sql, rows[0] if rows else ()) from exc
        except _UNBINDABLE as exc:
            raise _unbindable(exc, sql, [v for r in rows for v in r]) from exc
        finally:
            self._give(raw)
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
        """A transaction statement, on the connection the calling thread holds."""
        started = time.perf_counter()
        try:
            self._held().execute(sql)
        except self._driver_errors as exc:
            raise self._error(exc, sql, ()) from exc
        if self.log_queries:
            self._log(sql, (), started, None)

    def locked(self) -> _Locked:
        """Hold the connection for a block (statements and session settings that belong
        together run on the same driver connection, and no other thread's in between on
        SQLite)."""
        return _Locked(self)

    def begin(self) -> None:
        """Open a transaction, or a savepoint inside the current one. The calling thread
        holds the connection until the matching commit or rollback."""
        self._hold()
        state = self._state()
        try:
            if state.depth == 0:
                attempts = self._stale_retries
                while True:
                    try:
                        self._control("begin")
                        break
                    except errors.DriverException:
                        if attempts <= 0 or not self._stale(self._held()):
                            raise
                    # the pooled connection was closed by the server while idle: nothing
                    # began, so begin on another one
                    attempts -= 1
                    self._unhold()
                    self._hold()
            else:
                self._control(f"savepoint trx{state.depth}")
        except BaseException:
            self._unhold()
            raise
        state.depth += 1
        state.undo.append([])

    def commit(self) -> None:
        """Commit the transaction, or release the innermost savepoint. On failure nothing
        changes here: the caller rolls back (so a failed COMMIT, a locked database say, is
        still undone, and the connection released)."""
        state = self._state()
        if state.depth == 0:
            return
        refusal = self._commit_refusal(self._held())
        if refusal is not None:
            raise refusal
        if state.depth == 1:
            self._control("commit")
        else:
            self._control(f"release savepoint trx{state.depth - 1}")
        state.depth -= 1
        undo = state.undo.pop()
        if state.undo:  # a released savepoint is undone with the enclosing transaction
            state.undo[-1].extend(undo)
        self._unhold()

    def rollback(self) -> None:
        """Roll back the transaction, or to the innermost savepoint; only the bookkeeping
        when the database already ended the transaction itself. What the flushes inside it
        wrote becomes pending again in their Units of Work (see on_rollback)."""
        state = self._state()
        if state.depth == 0:
            return
        state.depth -= 1
        undo = state.undo.pop()
        try:
            if self._server_in_transaction(self._held()):
                if state.depth == 0:
                    self._control("rollback")
                else:
                    self._control(f"rollback to savepoint trx{state.depth}")
                    self._control(f"release savepoint trx{state.depth}")
        finally:
            try:
                self._run_undo(undo)
            finally:
                if state.undo:
                    # what queries read in a rolled-back savepoint may still come from the
                    # enclosing transaction's writes: read again if that one rolls back too
                    state.undo[-1].extend(u for u in undo if getattr(u, "late", False))
                self._unhold()

    def transaction(self) -> _Transaction:
        """`begin` ... `commit`, or `rollback` if the block (or the commit) raises; savepoints
        when nested."""
        return _Transaction(self)


class _Locked:
    """`with connection.locked():` (a class, not a contextlib generator: create_schema uses
    it, and contextlib is a module a tiny script need not import)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __enter__(self) -> Connection:
        self._conn._hold()
        return self._conn

    def __exit__(self, *exc: object) -> None:
        self._conn._unhold()


class _Transaction:
    """`with connection.transaction():` (see _Locked for why a class)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __enter__(self) -> Connection:
        self._conn.begin()
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self._conn.rollback()
            return
        try:
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            raise


def __getattr__(name: str) -> Any:
    # `orm.connection.SqliteConnection`, as before it moved to the SQLite platform's package
    if name == "SqliteConnection":
        from .platforms.sqlite_connection import SqliteConnection

        return SqliteConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
