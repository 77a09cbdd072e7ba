"""The dialect seam: everything that differs between databases, behind one object.

The query compiler (`orm.query`), the Unit of Work and the schema generator write SQL only
through a `Platform`: identifier quoting, parameter placeholders, `limit`/`offset`, the
regular-expression operator, the shape of a batched `update ... from (values ...)`, and the
capability flags that choose between strategies (MikroORM's `Platform`, SQLAlchemy's dialect
flags, Django's `features`). A new database is a subclass, not edits across the package.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from ..connection import Connection

__all__ = ["Platform", "LiveColumn", "LiveForeignKey", "LiveIndex"]


# Plain classes rather than dataclasses: `dataclasses` imports `inspect`, a cost every script
# would pay at `import orm`.


class _Record:
    """Equality, hash and repr over the `__slots__` values."""

    __slots__: tuple[str, ...] = ()

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class LiveIndex(_Record):
    """An index as the database reports it (or as the metadata wants it)."""

    __slots__ = ("name", "columns", "unique")

    def __init__(self, name: str, columns: tuple[str, ...], unique: bool) -> None:
        self.name = name
        self.columns = columns
        self.unique = unique


class LiveColumn(_Record):
    """A column as the database reports it."""

    __slots__ = ("name", "type", "notnull", "default", "pk")

    def __init__(
        self, name: str, type: str, notnull: bool, default: str | None, pk: bool  # noqa: A002
    ) -> None:
        self.name = name
        self.type = type
        self.notnull = notnull
        self.default = default
        self.pk = pk


class LiveForeignKey(_Record):
    """A single-column foreign key as the database reports it (or as the metadata wants
    it). Two compare equal whatever their constraint names: `name` is what PostgreSQL
    needs to drop one (SQLite names none)."""

    __slots__ = ("column", "table", "target_column", "on_update", "on_delete", "name")

    def __init__(
        self,
        column: str,
        table: str,
        target_column: str,
        on_update: str,
        on_delete: str,
        name: str | None = None,
    ) -> None:
        self.column = column
        self.table = table
        self.target_column = target_column
        self.on_update = on_update
        self.on_delete = on_delete
        self.name = name

    def _key(self) -> tuple[Any, ...]:
        return (self.column, self.table, self.target_column, self.on_update, self.on_delete)


def unbindable_hint(sql: str, params: Any, index: int | None, resolve_column: Any,
                    storable: str) -> tuple[str | None, str | None, str]:
    """(entity, property, hint) for a value the driver could not bind, parameter `index`
    (0-based) of `sql`: the column it was bound to, read from an INSERT's column list or an
    UPDATE's assignments (the statements a flush writes), names the property; `storable`
    says what the database takes. A custom type's `to_db` returning something else gets
    this far, the flush's checks having passed the value it was given."""
    import re

    from ..errors import _short

    entity = prop = None
    column = table = None
    if index is not None and 0 <= index < len(params or ()):
        insert = re.match(
            r"(?is)\s*insert\s+into\s+[`\"]?(\w+)[`\"]?\s*\(([^)]*)\)\s*values", sql or ""
        )
        # string literals blanked: an inlined value may read ` where ` or `"x" =`
        bare = re.sub(r"'(?:[^']|'')*'", "''", sql or "")
        update = re.match(r"(?is)\s*update\s+[`\"]?(\w+)[`\"]?\s+set\s+(.*?)(?:\swhere\s|$)",
                          bare)
        if insert:
            columns = [c.strip().strip('`"') for c in insert.group(2).split(",")]
            table, column = insert.group(1), columns[index % len(columns)]
        elif update:
            # the statement as shown, its values inlined: each assignment's quoted column
            assigned = re.findall(r"[`\"](\w+)[`\"]\s*=", update.group(2))
            if index < len(assigned):
                table, column = update.group(1), assigned[index]
        if table and column and resolve_column is not None:
            entity, prop = resolve_column(table, column)
    value = params[index] if index is not None and 0 <= index < len(params or ()) else None
    where = f"the type of {entity}.{prop}" if entity and prop else "a type"
    what = "a value" if index is None else f"{type(value).__name__} {_short(value, 60)}"
    return entity, prop, (
        f"{where} gave {what} to store, which the database cannot take ({storable}): make "
        f"its to_db return one of those"
    )


def _norm_type(text: str) -> str:
    return " ".join(text.lower().replace(" ,", ",").split())


def _norm_default(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text


class Platform:
    """Base of every dialect; the defaults are standard SQL with `?` placeholders."""

    #: the dialect's name, as the mapped types' `column_type(prop, dialect)` receives it
    name: str = "sql"
    #: the placeholder a statement binds one parameter with
    param: str = "?"
    #: the bound limit that means "no limit"
    no_limit: Any = None
    #: the character that quotes identifiers (doubled inside them)
    quote_char: str = '"'
    #: `update t set ... from (values ...)` is available
    supports_update_from: bool = True
    #: `insert ... returning` is available
    supports_returning: bool = True
    #: `key = any(?)` binds a list of keys as one array parameter
    supports_any_array: bool = False
    #: generated keys are returned (`returning`) or reserved before the insert, never read
    #: from the cursor (`first_generated_key`)
    keys_returned: bool = False
    #: from this many rows on an INSERT is a COPY (None: no COPY)
    copy_threshold: int | None = None
    #: `update_schema` changes a column in place (`alter table ... alter column`: type,
    #: nullability, default; `drop column`; the primary key); else it rebuilds the table
    supports_alter_column: bool = False
    #: appended to `drop table`: PostgreSQL refuses to drop a table another table's foreign
    #: key references (`cascade` drops that constraint, never the other table)
    drop_table_suffix: str = ""
    #: a foreign key may only reference a table that exists (PostgreSQL; SQLite checks
    #: references when rows are written), so tables in a cycle get some of theirs later
    foreign_key_needs_table: bool = False
    #: the longest identifier in bytes (None: no limit); a longer one the database would
    #: truncate, so two names sharing the prefix collide and introspection reads back a
    #: name that was never written
    max_identifier_length: int | None = None

    # -- identifiers and parameters -------------------------------------------------------
    def fit_identifier(self, name: str) -> str:
        """A generated name (an index's) that fits `max_identifier_length`: unchanged when it
        fits, else its prefix and a stable hash of the whole name, as MikroORM and SQLAlchemy
        do, so that distinct long names stay distinct and the name written is the name read
        back."""
        limit = self.max_identifier_length
        encoded = name.encode("utf-8")
        if limit is None or len(encoded) <= limit:
            return name
        import hashlib

        digest = hashlib.sha1(encoded).hexdigest()[:8]
        prefix = encoded[: limit - len(digest) - 1].decode("utf-8", "ignore")
        return f"{prefix}_{digest}"

    def quote(self, identifier: str) -> str:
        q = self.quote_char
        return q + identifier.replace(q, q + q) + q

    def params(self, count: int) -> str:
        """`?, ?, ?`: the placeholders of `count` parameters."""
        return ", ".join([self.param] * count)

    def row(self, count: int) -> str:
        """`(?, ?, ?)`: one row of a VALUES list."""
        return "(" + self.params(count) + ")"

    #: how many parameters one statement may bind (the connection sets the database's)
    max_parameters: int = 999
    #: text values with a NUL character are refused (the database cannot store them)
    refuses_nul: bool = False
    #: the Python values the driver binds as they are (a filter value's `to_db` must give one)
    bindable: tuple[type, ...] = (str, int, float, bytes, bytearray, memoryview)

    def adapt_property(self, prop: Any) -> None:
        """Fit a property's mapped type to what this database's column holds, before the
        per-entity plans are built (called once per property at start-up): a string
        property with a `length`, or any string where the database refuses NUL characters,
        gets a type that checks its values."""
        from ..types import CheckedStringType, StringType, TextType

        kind = type(prop.type)
        if kind is StringType or kind is TextType:
            length = prop.length if kind is StringType else None
            if length or self.refuses_nul:
                prop.type = CheckedStringType(prop.type, length, self.refuses_nul)

    def storage_problem(self, value: Any) -> str | None:
        """Why the database cannot store a plain (unconverted) bound value as it is, or
        None (see `orm.types.unstorable`)."""
        from ..types import unstorable

        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                return (
                    f"it holds a character that cannot be encoded as UTF-8 (a lone "
                    f"surrogate, {exc.object[exc.start]!r}), which no database can hold"
                )
            return None
        return unstorable(value)

    def regex_problem(self, pattern: str) -> str | None:  # noqa: ARG002
        """Why the database's regular expressions refuse `pattern` (which Python's `re`
        compiles), or None. SQLite's `regexp` is Python's `re`: nothing more to check."""
        return None

    # -- query pieces ---------------------------------------------------------------------
    def limit_offset(self, limit: int | None, offset: int | None) -> tuple[str, list[Any]]:
        """The `limit ... offset ...` clause (leading space included) and its parameters;
        either may be None. A limit is always bound when there is an offset (SQLite has no
        offset without one), with `no_limit` standing for none: one statement text whether
        or not a limit is given."""
        if limit is None and offset is None:
            return "", []
        sql, params = f" limit {self.param}", [self.no_limit if limit is None else limit]
        if offset is not None:
            sql += f" offset {self.param}"
            params.append(offset)
        return sql, params

    def like(self, column: str) -> str:
        """`column` matches the bound LIKE pattern (`%` and `_` wildcards, no escape
        character: a backslash is itself)."""
        return f"{column} like {self.param}"

    def regexp(self, column: str) -> str:
        """`column` matches the bound regular expression."""
        return f"{column} regexp {self.param}"

    def as_text(self, column: str, prop: Any) -> str:  # noqa: ARG002
        """`column` as `like` and regular expressions read it: as it is (SQLite matches any
        value as its text)."""
        return column

    def lock_clause(self, mode: Any) -> str:
        """The clause (leading space included) that ends a select reading its rows under a
        pessimistic `LockMode` (`mode`) until the transaction ends; "" where the database
        has no row locks (see `write_lock`)."""
        return ""

    def write_lock(self, table: str, column: str) -> str | None:  # noqa: ARG002
        """A statement that makes the open transaction take the database's write lock and
        keep it to the end, run before reading under a pessimistic lock where the database
        has no row locks; None where it locks rows (`lock_clause`). `table` and its
        `column` are quoted."""
        return None

    def update_from_values(
        self, table: str, key: str, columns: Sequence[str], rows: int
    ) -> str:
        """One UPDATE of `rows` rows that each bind the new values of `columns`, then the
        key: `update t set c = v.c ... from (values (...), ...) as v where t.key = v.key`.
        Every name is already quoted."""
        raise NotImplementedError(f"{type(self).__name__} has no update ... from (values ...)")

    def pivot_insert(
        self, table: str, columns: tuple[str, str], rows: int, stored: bool = True
    ) -> str:
        """Pairs into a many-to-many's pivot table; where a pair may be `stored` already, it
        is skipped (an owning side changed without being loaded cannot know). Pairs of an
        owner just inserted cannot be, and skip the conflict check (measured ~18% slower)."""
        a, b = (self.quote(c) for c in columns)
        values = ", ".join([self.row(2)] * rows)
        tail = " on conflict do nothing" if stored else ""
        return f"insert into {self.quote(table)} ({a}, {b}) values {values}{tail}"

    def pivot_arrays(
        self, verb: str, table: str, columns: tuple[Any, Any], stored: bool = True
    ) -> str | None:
        """Where the database takes arrays: the pairs of a pivot `insert` or `delete` bound
        as two arrays (one per pivot column, `columns` their properties), one statement
        however many pairs; None elsewhere (multi-row VALUES statements then)."""
        return None

    def pivot_delete(self, table: str, columns: tuple[str, str], rows: int) -> str:
        """Pairs out of a pivot table, matched as row values against a select from the
        VALUES list (a bare `in (values ...)` makes SQLite scan the table; this form is a
        lookup by the primary key on both databases)."""
        a, b = (self.quote(c) for c in columns)
        values = ", ".join([self.row(2)] * rows)
        return (
            f"delete from {self.quote(table)} where ({a}, {b}) in (select column1, column2 "
            f"from (values {values}) as v)"
        )

    def first_generated_key(self, cursor: Any, count: int) -> int:
        """The key the database generated for the first of the `count` rows the statements
        just run inserted (they get consecutive keys), read from the last one's cursor."""
        raise NotImplementedError(f"{type(self).__name__} returns generated keys otherwise")

    def keys_condition(self, key: str, count: int) -> str:
        """`key` is one of `count` bound keys."""
        if count == 1:
            return f"{key} = {self.param}"
        return f"{key} in ({self.params(count)})"

    def insert_default_values(self, table: str) -> str:
        return f"insert into {table} default values"

    # -- schema -----------------------------------------------------------------------------
    # Introspection goes through Connection.query like every other statement, so a database
    # that cannot be read fails with a typed, logged error, never a bare driver one.
    def live_tables(self, connection: Connection) -> set[str]:
        """The names of the tables the database holds (system tables left out)."""
        raise NotImplementedError

    def live_columns(self, connection: Connection, table: str) -> list[LiveColumn]:
        raise NotImplementedError

    #: `Property(comment=...)` is stored in the database (`comment on column`); SQLite has no
    #: column comments, so there it stays in the metadata
    supports_comments: bool = False

    def comment_sql(self, table: str, column: str, comment: str | None) -> str:
        """The statement that sets (None: removes) a column's comment."""
        text = "null" if comment is None else self.quote_value(comment)
        return f"comment on column {self.quote(table)}.{self.quote(column)} is {text}"

    def live_comments(self, connection: Connection, table: str) -> dict[str, str]:
        """The comments of the table's columns that have one, by column name."""
        return {}

    def live_indexes(self, connection: Connection, table: str) -> list[LiveIndex]:
        """The indexes created by `create index` (not those behind constraints)."""
        raise NotImplementedError

    def live_triggers(self, connection: Connection, table: str) -> list[str]:
        """The `create trigger` statements of the table's triggers, in the order they were
        made: what a table rebuild must make again (dropping the table drops them)."""
        return []

    def broken_by(self, connection: Connection, table: str, statements: list[str]) -> list[str]:
        """The views and triggers that would stop working if `statements` (a rebuild of
        `table`) ran, each as `"trigger name: what fails"`: a rebuild dropping a column one
        of them reads must be refused, as SQLite's own `drop column` refuses it."""
        return []

    def rename_table(self, table: str, name: str) -> list[str]:
        """Statements renaming `table` to `name`, the last step of a table rebuild."""
        return [f"alter table {self.quote(table)} rename to {self.quote(name)}"]

    def live_foreign_keys(self, connection: Connection, table: str) -> list[LiveForeignKey]:
        """The table's single-column foreign keys, their actions in lower case (`cascade`,
        `set null`, `restrict`, `no action`, `set default`)."""
        raise NotImplementedError

    def same_type(self, wanted: str, live: str) -> bool:
        """Whether a column type the metadata wants is the one the database reports (its
        spelling of it may differ)."""
        return _norm_type(wanted) == _norm_type(live)

    def same_default(self, wanted: str | None, live: str | None) -> bool:
        """Whether a DDL default (`default_literal`, or None) is the one the database
        reports for the column."""
        return _norm_default(wanted) == _norm_default(live)

    def alter_column(self, table: str, prop: Any, live: LiveColumn) -> list[str]:
        """The statements that change the live column into the one `prop` wants (none when
        it already is), where `supports_alter_column`."""
        raise NotImplementedError(f"{type(self).__name__} rebuilds tables instead")

    def drop_primary_key(self, connection: Connection, table: str) -> str:
        """The statement that drops the table's primary key constraint, where
        `supports_alter_column`."""
        raise NotImplementedError(f"{type(self).__name__} rebuilds tables instead")

    def check_readable(self, connection: Connection) -> None:
        """Touch the database once, so that one that cannot be read fails early."""
        connection.query("select 1")

    def ddl_prologue(self) -> list[str]:
        """Statements to run before a schema change's transaction (and `ddl_epilogue`
        after it): SQLite turns foreign keys off so that a table rebuild cannot cascade."""
        return []

    def ddl_epilogue(self) -> list[str]:
        return []

    def ddl_script(self, sql: str, schema: str | None = None) -> str:
        """Schema statements as a script that runs as the ORM runs them (for --dump);
        `schema` is the configured one (PostgreSQL)."""
        if not sql.strip():
            return ""
        head = "".join(f"{s};\n" for s in self.ddl_prologue())
        tail = "".join(f"{s};\n" for s in self.ddl_epilogue())
        return f"{head}begin;\n{sql.rstrip()}\ncommit;\n{tail}"

    # -- logging ----------------------------------------------------------------------------
    def quote_value(self, value: Any) -> str:
        """A value as a SQL literal, for log lines only (queries always bind parameters)."""
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return "X'" + bytes(value).hex() + "'"
        return "'" + str(value).replace("'", "''") + "'"

    def inline_params(self, sql: str, params: Any) -> str:
        """The statement with each placeholder (outside quoted text) replaced by its quoted
        value: what the query log shows."""
        if not params:
            return sql
        out: list[str] = []
        values = iter(params)
        quote: str | None = None
        marker = self.param
        i, n = 0, len(sql)
        while i < n:
            ch = sql[i]
            if quote is not None:
                if ch == quote:
                    quote = None
                out.append(ch)
            elif ch in "'`\"":
                quote = ch
                out.append(ch)
            elif sql.startswith(marker, i):
                out.append(self.quote_value(next(values, None)))
                i += len(marker)
                continue
            else:
                out.append(ch)
            i += 1
        return "".join(out)
