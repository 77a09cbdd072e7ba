"""`update_schema`'s diff of the metadata against the live database (what it does: see
orm.schema.generator). Imported by the first `update_schema` or `get_update_schema_sql`: a
script that creates its schema (or only uses it) never loads these 27 KB of bytecode."""

from __future__ import annotations

from .._typing import TYPE_CHECKING
from ..errors import DriverException, ValidationError
from ..platforms.base import LiveColumn as _LiveColumn
from ..platforms.base import LiveForeignKey as _ForeignKey
from ..platforms.base import LiveIndex as _Index
from .generator import SchemaGenerator

if TYPE_CHECKING:
    from ..metadata.model import EntityMetadata, PivotMetadata, PropertyMetadata

__all__ = ["SchemaUpdate"]


class SchemaUpdate(SchemaGenerator):
    """The generator with the diff: built from the same metadata, platform, connection and
    naming strategy as the SchemaGenerator whose update it runs."""

    def _update_statements(self) -> list[str]:
        """The difference; on PostgreSQL preceded by the creation of the `schema` only where
        it may be missing (it holds no table yet)."""
        live = self._live_tables()
        metas = self._metas
        statements = self._create_all([m for m in metas if m.table not in live], live)
        for meta in metas:
            if meta.table in live:
                statements += self._table_diff(meta)
        for pivot in self.metadata.pivots:
            if pivot.table in live:
                statements += self._pivot_diff(pivot)
        return statements if live else self._namespace(statements)

    def _same_key_type(self, wanted: str, live: str) -> bool:
        """A pivot column's type as its pairs need it: on SQLite its affinity (`int` and
        `integer` store and compare keys alike), elsewhere the type itself."""
        if self.platform.name != "sqlite":
            return self.platform.same_type(wanted, live)
        return _affinity(wanted) == _affinity(live)

    def _pivot_diff(self, pivot: PivotMetadata) -> list[str]:
        """An existing pivot table checked against its many-to-many: both key columns, of
        the right type, in the primary key, each a foreign key `on delete cascade` (what
        deletes the pairs of a removed entity). One that differs is refused, not rebuilt:
        its pairs would have to be carried over, which only its owner knows how to do. The
        index on the second column is created if it is missing."""
        live_cols = {c.name: c for c in self._live_columns(pivot.table)}
        live_keys = self.platform.live_foreign_keys(self.connection, pivot.table)
        problems = []
        for column in (pivot.owner_column, pivot.target_column):
            name = column.field_name
            wanted_type = self.platform.column_type(column)
            live = live_cols.get(name)
            target = column.relation.target_meta  # type: ignore[union-attr]
            key = _ForeignKey(name, target.table, target.pk.field_name, "cascade", "cascade")
            if live is None:
                problems.append(f"it has no column {name!r}")
            elif not self._same_key_type(wanted_type, live.type) or not live.pk:
                problems.append(
                    f"column {name!r} is {(live.type or 'untyped').lower()}"
                    f"{'' if live.pk else ' outside the primary key'}; it should be "
                    f"{wanted_type}, in the primary key"
                )
            elif key not in live_keys:
                problems.append(
                    f"column {name!r} is not a foreign key to {target.table!r} "
                    f"(on update cascade on delete cascade)"
                )
        if problems:
            owner = pivot.owner_meta.class_name
            raise ValidationError(
                f"Cannot update the schema of {owner}.{pivot.prop.name}: its pivot table "
                f"{pivot.table!r} exists but differs ({'; '.join(problems)}). update_schema "
                f"does not rebuild a pivot table, whose pairs would have to be carried over: "
                f"alter it to match, point the relation at it (pivot_table, join_column), or "
                f"drop it if its pairs can go (update_schema then creates it). Nothing was "
                f"changed.",
                entity=owner, property=pivot.prop.name,
            )
        index, create = self._pivot_index(pivot)
        if index in {i.name for i in self._live_indexes(pivot.table)}:
            return []
        return [create]

    def _live_columns(self, table: str) -> list[_LiveColumn]:
        return self.platform.live_columns(self.connection, table)

    def _live_indexes(self, table: str) -> list[_Index]:
        return self.platform.live_indexes(self.connection, table)

    # -- diff -------------------------------------------------------------------------------
    def _column_matches(self, prop: PropertyMetadata, live: _LiveColumn) -> bool:
        if not self.platform.same_type(self.platform.column_type(prop), live.type):
            return False
        if prop.primary != live.pk:
            return False
        if not prop.primary and (not prop.nullable) != live.notnull:
            return False
        if not prop.primary:
            wanted = self.platform.default_literal(prop)
            if not self.platform.same_default(wanted, live.default):
                return False
        return True

    def _can_add(self, prop: PropertyMetadata) -> bool:
        """SQLite's ADD COLUMN takes no primary key or unique column, and a NOT NULL one only
        with a default."""
        if prop.primary or prop.unique:
            return False
        return prop.nullable or self.platform.default_literal(prop) is not None

    def _table_diff(self, meta: EntityMetadata) -> list[str]:
        live_cols = {c.name: c for c in self._live_columns(meta.table)}
        if self.platform.supports_alter_column:
            return self._alter(meta, live_cols)
        wanted = {p.field_name: p for p in meta.columns}
        added = [p for name, p in wanted.items() if name not in live_cols]
        dropped = [name for name in live_cols if name not in wanted]
        changed = [
            p for name, p in wanted.items()
            if name in live_cols and not self._column_matches(p, live_cols[name])
        ]
        missing_keys, stale_keys = self._foreign_key_diff(meta, live_cols)
        if (
            dropped or changed or missing_keys or stale_keys
            or any(not self._can_add(p) for p in added)
        ):
            return self._rebuild(meta, live_cols)
        statements = [
            f"alter table {self.quote(meta.table)} add column {self._column_sql(p)}"
            for p in added
        ]
        drops, creates = self._index_diff(meta)
        return statements + drops + creates

    def _foreign_key_diff(
        self, meta: EntityMetadata, live_cols: dict[str, _LiveColumn]
    ) -> tuple[list[PropertyMetadata], list[_ForeignKey]]:
        """The relations of columns that exist whose foreign key is missing or differs
        (another target, another `on delete`), checked against the rows (`_check_references`),
        and the live foreign keys no longer wanted as they are. A new column brings its
        foreign key with it, and a dropped one takes its own away."""
        wanted = self._foreign_keys(meta)
        kept = {p.field_name for p in meta.columns}
        live = [
            key for key in self.platform.live_foreign_keys(self.connection, meta.table)
            if key.column in kept
        ]
        missing = [
            prop for key, prop in wanted.items()
            if prop.field_name in live_cols and key not in live
        ]
        stale = [key for key in live if key not in wanted]
        self._check_references(meta, missing)
        return missing, stale

    def _check_references(self, meta: EntityMetadata, props: list[PropertyMetadata]) -> None:
        """Refuse, before anything is written, a foreign key that the rows already there
        would break: values in the column with no row of the target table (or any value,
        when that table is still to be created)."""
        if not props:
            return
        live_tables = self._live_tables()
        table = self.quote(meta.table)
        for prop in props:
            target = prop.relation.target_meta  # type: ignore[union-attr]
            column = self.quote(prop.field_name)
            sql = f"select count(*) from {table} where {column} is not null"
            if target.table in live_tables:
                sql += (
                    f" and not exists (select 1 from {self.quote(target.table)} t where "
                    f"t.{self.quote(target.pk.field_name)} = {table}.{column})"
                )
            dangling = self._count(sql)
            if dangling:
                raise ValidationError(
                    f"Cannot update the schema of {meta.class_name}: {prop.name} becomes a "
                    f"foreign key to {target.class_name}, but column {prop.field_name!r} of "
                    f"table {meta.table!r} holds, in {_rows(dangling)}, a value no "
                    f"{target.class_name} row has as its key. Point those rows at existing "
                    f"{target.class_name} rows or set the column to NULL first; nothing was "
                    f"changed.",
                    entity=meta.class_name, property=prop.name,
                )

    def _index_diff(self, meta: EntityMetadata) -> tuple[list[str], list[str]]:
        """`drop index` for the live indexes not wanted as they are, `create index` for the
        wanted ones missing."""
        live_idx = {i.name: i for i in self._live_indexes(meta.table)}
        wanted_idx = {i.name: i for i in self._indexes(meta)}
        drops = [
            f"drop index {self.quote(name)}"
            for name, index in live_idx.items() if wanted_idx.get(name) != index
        ]
        creates = [
            self._index_sql(meta, index)
            for name, index in wanted_idx.items() if live_idx.get(name) != index
        ]
        return drops, creates

    def _alter(self, meta: EntityMetadata, live_cols: dict[str, _LiveColumn]) -> list[str]:
        """The difference as `alter table` statements (no rebuild): indexes no longer
        wanted dropped first, then a primary key that moves, dropped columns, added ones,
        each kept column altered (`platform.alter_column`), the moved primary key added, and
        the missing indexes created. The data checks are the rebuild's."""
        self._check_rebuild(meta, live_cols)
        self._check_conversions(meta, live_cols)
        platform, table = self.platform, self.quote(meta.table)
        missing_keys, stale_keys = self._foreign_key_diff(meta, live_cols)
        drops, creates = self._index_diff(meta)
        statements = [
            f"alter table {table} drop constraint {self.quote(key.name)}"  # type: ignore[arg-type]
            for key in stale_keys
        ]
        statements += drops
        live_pk = [name for name, column in live_cols.items() if column.pk]
        wanted_pk = [p.field_name for p in meta.columns if p.primary]
        moved = live_pk != wanted_pk
        if moved and live_pk:
            statements.append(platform.drop_primary_key(self.connection, meta.table))
        wanted = {p.field_name for p in meta.columns}
        statements += [
            f"alter table {table} drop column {self.quote(name)}"
            for name in live_cols if name not in wanted
        ]
        for prop in meta.columns:
            live = live_cols.get(prop.field_name)
            if live is None:
                statements.append(f"alter table {table} add column {self._column_sql(prop)}")
            else:
                statements += platform.alter_column(meta.table, prop, live)
        kept_pk = [name for name in wanted_pk if name in live_cols]
        if moved and kept_pk:
            columns = ", ".join(self.quote(name) for name in kept_pk)
            statements.append(f"alter table {table} add primary key ({columns})")
        comments = platform.live_comments(self.connection, meta.table)
        statements += [self._add_foreign_key_sql(meta, prop) for prop in missing_keys]
        return statements + creates + self._comment_diff(meta, comments)

    def _check_conversions(
        self, meta: EntityMetadata, live_cols: dict[str, _LiveColumn]
    ) -> None:
        """Refuse, before anything is written, a type change that would change stored
        values: a cast truncates text to a shorter varchar, rounds numbers to fewer places
        or to integers, drops the time of a timestamp, and says nothing. A value the new
        type cannot hold at all ('abc' as a number) is refused the same way."""
        platform = self.platform
        for prop in meta.columns:
            live = live_cols.get(prop.field_name)
            wanted = platform.column_type(prop)
            if live is None or platform.same_type(wanted, live.type):  # type: ignore[attr-defined]
                continue
            check = platform.lossy_rows(  # type: ignore[attr-defined]
                meta.table, self.quote(prop.field_name), live.type, wanted
            )
            try:
                with self.connection.transaction():  # a failed cast must not end an outer one
                    changed = self._count(check)
                problem = f"would change the values of {_rows(changed)}"
            except DriverException as exc:
                changed = -1
                problem = (
                    f"fails: some rows hold a value the new type cannot hold "
                    f"({str(exc).split(' - ', 1)[-1]})"
                )
            if changed:
                raise ValidationError(
                    f"Cannot update the schema of {meta.class_name}: changing column "
                    f"{prop.field_name!r} of table {meta.table!r} from {live.type} to "
                    f"{wanted} {problem}. Convert or fix those rows first (or keep the old "
                    f"type); nothing was changed.",
                    entity=meta.class_name, property=prop.name,
                )

    def _copy_expression(self, prop: PropertyMetadata, live: _LiveColumn) -> str:
        """What the rebuild copies into a column: the old value, or the property's literal
        default where the old value is NULL and the column becomes NOT NULL."""
        column = self.quote(prop.field_name)
        if prop.primary or prop.nullable or live.notnull:
            return column
        default = self.platform.default_literal(prop)
        return column if default is None else f"coalesce({column}, {default})"

    def _count(self, sql: str) -> int:
        return int(self.connection.query(sql)[0][0])

    def _check_rebuild(self, meta: EntityMetadata, live_cols: dict[str, _LiveColumn]) -> None:
        """Refuse, before anything is written, a rebuild whose copy the new constraints would
        reject: NULLs (old ones, or a new column's) in a NOT NULL column with no literal default
        to fill them with (a `default_factory` runs only for new entities), and duplicates in
        a column that becomes the primary key. The message names the property and what to
        do, where the database would only name a temporary table."""
        table = self.quote(meta.table)
        rows: int | None = None
        for prop in meta.columns:
            column = self.quote(prop.field_name)
            live = live_cols.get(prop.field_name)
            if prop.primary and prop.autoincrement:
                continue  # SQLite numbers rows that have no key
            if prop.primary and live is not None and not live.pk:
                duplicates = self._count(
                    f"select count({column}) - count(distinct {column}) from {table}"
                )
                if duplicates:
                    raise ValidationError(
                        f"Cannot update the schema of {meta.class_name}: {prop.name} becomes "
                        f"the primary key of table {meta.table!r}, but {_rows(duplicates)} "
                        f"{'repeats' if duplicates == 1 else 'repeat'} a value another row holds in column {prop.field_name!r}. Make "
                        f"the values unique first; nothing was changed.",
                        entity=meta.class_name, property=prop.name,
                    )
            if prop.nullable and not prop.primary:
                continue
            if not prop.primary and self.platform.default_literal(prop) is not None:
                continue  # coalesced by the copy, or the column default of a new column
            if live is None:
                if rows is None:
                    rows = self._count(f"select count(*) from {table}")
                nulls, why = rows, "is new, so it would be NULL in"
            elif live.notnull or (live.pk and prop.primary):
                continue
            else:
                nulls = self._count(f"select count(*) from {table} where {column} is null")
                why = "holds NULL in"
            if nulls:
                has_factory = prop.default_factory is not None
                reason = (
                    "its default_factory runs only for new entities" if has_factory
                    else "it has no default"
                )
                if live is None:  # nothing to fill yet: the column does not exist
                    fix = (
                        f"Declare {prop.name} nullable=True first, update the schema, fill "
                        f"the column (update {meta.table} set {prop.field_name} = ...), then "
                        f"make it NOT NULL; or give {prop.name} a literal default=..."
                    )
                else:
                    fix = (
                        f"Fill those rows first (update {meta.table} set {prop.field_name} = "
                        f"... where {prop.field_name} is null), or give {prop.name} a literal "
                        f"default=..."
                    )
                raise ValidationError(
                    f"Cannot update the schema of {meta.class_name}: {prop.name} becomes NOT "
                    f"NULL, but column {prop.field_name!r} of table {meta.table!r} {why} "
                    f"{_rows(nulls)}, and {reason}. {fix}; nothing was changed.",
                    entity=meta.class_name, property=prop.name,
                )

    def _rebuild(self, meta: EntityMetadata, live_cols: dict[str, _LiveColumn]) -> list[str]:
        """A new table, the rows copied, the old one dropped and the new one renamed. What
        dropping the table would take silently is said or made again: the indexes it has
        that the entity does not declare are dropped first, by name, as an update without a
        rebuild drops them; its triggers are made again after the rename."""
        self._check_rebuild(meta, live_cols)
        temp = f"_orm_new_{meta.table}"
        common = [p for p in meta.columns if p.field_name in live_cols]
        wanted = {index.name for index in self._indexes(meta)}
        statements = [
            f"drop index {self.quote(index.name)}"
            for index in self._live_indexes(meta.table) if index.name not in wanted
        ]
        statements.append(self._table_sql(meta, temp))
        if common:
            targets = ", ".join(self.quote(p.field_name) for p in common)
            sources = ", ".join(
                self._copy_expression(p, live_cols[p.field_name]) for p in common
            )
            statements.append(
                f"insert into {self.quote(temp)} ({targets}) select {sources} from "
                f"{self.quote(meta.table)}"
            )
        keep_sequence = getattr(self.platform, "keep_key_sequence", None)
        if meta.pk.autoincrement and keep_sequence is not None:
            statements += keep_sequence(meta.table, temp, meta.pk.field_name)
        elif meta.pk.autoincrement:
            # keep the AUTOINCREMENT high-water mark: dropping the old table forgets it, and a
            # key once handed out must never come back
            old, new = self.platform.quote_value(meta.table), self.platform.quote_value(temp)
            pk = self.quote(meta.pk.field_name)
            statements += [
                f"insert into sqlite_sequence (name, seq) select {new}, max(coalesce((select "
                f"max(seq) from sqlite_sequence where name in ({old}, {new})), 0), "
                f"coalesce((select max({pk}) from {self.quote(temp)}), 0))",
                f"delete from sqlite_sequence where name = {new} and rowid < (select "
                f"max(rowid) from sqlite_sequence where name = {new})",
            ]
        statements.append(f"drop table {self.quote(meta.table)}")
        statements += self.platform.rename_table(temp, meta.table)
        statements += [self._index_sql(meta, i) for i in self._indexes(meta)]
        statements += self.platform.live_triggers(self.connection, meta.table)
        broken = self.platform.broken_by(self.connection, meta.table, statements)
        if broken:
            kept = {p.field_name for p in meta.columns}
            dropped = [name for name in live_cols if name not in kept]
            what = f"dropping column(s) {', '.join(map(repr, dropped))}" if dropped else "it"
            raise ValidationError(
                f"Cannot update the schema of {meta.class_name}: table {meta.table!r} must be "
                f"rebuilt, and {what} would break {'; '.join(broken)}. Drop or change "
                f"{'them' if len(broken) > 1 else 'it'} first (as SQLite's own drop column "
                f"asks); nothing was changed.",
                entity=meta.class_name,
            )
        return statements


def _rows(n: int) -> str:
    return "1 row" if n == 1 else f"{n} rows"


def _affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (its rules, in their order)."""
    t = (declared or "").upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if not t or "BLOB" in t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"

