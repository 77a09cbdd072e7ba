"""A pool of psycopg 3 connections behind the driver-neutral `Connection`.

psycopg is imported when a `PostgresConnection` is made, never when `orm` is: SQLite users need
nothing installed.

Threads and transactions. SQLite has one connection that threads take turns on; here each
thread has its own transaction state (depth, undo frames, and the driver connection it holds),
kept in a `threading.local`. `begin` at depth 0 takes a connection from the pool and pins it
to the calling thread until the matching outermost `commit` or `rollback` (`locked()` pins
one the same way), so forks used on different threads run their transactions concurrently,
each on its own server session. A statement outside a transaction borrows a pooled
connection for that statement only. A transaction must therefore end on the thread that
began it.

The connections run in autocommit mode and the base class issues `begin`, `commit`,
`rollback` and savepoints as SQL, so the query log reads as it does on SQLite. The isolation
level and the `schema` (as `search_path`) are session settings passed as start-up options,
so every pooled connection has them without a round trip.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from .. import errors
from ..connection import Connection, ResolveColumn, TransactionState, _plural
from .postgresql import PostgresPlatform

__all__ = ["PostgresConnection", "ISOLATION_LEVELS"]

ISOLATION_LEVELS = ("read committed", "repeatable read", "serializable")

_INSTALL = "pip install 'orm[postgresql]'"
#: how the ConnectionException of a missing driver begins (the CLI then gives no hint about
#: the connection settings)
DRIVER_MISSING = "PostgreSQL support needs psycopg 3 and psycopg-pool"

# libpq's TransactionStatus values (psycopg.pq.TransactionStatus), without importing psycopg
_IDLE, _INTRANS, _INERROR = 0, 2, 3

_CONNECT_PREFIXES = re.compile(
    r"^(connection failed:\s*)?(connection to server (at|on) .*? failed:\s*)?((FATAL|ERROR):\s*)?"
)


def _import_driver() -> tuple[Any, Any]:
    """psycopg and psycopg_pool, or a ConnectionException saying how to install them."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise errors.ConnectionException(
            f"{DRIVER_MISSING}, which cannot be imported ({exc}): install them with {_INSTALL}"
        ) from exc
    return psycopg, psycopg_pool


def _option(value: str) -> str:
    """A value inside libpq's `options`, where a space separates arguments."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


class _KnownClosed:
    """A filter on psycopg_pool's logger: its warning "discarding closed connection" for a
    connection this ORM gives back after finding it closed by the server says nothing the
    ORM has not handled (the read or `begin` ran again on another connection, or the
    ConnectionException raised names the lost connection), and would reach stderr through
    logging's last-resort handler in an application that configures no logging. Records
    about other connections (another pool's) pass."""

    def filter(self, record: Any) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (args and getattr(args[0], "_orm_known_closed", False))


_KNOWN_CLOSED = _KnownClosed()


class _AbortedPipeline:
    """A filter on psycopg's logger: when a statement of a pipelined `executemany` fails
    (a serialization failure, a unique violation), psycopg raises that error and logs a
    warning "error ignored terminating <Pipeline>: pipeline aborted" as it closes the
    pipeline. The abort is only the consequence of the error the ORM raises (mapped,
    with its message), so the warning says nothing, and would reach stderr through
    logging's last-resort handler. Other warnings pass."""

    def filter(self, record: Any) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) != 2 or not str(record.msg).startswith("error ignored terminating"):
            return True
        return type(args[1]).__name__ != "PipelineAborted"


_ABORTED_PIPELINE = _AbortedPipeline()


def _quiet_psycopg_loggers() -> None:
    import logging

    for name, known in (("psycopg.pool", _KNOWN_CLOSED), ("psycopg", _ABORTED_PIPELINE)):
        logger = logging.getLogger(name)
        if known not in logger.filters:
            logger.addFilter(known)


class _ThreadState(TransactionState):
    """One thread's transaction, plus the driver connection pinned to it and how many
    `begin`s and `locked()` blocks hold that pin."""

    __slots__ = ("conn", "holds")

    def __init__(self) -> None:
        super().__init__()
        self.conn: Any = None
        self.holds = 0


class PostgresConnection(Connection):
    """psycopg 3 connections from a `psycopg_pool.ConnectionPool` of `pool_size`.

    `client_url` (`postgresql://user:password@host:port/db`) and/or `host`, `port`, `user`,
    `password`, `db_name` (these win over the URL's). `schema` becomes the `search_path`
    (the schema is not created here). `isolation_level` is one of `ISOLATION_LEVELS`.
    `timeout` bounds both connecting and waiting for a pooled connection.
    """

    def __init__(
        self,
        platform: PostgresPlatform | None = None,
        client_url: str | None = None,
        *,
        host: str | None = None,
        port: int | str | None = None,
        user: str | None = None,
        password: str | None = None,
        db_name: str | None = None,
        schema: str | None = None,
        isolation_level: str = "read committed",
        pool_size: int = 5,
        log_queries: bool = False,
        resolve_column: ResolveColumn | None = None,
        timeout: float = 5.0,
    ) -> None:
        platform = platform if platform is not None else PostgresPlatform()
        super().__init__(
            platform, log_queries=log_queries, resolve_column=resolve_column, timeout=timeout
        )
        level = " ".join(str(isolation_level).lower().replace("_", " ").split())
        if level not in ISOLATION_LEVELS:
            raise errors.ValidationError(
                f"isolation_level {isolation_level!r} is not one of "
                f"{', '.join(repr(x) for x in ISOLATION_LEVELS)}"
            )
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise errors.ValidationError(
                f"pool_size must be a positive whole number of connections, not {pool_size!r}"
            )
        psycopg, psycopg_pool = _import_driver()
        self._psycopg = psycopg
        self._driver_errors = (psycopg.Error,)
        self.isolation_level = level
        self.schema = schema
        self.pool_size = pool_size
        self._stale_retries = pool_size
        #: the protocol counts a statement's parameters in 16 bits
        self.max_variables = 65535

        conninfo = self._conninfo(client_url, host, port, user, password, db_name, schema, level)
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        self.host = str(params.get("host") or params.get("hostaddr") or "localhost")
        self.port = str(params.get("port") or "5432")
        self.user = params.get("user")
        self.db_name = str(params.get("dbname") or params.get("user") or "")
        self._label = f"PostgreSQL database {self.db_name!r} at {self.host}:{self.port}"

        # One connection made directly first: the pool connects in the background and only
        # logs why it cannot, while the user needs the reason (refused, no such database,
        # bad password) now, in the exception.
        try:
            first = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise self._connect_error(exc) from exc

        #: the server's version as an integer, 150020 for 15.20
        self.server_version: int = first.info.server_version
        first.close()

        _quiet_psycopg_loggers()
        self._pool: Any = psycopg_pool.ConnectionPool(
            conninfo,
            kwargs={"autocommit": True},
            configure=self._configure,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            open=True,
            name=f"orm {self._label}",
        )
        self._local = threading.local()
        #: what the server said of the regular expressions filters used (see regex_problem)
        self._patterns: dict[str, str | None] = {}
        self.platform.pattern_checker = self.regex_problem  # type: ignore[attr-defined]
        #: the states that pin a connection, for close() to roll back from any thread
        self._pinned: set[_ThreadState] = set()
        self._pinned_lock = threading.Lock()

    # -- set-up -----------------------------------------------------------------------------
    @staticmethod
    def _configure(conn: Any) -> None:
        """Every pooled connection reads jsonb (and json) as its text, as SQLite gives it:
        the JSON type parses it, and snapshots compare the text the database holds. Its time
        zone is UTC, also when libpq's PGTZ names another (it wins over the start-up
        option): timestamptz values are read back in UTC, and a retype between timestamp
        and timestamptz converts as UTC."""
        from psycopg.types.string import TextLoader

        conn.adapters.register_loader("jsonb", TextLoader)
        conn.adapters.register_loader("json", TextLoader)
        if conn.info.parameter_status("TimeZone") != "UTC":
            conn.execute("set timezone to 'UTC'")

    def _conninfo(
        self,
        client_url: str | None,
        host: str | None,
        port: int | str | None,
        user: str | None,
        password: str | None,
        db_name: str | None,
        schema: str | None,
        level: str,
    ) -> str:
        conninfo_mod = self._psycopg.conninfo
        given = {"host": host, "port": port, "user": user, "password": password,
                 "dbname": db_name}
        overrides = {k: str(v) for k, v in given.items() if v is not None}
        unreadable: str | None = None
        try:
            params = conninfo_mod.conninfo_to_dict(
                conninfo_mod.make_conninfo(client_url or "", **overrides)
            )
        except self._psycopg.ProgrammingError as exc:
            from ..config import hide_password

            # libpq quotes the URL (or the token) it could not read, password and all: the
            # error is raised outside this block, so that no traceback shows the driver's
            unreadable = hide_password(str(exc), client_url)
        if unreadable is not None:
            raise errors.ValidationError(
                f"client_url is not a PostgreSQL URL "
                f"(postgresql://user:password@host:port/database; a password with special "
                f"characters is percent-encoded, or given as password=...): {unreadable}"
            )
        options = [params["options"]] if params.get("options") else []
        if schema:
            options.append("-c search_path=" + _option(self.platform.quote(schema)))
        options.append("-c default_transaction_isolation=" + _option(level))
        # aware datetimes (timestamptz) are read back in UTC, as SQLite gives them back
        options.append("-c TimeZone=UTC")
        params["options"] = " ".join(options)
        params.setdefault("connect_timeout", str(max(2, math.ceil(self.timeout))))
        return conninfo_mod.make_conninfo("", **params)

    def _connect_error(self, exc: BaseException) -> errors.ConnectionException:
        """`Cannot connect to PostgreSQL database 'x' at host:port: <reason> (<what to do>)`,
        the reason being libpq's first line without its prefixes (the rest of psycopg's
        text stays on `__cause__`)."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = _CONNECT_PREFIXES.sub("", lines[0]) if lines else type(exc).__name__
        low = reason.lower()
        if "database" in low and "does not exist" in low:
            hint = (
                f"create it (createdb -h {self.host} -p {self.port} {self.db_name}), or fix "
                f"the database name in client_url / db_name"
            )
        elif "password" in low or "authentication" in low or "role" in low:
            hint = "check the user and password in client_url (or user / password)"
        elif any(w in low for w in ("refused", "timeout", "timed out", "translate host",
                                    "no route", "unreachable", "could not connect")):
            hint = (
                "is the server running and accepting TCP/IP connections on that host and "
                "port? Check host and port in client_url (or host / port)"
            )
        else:
            hint = "check client_url (or host, port, user, password, db_name)"
        return errors.ConnectionException(f"Cannot connect to {self._label}: {reason} ({hint})")

    # -- state ------------------------------------------------------------------------------
    def _state(self) -> _ThreadState:
        try:
            return self._local.state
        except AttributeError:
            state = self._local.state = _ThreadState()
            return state

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    def _closed(self) -> errors.ValidationError:
        return errors.ValidationError(
            "This ORM is closed (orm.close() was called); create a new one with ORM.init()."
        )

    @property
    def raw(self) -> Any:
        """The psycopg connection the calling thread holds (inside a transaction or a
        `locked()` block); outside them statements borrow one from the pool per statement,
        so there is none to hand out."""
        if self._pool is None:
            raise self._closed()
        conn = self._state().conn
        if conn is None:
            raise errors.ValidationError(
                "Outside a transaction a PostgreSQL connection holds no driver connection: "
                "each statement borrows one from the pool. Use `with connection.locked():` "
                "(or a transaction) to hold one."
            )
        return conn

    # -- driver hooks -----------------------------------------------------------------------
    def _borrow(self) -> Any:
        pool = self._pool
        if pool is None:
            raise self._closed()
        try:
            return pool.getconn(timeout=self.timeout)
        except self._psycopg.Error as exc:  # PoolTimeout, PoolClosed
            if self._pool is None:
                raise self._closed() from exc
            raise self._pool_error(pool, exc) from exc

    def _pool_error(self, pool: Any, exc: BaseException) -> errors.DriverException:
        stats = pool.get_stats()
        if stats.get("pool_size", 0) >= self.pool_size and not stats.get("pool_available"):
            return errors.LockWaitTimeoutException(
                f"Waited {self.timeout} s for one of the {self.pool_size} pooled connections "
                f"to {self._label}: other threads' transactions hold them all. Keep "
                f"transactions short, finish a transaction on the thread that began it, or "
                f"raise `pool_size` (or `timeout`)."
            )
        return errors.ConnectionException(
            f"Cannot connect to {self._label}: no connection within {self.timeout} s ({exc}; "
            f"is the server running and reachable?)"
        )

    def _take(self) -> Any:
        conn = self._state().conn
        return conn if conn is not None else self._borrow()

    def _give(self, raw: Any) -> None:
        if raw is not self._state().conn:
            pool = self._pool
            if raw.closed:  # the pool replaces it; its warning is filtered (_KnownClosed)
                raw._orm_known_closed = True
            if pool is not None:
                pool.putconn(raw)
            else:  # closed meanwhile
                raw.close()

    def _hold(self) -> None:
        state = self._state()
        if state.conn is None:
            state.conn = self._borrow()
            with self._pinned_lock:
                self._pinned.add(state)
        state.holds += 1

    def _unhold(self) -> None:
        state = self._state()
        if state.holds == 0:
            return  # close() already let go of it
        state.holds -= 1
        if state.holds == 0:
            conn, state.conn = state.conn, None
            with self._pinned_lock:
                self._pinned.discard(state)
            if conn is not None:
                self._give(conn)

    def _held(self) -> Any:
        conn = self._state().conn
        if conn is None:
            raise self._closed()
        return conn

    def _stale(self, raw: Any) -> bool:
        state = self._state()
        pinned_in_transaction = state.conn is raw and state.depth > 0
        return bool(raw.closed) and not pinned_in_transaction

    def _server_in_transaction(self, raw: Any) -> bool:
        return raw.info.transaction_status in (_INTRANS, _INERROR)

    def _commit_refusal(self, raw: Any) -> errors.DriverException | None:
        status = raw.info.transaction_status
        if status == _INERROR:
            # PostgreSQL would answer COMMIT with ROLLBACK, silently: say so instead
            return errors.DriverException(
                "An earlier statement of this transaction failed, and PostgreSQL refuses "
                "every statement after it: nothing of the transaction can be committed. "
                "Roll back (and run statements that may fail in a nested transaction, a "
                "savepoint, to keep the rest)."
            )
        if status != _INTRANS:
            if raw.closed:
                return errors.ConnectionException(
                    f"The connection to {self._label} was lost inside the transaction: "
                    f"nothing of it was committed. Roll back and run it again."
                )
            return super()._commit_refusal(raw)
        return None

    def regex_problem(self, pattern: str) -> str | None:
        """Why the server refuses `pattern` as a regular expression (SQLSTATE 2201B:
        invalid, or too complex), or None; each pattern is asked about once. Inside a
        transaction the question runs in a savepoint, so a refused pattern leaves the
        transaction as it was."""
        if pattern in self._patterns:
            return self._patterns[pattern]
        refused = self._psycopg.errors.InvalidRegularExpression
        problem: str | None = None
        nested = self.in_transaction
        if nested:
            self.begin()
        try:
            self.query("select '' ~ %s", (pattern,))
        except errors.DriverException as exc:
            cause = exc.__cause__
            if not isinstance(cause, refused):
                if nested:
                    self.rollback()
                raise
            problem = cause.diag.message_primary or str(cause).strip()
        if nested:
            if problem is None:
                self.commit()
            else:
                self.rollback()
        if len(self._patterns) >= 1024:
            self._patterns.clear()
        self._patterns[pattern] = problem
        return problem

    def script(self, statements: list[str]) -> None:
        """Schema statements bind nothing: each runs as written, without parameters, so
        that a `%` in one (a default literal such as `'100%'`) is not read as a
        placeholder, and the statement is the one `--dump` prints."""
        for sql in statements:
            self.execute(sql, None)  # type: ignore[arg-type]

    def _executemany(self, raw: Any, sql: str, rows: list[Sequence[Any]]) -> Any:
        cursor = raw.cursor()
        cursor.executemany(sql, rows)
        return cursor

    def copy_rows(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """`copy ... from stdin` of `rows` (each a sequence in the statement's column order);
        returns the rows written. Logged as one statement, as the inserts it replaces."""
        started = time.perf_counter()
        raw = self._take()
        count = 0
        try:
            with raw.cursor() as cursor:
                with cursor.copy(sql) as copy:
                    write = copy.write_row
                    for row in rows:
                        write(row)
                count = cursor.rowcount
        except self._driver_errors as exc:
            raise self._error(exc, sql, ()) from exc
        finally:
            self._give(raw)
        if self.log_queries:
            self._log(sql, (), started, f"{_plural(max(count, 0), 'row')} affected")
        return count

    def close(self) -> None:
        """Roll back every thread's open transaction (what flushes inside them wrote becomes
        pending again) and close the pool."""
        pool = self._pool
        if pool is None:
            return
        self._pool = None
        with self._pinned_lock:
            states = list(self._pinned)
            self._pinned.clear()
        pending = []
        failure: errors.DriverException | None = None
        for state in states:
            conn = state.conn
            pending.extend(undo for frame in state.undo for undo in frame)
            try:
                if state.depth and conn is not None and not conn.closed:
                    if self._server_in_transaction(conn):
                        conn.execute("rollback")
            except self._psycopg.Error as exc:
                failure = failure or self._error(exc, "rollback", ())
                failure.__cause__ = exc
            finally:
                state.depth, state.undo, state.holds, state.conn = 0, [], 0, None
                if conn is not None:
                    conn.close()
        try:
            pool.close()
        finally:
            self._run_undo(pending)
        if failure is not None:
            raise failure
