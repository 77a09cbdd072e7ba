"""PostgreSQL (through psycopg 3): placeholders, quoting, query pieces, introspection, and the
mapping of psycopg errors to ours by SQLSTATE.

Nothing here imports psycopg: `import orm` must not pay for (or need) it. The pooled
connection is `platforms.postgresql_connection.PostgresConnection`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import errors
from .base import LiveColumn, LiveForeignKey, LiveIndex, Platform, unbindable_hint

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["PostgresPlatform"]

#: `Key (email)=(a@b.c) already exists.`, `Key (author_id)=(5) is not present in table "user".`
_KEY = re.compile(r'^Key \((.+?)\)=')
#: `... is still referenced from table "article".`
_CHECK_NAME = re.compile(r"^(.+)_check\d*$")
_REFERENCED_FROM = re.compile(r'referenced from table "?([^"]+)"?')

_HINT_CREATE_SCHEMA = (
    "create the schema first with orm.schema.create_schema() or update_schema(), or run "
    "`orm schema:update --run`; check that the `schema` option (search_path) names the "
    "schema holding the tables"
)
#: pg_constraint's confupdtype / confdeltype codes
_FK_ACTIONS = {
    "a": "no action", "r": "restrict", "c": "cascade", "n": "set null", "d": "set default",
}
_HINT_RETRY = "roll back and run the whole transaction again (this error is retryable)"


#: other spellings of the types `format_type` reports
_TYPE_ALIASES = {
    "int": "integer", "int4": "integer", "int8": "bigint", "int2": "smallint",
    "bool": "boolean", "float8": "double precision", "float4": "real", "decimal": "numeric",
    "varchar": "character varying", "char": "character", "bpchar": "character",
    "varbit": "bit varying", "timestamptz": "timestamp", "timetz": "time",
}
_TYPE = re.compile(
    r"(?P<name>[a-z_][a-z0-9_ ]*?)(?P<args>\([0-9,]*\))?"
    r"(?P<zone> with(?:out)? time zone)?(?P<arrays>(?:\[\d*\])*)"
)
#: a cast `pg_get_expr` appends to a default: `::text`, `::character varying`, `::numeric(10,2)`
_CAST = re.compile(r'::(?:"[^"]+"|[a-z_][a-z0-9_ ]*)(?:\([0-9, ]*\))?(?:\[\])*$')
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?", re.IGNORECASE)


def _type_key(text: str) -> str:
    """A PostgreSQL type in one spelling: `format_type`'s (`character varying(10)`,
    `timestamp without time zone`, `double precision`, `numeric(10,2)`), whichever alias
    (`varchar(10)`, `timestamp`, `float8`, `decimal(10, 2)`, `timestamptz(6)`) it was
    written with."""
    s = " ".join(text.lower().replace('"', "").split())
    s = re.sub(r"\s*\(\s*", "(", s)
    s = re.sub(r"\s*,\s*", ",", s)
    s = re.sub(r"\s*\)", ")", s)
    s = re.sub(r"\s*\[", "[", s)
    match = _TYPE.fullmatch(s)
    if match is None:
        return s
    written = match.group("name")
    name = _TYPE_ALIASES.get(written, written)
    args, zone = match.group("args") or "", match.group("zone") or ""
    if name in ("timestamp", "time"):
        if not zone:
            zone = " with time zone" if written in ("timestamptz", "timetz") else (
                " without time zone"
            )
    elif name == "numeric" and args and "," not in args:
        args = args[:-1] + ",0)"  # numeric(10) is numeric(10,0)
    elif name == "character" and not args:
        args = "(1)"
    elif name == "float" and args:
        name, args = ("real" if int(args[1:-1] or 53) <= 24 else "double precision"), ""
    elif name == "float":
        name = "double precision"
    return f"{name}{args}{zone}{match.group('arrays')}"


def _bare_default(text: str | None) -> str | None:
    """A default expression without the parentheses and casts `pg_get_expr` adds
    (`'abc'::text` is `'abc'`, `'-1'::integer` is `'-1'`)."""
    if text is None:
        return None
    text = text.strip()
    while True:
        while text.startswith("(") and text.endswith(")"):
            text = text[1:-1].strip()
        cast = _CAST.search(text)
        if cast is None or text[: cast.start()].count("'") % 2:
            return text
        text = text[: cast.start()].rstrip()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _key_column(detail: str | None) -> str | None:
    """The first column of the key a 23505/23503 detail names."""
    if not detail:
        return None
    match = _KEY.match(detail)
    if not match:
        return None
    return match.group(1).split(",")[0].strip().strip('"')


_INTEGERS = ("smallint", "integer", "bigint")
#: the integer columns narrower than 64 bits, and their width
_NARROW_INTEGERS = {"smallint": 16, "integer": 32, "smallserial": 16, "serial": 32,
                    "serial2": 16, "serial4": 32}


def _base_type(spelling: str) -> str:
    """A column type without its modifiers, in PostgreSQL's own name (`int8` is
    `bigint`)."""
    base = spelling.strip().lower().split("(")[0].strip()
    return {"int8": "bigint", "int4": "integer", "int": "integer", "int2": "smallint",
            "bool": "boolean"}.get(base, base)


class PostgresPlatform(Platform):
    """PostgreSQL 12+.

    SQL text written for this platform binds with `%s`, so a literal `%` (a `like`
    pattern's, the modulo operator) is written `%%`: psycopg always parses the statement,
    even without parameters, because the connection always passes a parameter sequence.
    """

    name = "postgresql"
    param = "%s"
    #: `limit null` is no limit
    no_limit = None
    #: PostgreSQL (and MikroORM's logs of it) quote with double quotes
    quote_char = '"'
    #: NAMEDATALEN - 1: longer identifiers are truncated by the server without an error
    max_identifier_length = 63
    #: rows of one set of changed columns are updated with psycopg's pipelined
    #: executemany: `update ... from (values ...)` needs a cast per column, and on a table
    #: loaded since its last ANALYZE the planner hash-joins it over a sequential scan
    #: (measured 290-430 ms against 45-78 ms for 5,000 rows)
    supports_update_from = False
    #: generated keys come back with `insert ... returning`, or are reserved with nextval
    #: before a COPY; never guessed
    supports_returning = True
    #: `where key = any(%s)` binds any number of keys as one array
    supports_any_array = True
    keys_returned = True
    #: from this many rows on, an INSERT is a COPY (measured faster from about 100 rows)
    copy_threshold = 100
    refuses_nul = True
    #: the protocol counts a statement's parameters in 16 bits
    max_parameters = 65535
    #: asks the server whether it takes a regular expression (set by the connection)
    pattern_checker: Callable[[str], str | None] | None = None
    #: `update_schema` alters columns in place, inside one transaction
    supports_alter_column = True
    drop_table_suffix = " cascade"
    foreign_key_needs_table = True
    bindable = (str, int, float, bytes, bytearray, memoryview, bool, Decimal, datetime,
                date, time, uuid.UUID)

    def adapt_property(self, prop: Any) -> None:
        """The built-in types become their native PostgreSQL forms (see
        `postgresql_types`); strings refuse NUL characters."""
        from .postgresql_types import native_type

        native = native_type(prop)
        if native is not None:
            prop.type = native
        super().adapt_property(prop)
        self._check_integer_range(prop)

    def _check_integer_range(self, prop: Any) -> None:
        """An integer or int-valued enum in a `smallint` or `integer` column gets a type that
        refuses values out of the column's range (PostgreSQL's 22003 "integer out of range"
        names no column); a `bigint` column keeps the 64-bit check every int has."""
        from ..types import CheckedIntegerType, EnumType, IntegerType

        mapped = prop.type
        if type(mapped) is not EnumType and not (
            isinstance(mapped, IntegerType) and type(mapped).__module__ == IntegerType.__module__
        ):
            return
        column = _base_type(self.column_type(prop))
        bits = _NARROW_INTEGERS.get(column)
        if bits is not None:
            prop.type = CheckedIntegerType(mapped, column, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

    def regex_problem(self, pattern: str) -> str | None:
        """PostgreSQL's regular expressions (Spencer's ARE) are not Python's: it refuses
        some patterns that `re` compiles (a named group `(?P<n>...)`, scoped flags
        `(?i:...)`, a bound above 255, a possessive quantifier) and finds others too complex
        (`(a{255}){255}`). Only the server knows for sure, so the connection asks it, once
        per pattern; a refused pattern is then a ValidationError, and never aborts the
        user's transaction."""
        checker = self.pattern_checker
        return None if checker is None else checker(pattern)

    def storage_problem(self, value: Any) -> str | None:
        if isinstance(value, str) and "\x00" in value:
            return "a NUL character (\\x00), which PostgreSQL text cannot hold"
        return super().storage_problem(value)

    # -- statements -------------------------------------------------------------------------
    def keys_condition(self, key: str, count: int) -> str:  # noqa: ARG002
        """`key = any(%s)`: one array parameter for every key (faster than an IN list and
        one cached statement whatever the count)."""
        return f"{key} = any(%s)"

    def pivot_arrays(
        self, verb: str, table: str, columns: tuple[Any, Any], stored: bool = True
    ) -> str | None:
        """`unnest` of two arrays: no statement text growing with the pairs for the driver
        to parse (multi-row VALUES of 150,000 pairs measured 5.6 s against 4.4 s)."""
        a, b = (self.quote(c.field_name) for c in columns)
        first, second = (self.column_type(c) for c in columns)
        pairs = f"select * from unnest(%s::{first}[], %s::{second}[])"
        if verb == "delete":
            return f"delete from {self.quote(table)} where ({a}, {b}) in ({pairs})"
        tail = " on conflict do nothing" if stored else ""
        return f"insert into {self.quote(table)} ({a}, {b}) {pairs}{tail}"

    def reserve_keys(self) -> str:
        """The statement that takes `n` values from the sequence of an identity column;
        binds the quoted table name, the column's name and `n`."""
        return (
            "select nextval(pg_get_serial_sequence(%s, %s)) from generate_series(1, %s)"
        )

    def advance_keys(self) -> str:
        """After rows were inserted with keys the user gave into an identity column: move
        its sequence past the largest, so that a generated key never collides with one.
        Binds the table, the column and the largest key. (It never calls nextval: at a
        key of 2**63-1 that would overflow, and no row could be inserted any more.)"""
        return (
            "select setval(q.s, q.k) from (select pg_get_serial_sequence(%s, %s)::regclass "
            "as s, %s::bigint as k) as q where q.k > coalesce(pg_sequence_last_value(q.s), 0)"
        )

    def keep_key_sequence(self, table: str, temp: str, key: str) -> list[str]:
        """In a table rebuild (update_schema), after the rows were copied into `temp`: its
        identity sequence goes on from the old table's (or past the largest key copied), so
        that a key once handed out, even of a row deleted since, never comes back."""
        old, new = self.quote_value(self.quote(table)), self.quote_value(self.quote(temp))
        column = self.quote_value(key)
        return [
            f"select setval(pg_get_serial_sequence({new}, {column}), greatest(coalesce("
            f"pg_sequence_last_value(pg_get_serial_sequence({old}, {column})::regclass), 0), "
            f"coalesce((select max({self.quote(key)}) from {self.quote(temp)}), 0)) + 1, false)"
        ]

    # -- query pieces ---------------------------------------------------------------------
    def like(self, column: str) -> str:
        """PostgreSQL's LIKE takes `\\` as its escape character unless told otherwise;
        SQLite's has none. `escape ''` makes a pattern match the same rows on both."""
        return f"{column} like %s escape ''"

    #: the row locks of the pessimistic lock modes, by LockMode name
    _LOCK_CLAUSES = {"PESSIMISTIC_WRITE": " for update", "PESSIMISTIC_READ": " for share"}

    def lock_clause(self, mode: Any) -> str:
        return self._LOCK_CLAUSES[mode.name]

    def regexp(self, column: str) -> str:
        """POSIX regular expression match (`~`), case-sensitive like SQLite's `regexp`."""
        return f"{column} ~ %s"

    def as_text(self, column: str, prop: Any) -> str:
        """`like` and `~` take text only here: any other column (jsonb, a number, a uuid,
        a timestamp) is matched as its text, as on SQLite."""
        kind = self.column_type(prop).lower()
        if kind == "text" or kind.startswith(("varchar", "character", "char")):
            return column
        return f"{column}::text"

    def update_from_values(
        self, table: str, key: str, columns: Sequence[str], rows: int
    ) -> str:
        """`update t set c = "v"."c1" ... from (values (...), ...) as "v"("c1", ..., "key")
        where t.key = "v"."key"`: the VALUES list's columns are named positionally, so no
        column of the table can clash with the key's alias.

        The Unit of Work does not use it here (`supports_update_from` is False): PostgreSQL
        types a VALUES column from its values, so a text-bound value (JSON) fails with 42804
        against its column without a cast on the first row, and the pipelined executemany
        measured as fast or faster."""
        names = [f"c{k}" for k in range(1, len(columns) + 1)]
        sets = ", ".join(f'{c} = "v"."{n}"' for c, n in zip(columns, names, strict=True))
        values = ", ".join([self.row(len(columns) + 1)] * rows)
        aliases = ", ".join(f'"{n}"' for n in [*names, "key"])
        return (
            f'update {table} set {sets} from (values {values}) as "v"({aliases}) '
            f'where {table}.{key} = "v"."key"'
        )

    def first_generated_key(self, cursor: Any, count: int) -> int:
        """Never guessed on PostgreSQL: concurrent writers interleave their sequence values,
        so a batch's keys are not consecutive."""
        raise NotImplementedError(
            "PostgreSQL returns generated keys with `insert ... returning` "
            "(supports_returning is True); keys are never derived from a cursor here"
        )

    # -- DDL --------------------------------------------------------------------------------
    def column_type(self, prop: Any) -> str:
        from .postgresql_types import column_type_of

        if prop.relation is not None:  # a foreign key: the type of the key it holds
            return self.column_type(prop.relation.target_meta.pk)
        if prop.primary and prop.autoincrement:
            return "bigint"
        if prop.column_type:
            return str(prop.column_type)
        return column_type_of(prop.type, prop)

    def default_literal(self, prop: Any) -> str | None:
        """A DDL default for simple literal defaults (so that `update_schema` can add a NOT
        NULL column to a table that has rows), written as `pg_get_expr` shows it back."""
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
            return "true" if value else "false"
        if isinstance(value, int):
            return str(int(value))
        if isinstance(value, float):
            if value != value:
                return None
            if value in (float("inf"), float("-inf")):
                return f"'{'-' if value < 0 else ''}Infinity'::double precision"
            return repr(value)
        if isinstance(value, Decimal):
            return str(value) if value.is_finite() else None
        if isinstance(value, str):
            return self.quote_value(value)
        return None

    def column_definition(self, prop: Any) -> str:
        parts = [self.quote(prop.field_name), self.column_type(prop)]
        if prop.primary:
            if prop.autoincrement:
                parts.append("generated by default as identity")
            parts.append("not null primary key")
            return " ".join(parts)
        parts.append("null" if prop.nullable else "not null")
        default = self.default_literal(prop)
        if default is not None:
            parts.append(f"default {default}")
        return " ".join(parts)

    def same_type(self, wanted: str, live: str) -> bool:
        """`varchar(10)` is `character varying(10)`, `timestamp` is `timestamp without time
        zone`, `decimal(10,2)` is `numeric(10,2)`, ..."""
        return _type_key(wanted) == _type_key(live)

    def same_default(self, wanted: str | None, live: str | None) -> bool:
        """`'abc'` is `'abc'::text`; a number is the same number however it is written
        (`-1` and `'-1'::integer`, `1e+100` and its digits); text literals compare as
        written."""
        want, have = _bare_default(wanted), _bare_default(live)
        if want == have:
            return True
        if want is None or have is None:
            return False
        quoted_want, quoted_have = want.startswith("'"), have.startswith("'")
        if quoted_want != quoted_have:
            # a constant PostgreSQL folded (`'-1'::integer`) against a plain literal
            if quoted_want:
                want = want[1:-1].replace("''", "'") if want.endswith("'") else want
            else:
                have = have[1:-1].replace("''", "'") if have.endswith("'") else have
        if _NUMBER.fullmatch(want) and _NUMBER.fullmatch(have):
            return Decimal(want) == Decimal(have)
        return want == have

    def convert(self, expression: str, from_type: str, to_type: str) -> str:
        """`expression` (of `from_type`) as `to_type`: a cast, except between integers and
        booleans, which PostgreSQL does not cast (`<> 0` one way, 1/0 the other)."""
        source, target = _base_type(from_type), _base_type(to_type)
        if source in _INTEGERS and target == "boolean":
            return f"({expression} <> 0)"
        if source == "boolean" and target in _INTEGERS:
            return f"(case when {expression} then 1 else 0 end)::{to_type}"
        return f"{expression}::{to_type}"

    def lossy_rows(self, table: str, column: str, from_type: str, to_type: str) -> str:
        """A count of the rows whose value would not come back the same after the column
        became `to_type` (a cast truncates varchar, rounds numeric, drops a time of day,
        silently): taking it back to `from_type` must give the value it was."""
        there = self.convert(column, from_type, to_type)
        back = self.convert(f"({there})", to_type, from_type)
        return (
            f"select count(*) from {self.quote(table)} where {column} is not null "
            f"and {back} is distinct from {column}"
        )

    def alter_column(self, table: str, prop: Any, live: LiveColumn) -> list[str]:
        """`alter table ... alter column` statements that turn the live column into the one
        `prop` wants, in the order PostgreSQL needs: the old default dropped before a type
        change (it may not cast), the type changed with `using column::type`, the new
        default set, NULLs filled with the literal default before `set not null`, identity
        added last (it needs an integer NOT NULL column), its sequence moved past the
        largest key. Primary key constraints are the caller's (`drop_primary_key`)."""
        name = self.quote(table)
        column = self.quote(prop.field_name)
        alter = f"alter table {name} alter column {column}"
        out: list[str] = []
        wanted_type = self.column_type(prop)
        retyped = not self.same_type(wanted_type, live.type)
        identity = bool(prop.primary and prop.autoincrement)
        live_identity = (live.default or "").startswith("generated ")
        live_default = None if live_identity else live.default
        wanted_default = self.default_literal(prop)
        new_default = not self.same_default(wanted_default, live_default)
        if live_identity and not identity:
            out.append(f"{alter} drop identity")
        if live_default is not None and (retyped or (new_default and wanted_default is None)):
            out.append(f"{alter} drop default")
        if retyped:
            using = self.convert(column, live.type, wanted_type)
            out.append(f"{alter} type {wanted_type} using {using}")
        if wanted_default is not None and (new_default or (retyped and live_default is not None)):
            out.append(f"{alter} set default {wanted_default}")
        not_null = bool(prop.primary or not prop.nullable)
        if not_null and not live.notnull:
            if wanted_default is not None:
                out.append(f"update {name} set {column} = {wanted_default} where {column} is null")
            out.append(f"{alter} set not null")
        elif not not_null and live.notnull:
            out.append(f"{alter} drop not null")
        if identity and not live_identity:
            out.append(f"{alter} add generated by default as identity")
            out.append(
                f"select setval(pg_get_serial_sequence({self.quote_value(name)}, "
                f"{self.quote_value(prop.field_name)}), coalesce((select max({column}) from "
                f"{name}), 0) + 1, false)"
            )
        return out

    def drop_primary_key(self, connection: Connection, table: str) -> str:
        """`alter table t drop constraint <its primary key's name>` (read from
        pg_constraint: `t_pkey` unless the table was created otherwise)."""
        rows = connection.query(
            "select con.conname from pg_constraint con "
            "join pg_class c on c.oid = con.conrelid "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = current_schema() and c.relname = %s and con.contype = 'p'",
            (table,),
        )
        constraint = rows[0][0] if rows else f"{table}_pkey"
        return f"alter table {self.quote(table)} drop constraint {self.quote(constraint)}"

    def ddl_script(self, sql: str, schema: str | None = None) -> str:
        """As the base, plus the session settings the ORM's connections have: the time zone
        UTC (a retype between timestamp and timestamptz converts in the session's zone, so
        psql with another TimeZone or PGTZ would shift every value) and, with a `schema`,
        the `search_path` (without it psql would create the tables in `public`)."""
        script = super().ddl_script(sql)
        if not script:
            return script
        settings = "set local timezone to 'UTC';\n"
        if schema:
            settings += f"set local search_path to {self.quote(schema)};\n"
        return script.replace("begin;\n", "begin;\n" + settings, 1)

    def create_namespace(self, schema: str) -> str:
        return f"create schema if not exists {self.quote(schema)}"

    # -- schema -----------------------------------------------------------------------------
    # Best effort, and by name in one schema: `schema` (None: the connection's
    # current_schema(), the first of its search_path).
    def live_tables(self, connection: Connection, schema: str | None = None) -> set[str]:
        rows = connection.query(
            "select table_name from information_schema.tables "
            "where table_schema = coalesce(%s, current_schema()) "
            "and table_type = 'BASE TABLE'",
            (schema,),
        )
        return {r[0] for r in rows}

    def live_columns(
        self, connection: Connection, table: str, schema: str | None = None
    ) -> list[LiveColumn]:
        """Columns in table order, the type as `format_type` spells it (`bigint`,
        `character varying(20)`, `numeric(10,2)`, `timestamp with time zone`). An identity
        column's `default` is its clause, `generated by default as identity` (or
        `always`), since it has no default expression."""
        rows = connection.query(
            "select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "case a.attidentity when 'd' then 'generated by default as identity' "
            "when 'a' then 'generated always as identity' "
            "else pg_get_expr(d.adbin, d.adrelid) end, "
            "coalesce(i.indisprimary, false) "
            "from pg_attribute a "
            "join pg_class c on c.oid = a.attrelid "
            "join pg_namespace n on n.oid = c.relnamespace "
            "left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum "
            "left join pg_index i on i.indrelid = a.attrelid and i.indisprimary "
            "and a.attnum = any(i.indkey) "
            "where n.nspname = coalesce(%s, current_schema()) and c.relname = %s "
            "and a.attnum > 0 and not a.attisdropped "
            "order by a.attnum",
            (schema, table),
        )
        return [LiveColumn(r[0], r[1], bool(r[2]), r[3], bool(r[4])) for r in rows]

    supports_comments = True

    def live_comments(
        self, connection: Connection, table: str, schema: str | None = None
    ) -> dict[str, str]:
        rows = connection.query(
            "select a.attname, d.description from pg_description d "
            "join pg_class c on c.oid = d.objoid "
            "join pg_namespace n on n.oid = c.relnamespace "
            "join pg_attribute a on a.attrelid = c.oid and a.attnum = d.objsubid "
            "where d.classoid = 'pg_class'::regclass and d.objsubid > 0 "
            "and n.nspname = coalesce(%s, current_schema()) and c.relname = %s",
            (schema, table),
        )
        return {r[0]: r[1] for r in rows}

    def live_indexes(
        self, connection: Connection, table: str, schema: str | None = None
    ) -> list[LiveIndex]:
        """Indexes made by `create index` (not those behind a primary key, unique or
        exclusion constraint), their columns in index order; an expression's place is
        left out."""
        rows = connection.query(
            "select ic.relname, ix.indisunique, array("
            "select a.attname from unnest(ix.indkey::int2[]) with ordinality k(attnum, ord) "
            "join pg_attribute a on a.attrelid = ix.indrelid and a.attnum = k.attnum "
            "order by k.ord) "
            "from pg_index ix "
            "join pg_class ic on ic.oid = ix.indexrelid "
            "join pg_class t on t.oid = ix.indrelid "
            "join pg_namespace n on n.oid = t.relnamespace "
            "where n.nspname = coalesce(%s, current_schema()) and t.relname = %s "
            "and not exists (select 1 from pg_constraint con where con.conrelid = ix.indrelid "
            "and con.conindid = ix.indexrelid and con.contype in ('p', 'u', 'x')) "
            "order by ic.relname",
            (schema, table),
        )
        return [LiveIndex(r[0], tuple(r[2]), bool(r[1])) for r in rows]

    def live_foreign_keys(
        self, connection: Connection, table: str, schema: str | None = None
    ) -> list[LiveForeignKey]:
        """Single-column foreign key constraints, with their names (to drop one)."""
        rows = connection.query(
            "select con.conname, a.attname, ft.relname, fa.attname, con.confupdtype, "
            "con.confdeltype "
            "from pg_constraint con "
            "join pg_class t on t.oid = con.conrelid "
            "join pg_namespace n on n.oid = t.relnamespace "
            "join pg_class ft on ft.oid = con.confrelid "
            "join pg_attribute a on a.attrelid = con.conrelid and a.attnum = con.conkey[1] "
            "join pg_attribute fa on fa.attrelid = con.confrelid and fa.attnum = con.confkey[1] "
            "where con.contype = 'f' and cardinality(con.conkey) = 1 "
            "and n.nspname = coalesce(%s, current_schema()) and t.relname = %s "
            "order by con.conname",
            (schema, table),
        )
        return [
            LiveForeignKey(r[1], r[2], r[3], _FK_ACTIONS[r[4]], _FK_ACTIONS[r[5]], r[0])
            for r in rows
        ]

    # -- logging ----------------------------------------------------------------------------
    def quote_value(self, value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return "array[" + ", ".join(self.quote_value(v) for v in value) + "]"
        if isinstance(value, (bytes, bytearray, memoryview)):
            return "'\\x" + bytes(value).hex() + "'"
        return super().quote_value(value)

    def inline_params(self, sql: str, params: Any) -> str:
        """As the base does, and `%%` (a literal `%` in psycopg's syntax) stays as it is
        written: it is never the start of a placeholder."""
        if not params:
            return sql
        out: list[str] = []
        values = iter(params)
        quote: str | None = None
        i, n = 0, len(sql)
        while i < n:
            ch = sql[i]
            if quote is not None:
                if ch == quote:
                    quote = None
                out.append(ch)
            elif ch in "'\"":
                quote = ch
                out.append(ch)
            elif ch == "%" and i + 1 < n:
                nxt = sql[i + 1]
                if nxt == "s":
                    out.append(self.quote_value(next(values, None)))
                elif nxt == "%":
                    out.append("%%")
                else:
                    out.append(ch)
                    i += 1
                    continue
                i += 2
                continue
            else:
                out.append(ch)
            i += 1
        return "".join(out)

    # -- errors -----------------------------------------------------------------------------
    def map_error(
        self,
        exc: BaseException,
        sql: str,
        params: Any,
        resolve_column: Any = None,
        database: str | None = None,
    ) -> errors.DriverException:
        """The specific DriverException for a psycopg error, chosen by SQLSTATE (never by
        the message text, which the server translates), with the server's message, its
        detail, the entity and property when `resolve_column(table, column)` knows them,
        and what to do."""
        state: str = getattr(exc, "sqlstate", None) or ""
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None)
        detail = getattr(diag, "message_detail", None)
        table = getattr(diag, "table_name", None)
        column = getattr(diag, "column_name", None)
        constraint = getattr(diag, "constraint_name", None)
        text = primary or _first_line(str(exc))
        entity = prop = None

        def where(column: str | None) -> str:
            nonlocal entity, prop
            if table and column and resolve_column is not None:
                entity, prop = resolve_column(table, column)
            if entity and prop:
                return f"{entity}.{prop}"
            if table and column:
                return f'column "{column}" of table "{table}"'
            return "the value"

        cls: type[errors.DriverException] = errors.DriverException
        hint = ""
        if state == "23505":
            cls = errors.UniqueConstraintViolationException
            hint = (
                f"{where(column or _key_column(detail))} must be unique and another row "
                f"already holds this value"
            )
        elif state == "23503":
            cls = errors.ForeignKeyConstraintViolationException
            referenced_from = _REFERENCED_FROM.search(detail or "")
            if referenced_from:
                hint = (
                    f'the row is still referenced from table "{referenced_from.group(1)}": '
                    f"remove or reassign the rows that reference it first, or let the "
                    f"relation cascade the delete"
                )
            else:
                hint = (
                    f"{where(column or _key_column(detail))} references a row that does not "
                    f"exist: persist (and flush) the referenced entity first, or fix the key"
                )
        elif state == "23502":
            cls = errors.NotNullConstraintViolationException
            hint = f"{where(column)} may not be null"
        elif state == "23514":
            cls = errors.CheckConstraintViolationException
            name = f' "{constraint}"' if constraint else ""
            hint = f"the CHECK constraint{name} refused the value"
            if not column and table and constraint and resolve_column is not None:
                # a column's own CHECK is named "<table>_<column>_check" by PostgreSQL
                guess = _CHECK_NAME.match(constraint)
                if guess and guess.group(1).startswith(table + "_"):
                    candidate = guess.group(1)[len(table) + 1 :]
                    if resolve_column(table, candidate)[1] is not None:
                        column = candidate
            if column:
                hint += f" of {where(column)}"
            elif table and resolve_column is not None:
                entity = resolve_column(table, "")[0]
                if entity:
                    hint += f" of a {entity}"
        elif state.startswith("23"):
            cls = errors.ConstraintViolationException
        elif state == "42P01":
            cls = errors.TableNotFoundException
            hint = _HINT_CREATE_SCHEMA
        elif state == "42P07":
            cls = errors.TableExistsException
            hint = "use orm.schema.update_schema(), or drop the table first"
        elif state == "42703":
            cls = errors.InvalidFieldNameException
            hint = "the table does not match the entity: run orm.schema.update_schema()"
        elif state == "42601":
            cls = errors.SyntaxErrorException
            hint = "a literal % in SQL text is written %%"
        elif state == "40001":
            cls = errors.SerializationFailureException
            hint = (
                f"a concurrent transaction changed rows this one read or wrote: {_HINT_RETRY}"
            )
        elif state == "40P01":
            cls = errors.DeadlockException
            hint = (
                f"this transaction and another waited on each other's locks: {_HINT_RETRY}; "
                f"taking locks in the same order everywhere avoids it"
            )
        elif state == "55P03":
            cls = errors.LockWaitTimeoutException
            hint = (
                "another transaction holds a lock on these rows or this table (NOWAIT, or "
                "lock_timeout ran out): retry later, and keep transactions short"
            )
        elif state == "25006":
            cls = errors.ReadOnlyException
            hint = (
                "the server or this transaction is read-only (a standby, or "
                "default_transaction_read_only): write through the primary"
            )
        elif state == "25P02":
            hint = (
                "an earlier statement of this transaction failed, and PostgreSQL refuses "
                "every statement until the transaction (or savepoint) is rolled back: roll "
                "back, or run the statement that may fail in a nested transaction"
            )
        elif not state and text.startswith("cannot adapt type "):
            # psycopg names the type it could not adapt, not the parameter: the first one of
            # that type is taken for it
            name = text[len("cannot adapt type "):].split(" ", 1)[0].strip("'")
            index = next(
                (i for i, p in enumerate(params or ()) if type(p).__name__ == name), None
            )
            entity, prop, hint = unbindable_hint(
                sql, params, index, resolve_column,
                "values psycopg adapts: text, numbers, bytes, dates, times, UUID, lists, None",
            )
        elif state.startswith("08") or state in ("57P01", "57P02", "57P03") or (
            not state and type(exc).__name__ == "OperationalError"
        ):
            cls = errors.ConnectionException
            hint = (
                "check that the server is running and reachable; the statement may not "
                "have run, and an open transaction is lost"
            )
        if cls is errors.ConnectionException:
            message = f"Connection to {database or 'PostgreSQL'} failed: {text} ({hint})"
            if sql:
                message += f". The statement was: {sql}"
            return cls(message, sql=sql, params=params)
        message = f"{sql} - {text}" if sql else text
        if detail:
            message += f": {detail}"
        if hint:
            message += f" ({hint})"
        return cls(message, sql=sql, params=params, entity=entity, property=prop)
