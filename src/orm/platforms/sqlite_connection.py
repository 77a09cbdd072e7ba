"""The one `sqlite3` connection of an SQLite ORM, behind the driver-neutral `Connection`."""

from __future__ import annotations

import sqlite3
from _thread import RLock  # threading's RLock, without importing threading
from functools import lru_cache

from .. import errors
from .._typing import TYPE_CHECKING, getcwd
from ..connection import Connection, ResolveColumn, TransactionState
from .sqlite import SqlitePlatform

if TYPE_CHECKING:
    import re
    from typing import Any

__all__ = ["SqliteConnection", "JOURNAL_MODES", "check_busy_timeout", "check_journal_mode"]

#: SQLite's journal modes the ORM accepts. "off" and "memory" are refused: without a journal
#: on disk a transaction cannot be rolled back ("off": ROLLBACK "behaves in an undefined
#: way") or survive a crash in its middle ("memory": the file "will very likely go
#: corrupt"), and a flush's all-or-nothing rests on both.
JOURNAL_MODES = ("delete", "truncate", "persist", "wal")
_REFUSED = {
    "off": "without a journal SQLite cannot roll a transaction back, so a failed flush "
    "could leave half of its writes",
    "memory": "with the journal in memory, a crash in the middle of a flush would very "
    "likely corrupt the database file",
}


def check_busy_timeout(value: Any) -> int | None:
    """`busy_timeout`, milliseconds (a whole number, 0 or more), or None (use `timeout`)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise errors.ValidationError(
            f"busy_timeout is how many milliseconds a statement waits for another "
            f"connection's lock: a whole number, 0 or more, not {value!r}"
        )
    return value


def check_journal_mode(value: Any) -> str | None:
    """`journal_mode`, in lower case, one of JOURNAL_MODES; None leaves the file's own."""
    if value is None:
        return None
    mode = value.lower() if isinstance(value, str) else value
    if mode in _REFUSED:
        raise errors.ValidationError(
            f"journal_mode {mode!r} is refused: {_REFUSED[mode]}. Use 'wal' (readers never "
            f"wait for the writer) or 'delete' (SQLite's default)."
        )
    if mode not in JOURNAL_MODES:
        raise errors.ValidationError(
            f"Unknown journal_mode {value!r}; known: {', '.join(JOURNAL_MODES)}"
        )
    return mode  # type: ignore[no-any-return]


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    import re  # the first `$re` filter imports it: `import orm` does not

    return re.compile(pattern)


def _regexp(pattern: str | None, value: Any) -> bool:
    if pattern is None or value is None:
        return False
    return _compiled(pattern).search(str(value)) is not None


class SqliteConnection(Connection):
    """The one sqlite3 connection of an ORM. Threads take turns on it: a transaction holds
    its lock from `begin` to the matching `commit` or `rollback`, so the depth and undo
    frames are the connection's, not a thread's."""

    @property
    def in_own_transaction(self) -> bool:
        # one connection for every thread: the transaction is this thread's if it holds it
        return self._tx.depth > 0 and self._lock._is_owned()  # type: ignore[attr-defined]

    _driver_errors = (sqlite3.Error,)

    def describe(self) -> str:
        return self.db_name

    def __init__(
        self,
        db_name: str,
        platform: SqlitePlatform,
        *,
        log_queries: bool = False,
        resolve_column: ResolveColumn | None = None,
        timeout: float = 5.0,
        busy_timeout: int | None = None,
        journal_mode: str | None = None,
    ) -> None:
        busy_timeout = check_busy_timeout(busy_timeout)
        journal_mode = check_journal_mode(journal_mode)
        super().__init__(
            platform, log_queries=log_queries, resolve_column=resolve_column, timeout=timeout
        )
        self.db_name = db_name
        #: one transaction at a time on the shared connection: forks used from several
        #: threads (request contexts) take turns instead of interleaving their statements
        self._lock = RLock()
        self._tx = TransactionState()
        #: a file's name and the working directory it is relative to, for `_label`
        self._file: tuple[str, str] | None = None
        self._label_text: str | None = repr(db_name)
        if db_name != ":memory:" and not db_name.startswith("file:"):
            self._file = (db_name, getcwd())
            self._label_text = None
        try:
            raw = sqlite3.connect(
                db_name,
                isolation_level=None,
                check_same_thread=False,
                # SQLite's busy timeout: how long a statement waits for another
                # connection's lock (sqlite3 sets it from seconds)
                timeout=timeout if busy_timeout is None else busy_timeout / 1000,
                uri=db_name.startswith("file:"),
            )
        except sqlite3.Error as exc:
            folder = self._folder()
            if folder is not None and not _is_folder(folder):
                raise errors.ConnectionException(
                    f"Cannot open database {db_name!r}: folder {folder!r} does not exist."
                ) from None
            raise errors.ConnectionException(
                f"Cannot open database {db_name!r}: {exc}"
            ) from exc
        try:
            statement = "pragma foreign_keys = on"
            raw.execute(statement)
            raw.create_function("regexp", 2, _regexp, deterministic=True)
            if journal_mode is not None:
                statement = f"pragma journal_mode = {journal_mode}"
                self._set_journal_mode(raw, journal_mode)
        except BaseException as exc:
            raw.close()
            if isinstance(exc, sqlite3.Error):
                # setting the journal mode waits for another connection's exclusive lock (a
                # commit in progress) up to busy_timeout: running out is a lock wait like any
                # other, to retry, not a database that cannot be opened
                mapped = self._error(exc, statement, ())
                if isinstance(mapped, errors.LockWaitTimeoutException):
                    raise mapped from exc
                raise errors.ConnectionException(
                    f"Cannot open database {db_name!r}: {exc}"
                ) from exc
            raise
        self._raw: sqlite3.Connection | None = raw
        try:
            limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except AttributeError:  # pragma: no cover - Python < 3.11
            limit = 999
        #: how many `?` one statement may hold
        self.max_variables = limit
        platform.max_parameters = limit

    @property
    def _label(self) -> str:
        """The database as the user named it, plus the absolute path of a file, for messages
        about the file itself (not a database, cannot be opened) and `describe()`. Made on
        first use: resolving the path imports `os.path` (with `os`, about 2 M instructions),
        which a script whose statements all succeed never needs."""
        if self._label_text is None:
            assert self._file is not None
            self._label_text = f"{self._file[0]!r} ({self._absolute()})"
        return self._label_text

    def _absolute(self) -> str:
        """The file's absolute path (symbolic links resolved), from the working directory
        the database was opened in; os.path rather than pathlib, which imports more."""
        import os.path

        assert self._file is not None
        name, cwd = self._file
        return os.path.realpath(os.path.join(cwd, os.path.expanduser(name)))

    def _folder(self) -> str | None:
        """The folder a file database is in (None for `:memory:` and URIs)."""
        if self._file is None:
            return None
        import os.path

        return os.path.dirname(self._absolute())

    def _set_journal_mode(self, raw: sqlite3.Connection, mode: str) -> None:
        """`pragma journal_mode`, which answers with the mode the database is in after it:
        a mode SQLite did not take is an error, never a silent fallback."""
        got = str(raw.execute(f"pragma journal_mode = {mode}").fetchone()[0]).lower()
        if got != mode:
            why = (
                "an in-memory database keeps its journal in memory: leave journal_mode out"
                if got == "memory" and (self.db_name == ":memory:" or "mode=memory" in self.db_name)
                else "another connection has the database open, or the file system does not "
                "support it (WAL needs shared memory, so no network file systems)"
            )
            raise errors.ValidationError(
                f"journal_mode {mode!r} could not be set on database {self._label}: SQLite "
                f"kept {got!r} ({why})."
            )

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

    def _state(self) -> TransactionState:
        return self._tx

    def close(self) -> None:
        """Close the connection; an open transaction is rolled back (and what flushes
        inside it wrote becomes pending again)."""
        raw = self._raw
        if raw is not None:
            pending = [undo for frame in self._tx.undo for undo in frame]
            try:
                if self._tx.depth and raw.in_transaction:
                    raw.execute("rollback")
            except sqlite3.Error as exc:
                raise self._error(exc, "rollback", ()) from exc
            finally:
                # closed even when the rollback fails: the file's lock must not outlive us
                raw.close()
                self._raw = None
                self._tx = TransactionState()
                self._run_undo(pending)

    # -- driver hooks -----------------------------------------------------------------------
    def _take(self) -> sqlite3.Connection:
        raw = self.raw
        self._acquire()
        return raw

    def _give(self, raw: Any) -> None:
        self._lock.release()

    def _hold(self) -> None:
        self._acquire()

    def _unhold(self) -> None:
        self._lock.release()

    def _held(self) -> sqlite3.Connection:
        return self.raw

    def _server_in_transaction(self, raw: sqlite3.Connection) -> bool:
        return raw.in_transaction

    def _acquire(self) -> None:
        """Take the connection (reentrant). Another thread's transaction is waited for as
        long as SQLite's own busy timeout, then LockWaitTimeoutException: never forever."""
        if not self._lock.acquire(timeout=self.timeout):
            raise errors.LockWaitTimeoutException(
                f"Waited {self.timeout} s for another thread's transaction on this ORM's "
                f"connection. Keep transactions short, finish a transaction on the thread "
                f"that began it, or raise the `timeout` option."
            )


def _is_folder(path: str) -> bool:
    import os.path

    return os.path.isdir(path)
