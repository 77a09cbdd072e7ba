"""SQLite: identifier quoting, column DDL, and the mapping of `sqlite3` errors to ours.

Everything dialect-specific lives here, so the rest of the package writes SQL through one
place (as Peewee does) and a second dialect would be a sibling module.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence

from .. import errors
from .._typing import TYPE_CHECKING
from ..metadata.model import PropertyMetadata
from .base import LiveColumn, LiveForeignKey, LiveIndex, Platform, unbindable_hint

if TYPE_CHECKING:
    from typing import Any

    from ..connection import Connection

__all__ = ["SqlitePlatform"]


#: SQLITE_BUSY_SNAPSHOT: a WAL read transaction, older than another connection's commit,
#: tried to write
_BUSY_SNAPSHOT = 517

# Patterns for reading the messages of failed statements (`re` is imported there, on the
# first failure: its module-level cache keeps them compiled)
_CONSTRAINT_COLUMNS = r"constraint failed: (.+)$"
_WRITTEN_TABLE = (
    r"(?i)^\s*(?:(?:insert|replace)(?:\s+or\s+\w+)?\s+into|update(?:\s+or\s+\w+)?)\s+"
    r"[`\"\[]?(\w+)"
)
_DELETED_TABLE = r"(?i)^\s*delete\s+from\s+[`\"\[]?(\w+)"
_IDENTIFIER = r"[A-Za-z_]\w*"


def _foreign_key_hint(sql: str, resolve_column: Any) -> tuple[str, str | None, str | None]:
    """(hint, entity, property): SQLite names no constraint or column of a failed foreign
    key; the statement says whether a row was still referenced (a delete) or referenced a
    missing one (a write), and its table names the entity (a pivot table, the collection)."""
    import re

    deleted = re.match(_DELETED_TABLE, sql or "")
    written = None if deleted else re.match(_WRITTEN_TABLE, sql or "")
    found = deleted or written
    entity = prop = None
    if found is not None and resolve_column is not None:
        entity, prop = resolve_column(found.group(1), "")  # a property: a pivot's collection
    if deleted:
        article = "an" if entity and entity[0].lower() in "aeiou" else "a"
        what = f"{article} {entity} row" if entity else "the row"
        return (
            f"{what} is still referenced by another row's foreign key: remove or reassign "
            f"the rows that reference it first, or let the relation cascade the delete"
        ), entity, None
    if written:
        what = (
            f"a pair of {entity}.{prop}" if entity and prop
            else f"a relation of {entity}" if entity else "a foreign key"
        )
        return (
            f"{what} references a row that does not exist (SQLite does not say which): "
            f"persist (and flush) the referenced entity first, or fix the key"
        ), entity, prop
    return "a referenced row does not exist (or is still referenced)", None, None


def _check_target(message: str, sql: str, resolve_column: Any) -> tuple[Any, Any]:
    """The entity a failed CHECK was written to (from the statement's table), and the
    property when the failed expression names exactly one of its columns."""
    import re

    match = re.match(_WRITTEN_TABLE, sql or "")
    if match is None or resolve_column is None:
        return None, None
    table = match.group(1)
    entity = resolve_column(table, "")[0]
    if entity is None:
        return None, None
    expression = message.split("constraint failed:", 1)[-1]
    props = {
        prop
        for name in re.findall(_IDENTIFIER, expression)
        for prop in [resolve_column(table, name)[1]]
        if prop is not None
    }
    return entity, (props.pop() if len(props) == 1 else None)


def _affinity(column_type: str) -> str:
    """SQLite's column affinity of a declared type (its documented rules, in order)."""
    declared = column_type.upper()
    if "INT" in declared:
        return "integer"
    if any(t in declared for t in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in declared or not declared.strip():
        return "blob"
    if any(t in declared for t in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


class SqlitePlatform(Platform):
    name = "sqlite"
    param = "?"
    #: MikroORM's SQLite platform (and its logs) quote with backticks
    quote_char = "`"
    #: SQLite's `limit -1` is no limit
    no_limit = -1
    #: UPDATE ... FROM exists since SQLite 3.33, RETURNING since 3.35
    supports_update_from = sqlite3.sqlite_version_info >= (3, 33, 0)
    supports_returning = sqlite3.sqlite_version_info >= (3, 35, 0)

    def adapt_property(self, prop: PropertyMetadata) -> None:
        """A Decimal in a column of numeric, integer or real affinity is stored as a 64-bit
        float when it is not a plain integer: SQLite keeps 15 significant digits of it, so
        the type refuses longer values instead of losing digits (a text column keeps them
        all)."""
        from ..types import DecimalType

        super().adapt_property(prop)
        if isinstance(prop.type, DecimalType) and _affinity(self.column_type(prop)) in (
            "numeric",
            "integer",
            "real",
        ):
            prop.type.max_digits = 15

    def update_from_values(
        self, table: str, key: str, columns: Sequence[str], rows: int
    ) -> str:
        """SQLite names the columns of a VALUES list `column1`, `column2`, ..."""
        sets = ", ".join(f"{c} = `v`.column{k}" for k, c in enumerate(columns, start=1))
        values = ", ".join([self.row(len(columns) + 1)] * rows)
        return (
            f"update {table} set {sets} from (values {values}) as `v` "
            f"where {table}.{key} = `v`.column{len(columns) + 1}"
        )

    def write_lock(self, table: str, column: str) -> str:
        """A write that writes nothing: compiled as a write, it takes the database's write
        lock (RESERVED; WAL's writer lock) whatever its `where`, and the transaction keeps it
        until it ends. In a transaction that has not read yet this is `begin immediate`
        (SQLite's busy handler waits for another writer); in one that has read, SQLite
        refuses at once (see orm.locking)."""
        return f"update {table} set {column} = {column} where 0"

    # -- DDL --------------------------------------------------------------------------------
    def column_type(self, prop: PropertyMetadata) -> str:
        if prop.relation is not None:  # a foreign key: the type of the key it holds
            return self.column_type(prop.relation.target_meta.pk)
        if prop.primary and prop.autoincrement:
            return "integer"  # SQLite allows AUTOINCREMENT on exactly `integer primary key`
        if prop.column_type:
            return prop.column_type
        return prop.type.column_type(prop, self.name)

    def default_literal(self, prop: PropertyMetadata) -> str | None:
        """A DDL default for simple literal defaults, so that `update_schema` can add a NOT NULL
        column to a table that has rows."""
        from .._markers import MISSING

        value = prop.default
        if value is MISSING or value is None or prop.primary:
            return None
        if prop.type.converts:
            try:
                value = prop.type.to_db(value)
            except Exception:
                return None
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int):
            return str(int(value))
        if isinstance(value, float):
            if value != value:
                return None  # NaN: SQLite has no literal for it (and refuses to store it)
            if value in (math.inf, -math.inf):
                return "9e999" if value > 0 else "-9e999"  # `inf` would be the text 'inf'
            return repr(float(value))
        if isinstance(value, str):
            return self.quote_value(str(value))
        return None

    def column_definition(self, prop: PropertyMetadata) -> str:
        parts = [self.quote(prop.field_name), self.column_type(prop)]
        if prop.primary:
            parts.append("not null primary key")
            if prop.autoincrement:
                parts.append("autoincrement")
            return " ".join(parts)
        parts.append("null" if prop.nullable else "not null")
        default = self.default_literal(prop)
        if default is not None:
            parts.append(f"default {default}")
        return " ".join(parts)

    def first_generated_key(self, cursor: Any, count: int) -> int:
        """One writer at a time holds SQLite's write lock, so the rows of one transaction
        get consecutive rowids ending at `lastrowid`."""
        return int(cursor.lastrowid) - count + 1

    # -- schema -----------------------------------------------------------------------------
    def live_tables(self, connection: Connection) -> set[str]:
        rows = connection.query(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
        )
        return {r[0] for r in rows}

    def live_columns(self, connection: Connection, table: str) -> list[LiveColumn]:
        rows = connection.query(f"pragma table_info({self.quote(table)})")
        return [LiveColumn(r[1], r[2], bool(r[3]), r[4], bool(r[5])) for r in rows]

    def live_indexes(self, connection: Connection, table: str) -> list[LiveIndex]:
        out = []
        for row in connection.query(f"pragma index_list({self.quote(table)})"):
            name, unique, origin = row[1], bool(row[2]), row[3]
            if origin != "c":
                continue
            cols = connection.query(f"pragma index_info({self.quote(name)})")
            out.append(LiveIndex(name, tuple(c[2] for c in cols), unique))
        return out

    def live_triggers(self, connection: Connection, table: str) -> list[str]:
        return [
            row[0] for row in connection.query(
                "select sql from sqlite_master where type = 'trigger' and tbl_name = ? "
                "and sql is not null order by rowid", (table,),
            )
        ]

    def broken_by(self, connection: Connection, table: str, statements: list[str]) -> list[str]:
        """Found on a copy of the schema without rows in memory: each view reading `table`
        is compiled (`select ... limit 0`), and each trigger of or reading it, alone, with
        the `explain` of a statement firing it, before and after the statements run there.
        Only what compiled before and fails after is the rebuild's doing: a view already
        broken, or calling a function the application registered on its connection (the
        copy has none), is not. A schema this copy cannot be made of (a virtual table's
        module missing here) is not checked: the rebuild then runs as before."""
        objects = connection.query(
            "select type, name, tbl_name, sql from sqlite_master where sql is not null and "
            "name not like 'sqlite_%' order by rowid"
        )
        needle = table.lower()
        dependents = [
            row for row in objects
            if row[0] in ("view", "trigger")
            and (row[2].lower() == needle or needle in row[3].lower())
        ]
        if not dependents:
            return []
        copy = sqlite3.connect(":memory:", isolation_level=None)
        try:
            triggers = [row for row in objects if row[0] == "trigger"]
            try:
                for _, _, _, sql in objects:
                    copy.execute(sql)
                working = [
                    row for row in dependents if _compile_problem(copy, row, triggers) is None
                ]
                for statement in statements:
                    copy.execute(statement)
            except sqlite3.Error:
                return []
            return [
                problem for row in working
                if (problem := _compile_problem(copy, row, triggers)) is not None
            ]
        finally:
            copy.close()

    def rename_table(self, table: str, name: str) -> list[str]:
        """With `legacy_alter_table` on for the rename alone: SQLite's own rename checks
        every view and trigger of the database against the schema, and a view reading the
        table just dropped fails it (`error in view ...: no such table`), though the table
        is back under its name once the rename is done."""
        return [
            "pragma legacy_alter_table = on",
            *super().rename_table(table, name),
            "pragma legacy_alter_table = off",
        ]

    def live_foreign_keys(self, connection: Connection, table: str) -> list[LiveForeignKey]:
        rows = connection.query(f"pragma foreign_key_list({self.quote(table)})")
        by_id: dict[int, list[Any]] = {}
        for row in rows:
            by_id.setdefault(row[0], []).append(row)
        out = []
        for parts in by_id.values():
            if len(parts) != 1:
                continue  # a composite key: not one the metadata declares
            _, _, target, column, target_column, on_update, on_delete, _ = parts[0]
            if target_column is None:  # `references t` names the primary key implicitly
                keys = [c for c in self.live_columns(connection, target) if c.pk]
                target_column = keys[0].name if len(keys) == 1 else None
            out.append(LiveForeignKey(
                column, target, target_column, on_update.lower(), on_delete.lower()
            ))
        return out

    def ddl_prologue(self) -> list[str]:
        return ["pragma foreign_keys = off"]

    def ddl_epilogue(self) -> list[str]:
        return ["pragma foreign_keys = on"]

    def check_readable(self, connection: Connection) -> None:
        """Read the schema once: a file that is not a database fails here, with its path."""
        connection.query("select count(*) from sqlite_master")

    # -- errors -----------------------------------------------------------------------------
    def map_error(
        self,
        exc: sqlite3.Error,
        sql: str,
        params: Any,
        resolve_column: Any = None,
        database: str | None = None,
    ) -> errors.DriverException:
        """The specific DriverException for a sqlite3 error, with a message saying what to
        do. `resolve_column(table, column)` names the entity and property when it can;
        `database` (the file, as the user named it) leads the message when the file itself
        is the problem, since the SQL that happened to touch it first says nothing useful."""
        text = str(exc)
        low = text.lower()
        entity = prop = None
        hint = ""
        cls: type[errors.DriverException] = errors.DriverException
        if isinstance(exc, sqlite3.IntegrityError):
            import re

            match = re.search(_CONSTRAINT_COLUMNS, text)
            if match and resolve_column is not None:
                first = match.group(1).split(",")[0].strip()
                if "." in first:
                    table, column = first.split(".", 1)
                    entity, prop = resolve_column(table, column)
            where = f"{entity}.{prop}" if entity and prop else "the value"
            if "unique constraint" in low:
                cls = errors.UniqueConstraintViolationException
                hint = f"{where} must be unique and another row already holds this value"
            elif "not null constraint" in low:
                cls = errors.NotNullConstraintViolationException
                hint = f"{where} may not be null"
            elif "foreign key constraint" in low:
                cls = errors.ForeignKeyConstraintViolationException
                hint, named, named_prop = _foreign_key_hint(sql, resolve_column)
                entity, prop = entity or named, prop or named_prop
            elif "check constraint" in low:
                cls = errors.CheckConstraintViolationException
                hint = "a CHECK constraint refused the value"
                entity, prop = _check_target(text, sql, resolve_column)
                if entity:
                    hint += f" of {entity}.{prop}" if prop else f" of a {entity}"
            else:
                cls = errors.ConstraintViolationException
        elif "error binding parameter" in low:
            import re

            found = re.search(r"parameter (\d+)", text)
            entity, prop, hint = unbindable_hint(
                sql, params, int(found.group(1)) - 1 if found else None, resolve_column,
                "text, integers, floats, bytes or None",
            )
        elif "no such table" in low:
            cls = errors.TableNotFoundException
            hint = (
                "create the schema first with orm.schema.create_schema() or "
                "update_schema(), or run `orm schema:update --run`"
            )
        elif "already exists" in low and "table" in low:
            cls = errors.TableExistsException
            hint = "use orm.schema.update_schema(), or drop the table first"
        elif "no such column" in low or "has no column named" in low:
            cls = errors.InvalidFieldNameException
            hint = "the table does not match the entity: run orm.schema.update_schema()"
        elif "syntax error" in low or "incomplete input" in low:
            cls = errors.SyntaxErrorException
        elif getattr(exc, "sqlite_errorcode", None) == _BUSY_SNAPSHOT:
            # WAL: no lock to wait for (the busy timeout is not even consulted); what this
            # transaction read is older than another connection's commit, so it cannot write
            cls = errors.SerializationFailureException
            hint = (
                "another connection committed since this transaction began reading (WAL "
                "mode), so it cannot write on what it read; roll back and run the whole "
                "transaction again: em.transactional(fn, retries=N) does"
            )
        elif "database is locked" in low or "database table is locked" in low or "busy" in low:
            cls = errors.LockWaitTimeoutException
            hint = (
                "another connection holds a write lock; retry, or raise the `busy_timeout` "
                "option (milliseconds; by default `timeout` seconds)"
            )
        elif "readonly" in low or "read-only" in low:
            cls = errors.ReadOnlyException
            hint = "the database file (or its folder) is not writable"
        elif "not a database" in low:
            cls = errors.ConnectionException
            hint = (
                "the file is not an SQLite database, or it is corrupt or encrypted: point "
                "`db_name` at an SQLite database file, or move this file away so that a new "
                "database is created"
            )
        elif "unable to open" in low:
            cls = errors.ConnectionException
            hint = "check that the file's folder exists and that the file and folder are writable"
        elif "disk i/o" in low:
            cls = errors.ConnectionException
            hint = "check the disk, the file's permissions, and that no other program removed it"
        if cls is errors.ConnectionException and database is not None:
            message = f"Cannot open database {database}: {text} ({hint})"
            if sql:
                message += f". The statement was: {sql}"
            return cls(message, sql=sql, params=params)
        message = f"{sql} - {text}" if sql else text
        if hint:
            message += f" ({hint})"
        return cls(message, sql=sql, params=params, entity=entity, property=prop)


def _compile_problem(copy: sqlite3.Connection, row: Any, triggers: list[Any]) -> str | None:
    """What fails to compile in the view or trigger `row` of the schema copy, or None."""
    kind, name, target, sql = row
    q = _quote_name
    if kind == "view":
        statements = [f"select * from {q(name)} limit 0"]
    else:
        import re

        # the events named before the body (a word in the trigger's name may add one: the
        # statement then only compiles what it fires, and compiled the same before)
        head = re.split(r"\bbegin\b", sql, maxsplit=1, flags=re.IGNORECASE)[0]
        events = {word.lower() for word in re.findall(r"\b(insert|update|delete)\b", head, re.I)}
        columns = [c[1] for c in copy.execute(f"pragma table_info({q(target)})")]
        statements = []
        if "insert" in events:
            statements.append(f"explain insert into {q(target)} default values")
        if "update" in events and columns:
            sets = ", ".join(f"{q(c)} = {q(c)}" for c in columns)
            statements.append(f"explain update {q(target)} set {sets}")
        if "delete" in events:
            statements.append(f"explain delete from {q(target)}")
    copy.execute("savepoint check_one")
    try:
        if kind == "trigger":  # alone (the triggers its statements fire compile with it)
            for other in triggers:
                if other[1] != name:
                    copy.execute(f"drop trigger {q(other[1])}")
        for statement in statements:
            try:
                copy.execute(statement)
            except sqlite3.Error as exc:
                return f"{kind} {name}: {exc}"
        return None
    finally:
        copy.execute("rollback to check_one")
        copy.execute("release check_one")


def _quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
