"""SchemaGenerator: create, drop and update the schema by diffing the live database.

`update_schema` reads what exists (through the platform's introspection) and emits only
the difference: missing tables, added columns, added or dropped indexes, foreign keys a column
gains, loses or changes (a new one checked against the rows first). Where the platform
alters columns in place (PostgreSQL, `supports_alter_column`), a dropped, retyped or
re-defaulted column, a changed nullability or primary key are `alter table` statements. What
SQLite cannot `alter` (a dropped or retyped column, a changed nullability or default, a new
NOT NULL column without default, a foreign key) is done by rebuilding the table: create the new shape, copy
the common columns, drop the old table, rename, recreate its indexes. Either way everything
runs inside one transaction, so the data is preserved or nothing changes. NULLs in a column
that becomes NOT NULL are filled with the property's literal default (the copy's coalesce,
or an `update` before `set not null`); data no default can fix (NULLs with only a
`default_factory`, duplicate keys) is refused with a ValidationError before any statement
runs.
"""

from __future__ import annotations

from .._typing import TYPE_CHECKING
from ..metadata.model import EntityMetadata, PivotMetadata, PropertyMetadata
from ..platforms.base import LiveForeignKey as _ForeignKey
from ..platforms.base import LiveIndex as _Index

if TYPE_CHECKING:
    from ..connection import Connection
    from ..metadata.discovery import MetadataStorage
    from ..naming import NamingStrategy
    from ..platforms.base import Platform

__all__ = ["SchemaGenerator"]


class SchemaGenerator:
    """Takes only what it uses: the metadata, the platform (DDL and introspection), the
    connection, and the naming strategy (index names)."""

    def __init__(
        self,
        metadata: MetadataStorage,
        platform: Platform,
        connection: Connection,
        naming: NamingStrategy,
    ) -> None:
        self.metadata = metadata
        self.platform = platform
        self.connection = connection
        self.naming = naming
        self.quote = platform.quote

    @property
    def _metas(self) -> list[EntityMetadata]:
        """The entities in foreign key order: a table after the tables it references (so
        PostgreSQL can create it; drops go in reverse). Self-references do not count; in a
        cycle the declaration order decides."""
        metas = list(self.metadata)
        done: set[int] = set()
        ordered: list[EntityMetadata] = []
        visiting: set[int] = set()

        def visit(meta: EntityMetadata) -> None:
            if id(meta) in done or id(meta) in visiting:
                return
            visiting.add(id(meta))
            for prop in meta.relations:
                target = prop.relation.target_meta  # type: ignore[union-attr]
                if target is not meta:
                    visit(target)
            visiting.discard(id(meta))
            done.add(id(meta))
            ordered.append(meta)

        for meta in metas:
            visit(meta)
        return ordered

    # -- desired shape ----------------------------------------------------------------------
    def _references(self, prop: PropertyMetadata) -> str:
        relation = prop.relation
        target = relation.target_meta  # type: ignore[union-attr]
        clause = (
            f"references {self.quote(target.table)} ({self.quote(target.pk.field_name)}) "
            f"on update cascade"
        )
        if relation.on_delete is not None:  # type: ignore[union-attr]
            clause += f" on delete {relation.on_delete}"  # type: ignore[union-attr]
        return clause

    def _foreign_key_name(self, meta: EntityMetadata, prop: PropertyMetadata) -> str:
        return self.platform.fit_identifier(
            self.naming.index_name(meta.table, [prop.field_name], "foreign")
        )

    def _add_foreign_key_sql(self, meta: EntityMetadata, prop: PropertyMetadata) -> str:
        return (
            f"alter table {self.quote(meta.table)} add constraint "
            f"{self.quote(self._foreign_key_name(meta, prop))} foreign key "
            f"({self.quote(prop.field_name)}) {self._references(prop)}"
        )

    def _foreign_keys(self, meta: EntityMetadata) -> dict[_ForeignKey, PropertyMetadata]:
        """The foreign keys the metadata wants, as the database would report them."""
        out = {}
        for prop in meta.relations:
            target = prop.relation.target_meta  # type: ignore[union-attr]
            on_delete = prop.relation.on_delete or "no action"  # type: ignore[union-attr]
            key = _ForeignKey(
                prop.field_name, target.table, target.pk.field_name, "cascade", on_delete
            )
            out[key] = prop
        return out

    def _column_sql(self, prop: PropertyMetadata, constraint: bool = True) -> str:
        """A column's definition; a relation's foreign key carries its constraint inline
        (`references ... on update cascade [on delete ...]`), which both databases accept in
        `create table` and in `alter table ... add column`."""
        definition = self.platform.column_definition(prop)
        if prop.relation is None or not prop.relation.owner or not constraint:
            return definition
        return f"{definition} {self._references(prop)}"

    def _table_sql(
        self, meta: EntityMetadata, name: str | None = None, later: frozenset[str] = frozenset()
    ) -> str:
        """`create table`; the foreign keys of the properties in `later` are left out (added
        by `alter table` once their target table exists)."""
        cols = ", ".join(self._column_sql(p, p.name not in later) for p in meta.columns)
        return f"create table {self.quote(name or meta.table)} ({cols})"

    def _create_all(self, metas: list[EntityMetadata], existing: set[str]) -> list[str]:
        """`create table` (and index) statements for `metas`, in foreign key order. Where
        tables reference each other in a cycle and the database wants a referenced table to
        exist first (PostgreSQL), the foreign keys pointing forward are added afterwards with
        `alter table ... add constraint`; SQLite takes them inline (and cannot add them)."""
        created = set(existing)
        statements: list[str] = []
        constraints: list[str] = []
        for meta in metas:
            later: set[str] = set()
            if self.platform.foreign_key_needs_table:
                for prop in meta.relations:
                    target = prop.relation.target_meta  # type: ignore[union-attr]
                    if target is not meta and target.table not in created:
                        later.add(prop.name)
                        constraints.append(self._add_foreign_key_sql(meta, prop))
            statements.append(self._table_sql(meta, later=frozenset(later)))
            statements += [self._index_sql(meta, i) for i in self._indexes(meta)]
            statements += self._comment_diff(meta, {})
            created.add(meta.table)
        pivots = [
            sql for pivot in self.metadata.pivots if pivot.table not in existing
            for sql in self._pivot_sql(pivot)
        ]
        return statements + constraints + pivots

    def _pivot_sql(self, pivot: PivotMetadata) -> list[str]:
        """A many-to-many's pivot table, created after both ends' tables: the two foreign
        key columns (`on update cascade on delete cascade`), their composite primary key
        (which also serves lookups by the first column), and an index on the second."""
        columns = (pivot.owner_column, pivot.target_column)
        definitions = ", ".join(
            f"{self.platform.column_definition(c)} {self._references(c)}" for c in columns
        )
        key = ", ".join(self.quote(c.field_name) for c in columns)
        return [
            f"create table {self.quote(pivot.table)} ({definitions}, primary key ({key}))",
            self._pivot_index(pivot)[1],
        ]

    def _pivot_index(self, pivot: PivotMetadata) -> tuple[str, str]:
        """The index on a pivot's second column (the first leads the primary key): its name
        and the statement creating it."""
        second = pivot.target_column.field_name
        name = self.platform.fit_identifier(self.naming.index_name(pivot.table, [second], "index"))
        sql = f"create index {self.quote(name)} on {self.quote(pivot.table)} ({self.quote(second)})"
        return name, sql

    def _drop_pivots(self) -> list[str]:
        suffix = self.platform.drop_table_suffix
        return [
            f"drop table if exists {self.quote(p.table)}{suffix}"
            for p in reversed(self.metadata.pivots)
        ]

    def _indexes(self, meta: EntityMetadata) -> list[_Index]:
        naming, fit = self.naming, self.platform.fit_identifier
        out = []
        for p in meta.columns:
            if p.primary:
                continue
            if p.unique:
                out.append(_Index(fit(naming.index_name(meta.table, [p.field_name], "unique")),
                                  (p.field_name,), True))
            elif p.index:
                out.append(_Index(fit(naming.index_name(meta.table, [p.field_name], "index")),
                                  (p.field_name,), False))
        return out

    def _index_sql(self, meta: EntityMetadata, index: _Index) -> str:
        unique = "unique " if index.unique else ""
        cols = ", ".join(self.quote(c) for c in index.columns)
        return f"create {unique}index {self.quote(index.name)} on {self.quote(meta.table)} ({cols})"

    def _comment_diff(self, meta: EntityMetadata, live: dict[str, str]) -> list[str]:
        """`comment on column` for each column whose comment differs from `live` (where the
        database keeps comments)."""
        platform = self.platform
        if not platform.supports_comments:
            return []
        return [
            platform.comment_sql(meta.table, p.field_name, p.comment or None)
            for p in meta.columns
            if (p.comment or None) != live.get(p.field_name)
        ]

    def _namespace(self, statements: list[str]) -> list[str]:
        """Statements that create tables, preceded (on PostgreSQL with a `schema`) by the
        creation of that schema when it is missing."""
        schema = getattr(self.connection, "schema", None)
        create = getattr(self.platform, "create_namespace", None)
        if not statements or not schema or create is None:
            return statements
        return [create(schema), *statements]

    # -- live shape -------------------------------------------------------------------------
    def _live_tables(self) -> set[str]:
        return self.platform.live_tables(self.connection)


    def _drop(self, meta: EntityMetadata) -> str:
        return f"drop table if exists {self.quote(meta.table)}{self.platform.drop_table_suffix}"

    # -- SQL --------------------------------------------------------------------------------
    def get_create_schema_sql(self) -> str:
        return _join(self._namespace(self._create_all(self._metas, set())))

    def get_drop_schema_sql(self) -> str:
        return _join(self._drop_pivots() + [self._drop(m) for m in reversed(self._metas)])

    def get_update_schema_sql(self) -> str:
        return _join(self._update_statements())

    def _update_statements(self) -> list[str]:
        """The difference, made by orm.schema.update (imported by the first update: a script
        that creates its schema on an empty database never loads the diff)."""
        from .update import SchemaUpdate

        updater = SchemaUpdate(self.metadata, self.platform, self.connection, self.naming)
        return updater._update_statements()

    # -- run --------------------------------------------------------------------------------
    def _run(self, statements: list[str]) -> None:
        """All statements in one transaction, foreign keys off meanwhile (a table rebuild
        would otherwise cascade)."""
        if not statements:
            return
        conn = self.connection
        with conn.locked():
            conn.script(self.platform.ddl_prologue())
            try:
                with conn.transaction():
                    conn.script(statements)
            finally:
                conn.script(self.platform.ddl_epilogue())

    def create_schema(self) -> None:
        """Create every table and index (TableExistsException if one exists), and on
        PostgreSQL the configured `schema` if it is missing."""
        self._run(self._namespace(self._create_all(self._metas, set())))

    def drop_schema(self) -> None:
        """Drop the entities' tables that exist; no error for those that do not."""
        self._run(self._drop_pivots() + [self._drop(m) for m in reversed(self._metas)])

    def update_schema(self) -> list[str]:
        """Apply only the difference between the metadata and the live database; returns
        the statements run (empty when the schema is up to date)."""
        statements = self._update_statements()
        self._run(statements)
        return statements

    def refresh_database(self) -> None:
        """Drop and create: an empty, up-to-date schema."""
        self._run(
            self._drop_pivots()
            + [self._drop(m) for m in reversed(self._metas)]
            + self._namespace(self._create_all(self._metas, set()))
        )

    def ensure_database(self) -> bool:
        """Make sure the database exists and holds the entities' tables: creates the missing
        ones (never alters existing ones; that is update_schema's job). Returns True if
        anything was created."""
        live = self._live_tables()
        statements = self._namespace(
            self._create_all([m for m in self._metas if m.table not in live], live)
        )
        self._run(statements)
        return bool(statements)

    def clear_database(self) -> None:
        """Delete every row of the entities' tables, keeping the schema."""
        self._run(
            [f"delete from {self.quote(p.table)}" for p in reversed(self.metadata.pivots)]
            + [f"delete from {self.quote(m.table)}" for m in reversed(self._metas)]
        )


def _join(statements: list[str]) -> str:
    return "".join(f"{s};\n" for s in statements)
