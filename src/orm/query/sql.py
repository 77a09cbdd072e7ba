"""SQL text for the Unit of Work and the EntityManager, built once per statement shape.

Every statement an entity type needs (its select list, its insert, an update of one set of
changed columns, a delete by keys) is generated here and cached on its metadata, so a flush
or a find pays string building once per shape, not per row.
"""

from __future__ import annotations

from .._typing import TYPE_CHECKING
from ..metadata.model import EntityMetadata, PropertyMetadata
from ..platforms.base import Platform
from .filters import compile_order_by, compile_where

if TYPE_CHECKING:
    from typing import Any

__all__ = ["SqlBuilder", "ALIAS"]

#: the table alias of MikroORM's queries: `select u0.* from user as u0`
ALIAS = "u0"


class SqlBuilder:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.quote = platform.quote

    def select_list(self, meta: EntityMetadata, props: list[PropertyMetadata] | None = None) -> str:
        cols = props if props is not None else meta.columns
        prefix = self.quote(ALIAS) + "."
        return ", ".join(prefix + self.quote(p.field_name) for p in cols)

    def select(
        self,
        meta: EntityMetadata,
        where: Any,
        *,
        props: list[PropertyMetadata] | None = None,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        lock_mode: Any = None,
    ) -> tuple[str, list[Any]]:
        """`select ... from table as u0 where ... order by ... limit ? offset ?`, ending with
        the platform's row lock (`for update`) under a pessimistic `lock_mode`."""
        if props is None:
            key = "select"
            head = meta.sql.get(key)
            if head is None:
                head = meta.sql[key] = (
                    f"select {self.select_list(meta)} from {self.quote(meta.table)} "
                    f"as {self.quote(ALIAS)}"
                )
        else:
            head = (
                f"select {self.select_list(meta, props)} from {self.quote(meta.table)} "
                f"as {self.quote(ALIAS)}"
            )
        cond, params = compile_where(meta, where, self.platform, ALIAS)
        sql = head
        if cond:
            sql += f" where {cond}"
        order = compile_order_by(meta, order_by, self.platform, ALIAS)
        if order:
            sql += f" order by {order}"
        if limit is not None or offset is not None:
            clause, paging = self.platform.limit_offset(
                None if limit is None else _non_negative(limit, "limit"),
                None if offset is None else _non_negative(offset, "offset"),
            )
            sql += clause
            params.extend(paging)
        if lock_mode is not None:
            sql += self.platform.lock_clause(lock_mode)
        return sql, params

    def count(self, meta: EntityMetadata, where: Any) -> tuple[str, list[Any]]:
        cond, params = compile_where(meta, where, self.platform, ALIAS)
        sql = (
            f"select count(*) as {self.quote('count')} from {self.quote(meta.table)} "
            f"as {self.quote(ALIAS)}"
        )
        if cond:
            sql += f" where {cond}"
        return sql, params

    def insert(self, meta: EntityMetadata, skip_pk: bool, rows: int = 1) -> str:
        """INSERT of `rows` rows of every column (the generated key left out when `skip_pk`),
        as one multi-row VALUES statement."""
        key = ("insert", skip_pk, rows)
        sql = meta.sql.get(key)
        if sql is None:
            cols = [p for p in meta.columns if not (skip_pk and p.primary)]
            names = ", ".join(self.quote(p.field_name) for p in cols)
            one = self.platform.row(len(cols))
            sql = f"insert into {self.quote(meta.table)} ({names}) values " + ", ".join(
                [one] * rows
            )
            if len(meta.sql) < 512:
                meta.sql[key] = sql
        return sql

    def insert_returning_key(self, meta: EntityMetadata) -> str:
        """INSERT of one row without its generated key, returning the key."""
        key = ("insert_returning",)
        sql = meta.sql.get(key)
        if sql is None:
            pk = self.quote(meta.pk.field_name)
            if len(meta.columns) == 1:
                head = self.insert_default_values(meta)
            else:
                head = self.insert(meta, True, 1)
            sql = meta.sql[key] = f"{head} returning {pk}"
        return sql

    def copy(self, meta: EntityMetadata) -> str:
        """COPY of every column's values (key included) from the client."""
        key = ("copy",)
        sql = meta.sql.get(key)
        if sql is None:
            names = ", ".join(self.quote(p.field_name) for p in meta.columns)
            sql = meta.sql[key] = f"copy {self.quote(meta.table)} ({names}) from stdin"
        return sql

    def insert_data(self, meta: EntityMetadata, fields: list[str]) -> str:
        names = ", ".join(self.quote(f) for f in fields)
        return f"insert into {self.quote(meta.table)} ({names}) values {self.platform.row(len(fields))}"

    def upsert(
        self, meta: EntityMetadata, fields: list[str], given: set[str], target_field: str
    ) -> str:
        """INSERT of `fields`, or on a conflict on `target_field` an UPDATE of the fields the
        user gave (`given`), never of the key, the target or the version (which counts up);
        returns every column of the row."""
        quote = self.quote
        frozen = {target_field, meta.pk.field_name}
        if meta.version is not None:
            frozen.add(meta.version.field_name)
        sets = [f"{quote(f)} = excluded.{quote(f)}" for f in fields if f in given - frozen]
        if meta.version is not None:
            version = quote(meta.version.field_name)
            sets.append(f"{version} = {quote(meta.table)}.{version} + 1")
        if not sets:
            sets = [f"{quote(target_field)} = excluded.{quote(target_field)}"]
        return (
            self.insert_data(meta, fields)
            + f" on conflict ({quote(target_field)}) do update set {', '.join(sets)}"
            + " returning "
            + ", ".join(quote(p.field_name) for p in meta.columns)
        )

    def insert_default_values(self, meta: EntityMetadata) -> str:
        return self.platform.insert_default_values(self.quote(meta.table))

    def update(self, meta: EntityMetadata, changed: tuple[int, ...], versioned: bool) -> str:
        """UPDATE of the columns at positions `changed`, by primary key (and version)."""
        key = ("update", changed, versioned)
        sql = meta.sql.get(key)
        if sql is None:
            param = self.platform.param
            sets = [f"{self.quote(meta.columns[i].field_name)} = {param}" for i in changed]
            where = f"{self.quote(meta.pk.field_name)} = {param}"
            if versioned and meta.version is not None:
                version = self.quote(meta.version.field_name)
                sets.append(f"{version} = {version} + 1")
                where += f" and {version} = {param}"
            sql = meta.sql[key] = (
                f"update {self.quote(meta.table)} set {', '.join(sets)} where {where}"
            )
        return sql

    def update_from_values(self, meta: EntityMetadata, changed: tuple[int, ...], rows: int) -> str:
        """One UPDATE for `rows` rows: `update t set c = v.column1 from (values (?, ?), ...)
        as v where t.pk = v.column2`; each row binds its changed values, then its key."""
        key = ("update_from", changed, rows)
        sql = meta.sql.get(key)
        if sql is None:
            sql = self.platform.update_from_values(
                self.quote(meta.table),
                self.quote(meta.pk.field_name),
                [self.quote(meta.columns[i].field_name) for i in changed],
                rows,
            )
            if len(meta.sql) < 512:
                meta.sql[key] = sql
        return sql

    def update_by_key(self, meta: EntityMetadata, fields: list[str]) -> str:
        """UPDATE of the given columns of one row; binds their values, then the key."""
        param = self.platform.param
        sets = ", ".join(f"{self.quote(f)} = {param}" for f in fields)
        pk = self.quote(meta.pk.field_name)
        return f"update {self.quote(meta.table)} set {sets} where {pk} = {param}"

    def update_where(
        self, meta: EntityMetadata, where: Any, fields: list[str], count_up: str | None = None
    ) -> tuple[str, list[Any]]:
        """UPDATE of `fields` where `where` holds; `count_up` a version column to add one to
        (what a flush would do, so that an entity loaded before sees the row changed)."""
        cond, params = compile_where(meta, where, self.platform, bound=len(fields))
        sets = ", ".join(f"{self.quote(f)} = {self.platform.param}" for f in fields)
        if count_up is not None:
            column = self.quote(count_up)
            sets += f", {column} = {column} + 1"
        sql = f"update {self.quote(meta.table)} set {sets}"
        if cond:
            sql += f" where {cond}"
        return sql, params

    def delete_by_keys(self, meta: EntityMetadata, count: int) -> str:
        """DELETE of `count` rows by key (where the platform binds the keys as one array,
        the statement is the same for every count and binds the list)."""
        if self.platform.supports_any_array:
            count = 0
        key = ("delete", count)
        sql = meta.sql.get(key)
        if sql is None:
            cond = self.platform.keys_condition(self.quote(meta.pk.field_name), count)
            sql = f"delete from {self.quote(meta.table)} where {cond}"
            if len(meta.sql) < 512:
                meta.sql[key] = sql
        return sql

    def delete_where(self, meta: EntityMetadata, where: Any) -> tuple[str, list[Any]]:
        cond, params = compile_where(meta, where, self.platform)
        sql = f"delete from {self.quote(meta.table)}"
        if cond:
            sql += f" where {cond}"
        return sql, params


def _non_negative(value: Any, name: str) -> int:
    from ..errors import ValidationError

    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValidationError(
            f"{name} must be a non-negative integer below 2**63, got {value!r}"
        )
    return value
