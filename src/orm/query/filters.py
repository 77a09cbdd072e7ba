"""Filter dicts -> SQL `where` clauses, validated before any SQL runs.

MikroORM's operators: ``$eq $ne $in $nin $gt $gte $lt $lte $like $re $and $or $not
$exists``. A value is converted to its database form by the property's type, so
`{"created_at": {"$gt": some_datetime}}` compares like with like.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from ..errors import ValidationError
from ..metadata.model import EntityMetadata, PropertyMetadata

__all__ = ["compile_where", "OPERATORS", "normalize_where", "QueryOrder", "compile_order_by"]

_COMPARISONS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = (
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$like", "$re", "$and",
    "$or", "$not", "$exists",
)  # fmt: skip


class QueryOrder(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"
    ASC_NULLS_FIRST = "asc nulls first"
    ASC_NULLS_LAST = "asc nulls last"
    DESC_NULLS_FIRST = "desc nulls first"
    DESC_NULLS_LAST = "desc nulls last"


def normalize_where(meta: EntityMetadata, where: Any) -> dict[str, Any]:
    """A primary key value, a list of them, an entity, None or a dict -> a filter dict."""
    if where is None:
        return {}
    if isinstance(where, Mapping):
        return dict(where)
    if isinstance(where, (list, tuple, set, frozenset)):
        return {meta.pk.name: {"$in": list(where)}}
    if type(where) is meta.cls:
        return {meta.pk.name: getattr(where, meta.pk.name)}
    return {meta.pk.name: where}


def _unknown_operator(meta: EntityMetadata, op: str, prop: str | None) -> ValidationError:
    where = f" on {meta.class_name}.{prop}" if prop else f" in a filter on {meta.class_name}"
    return ValidationError(
        f"Unknown operator {op!r}{where}; supported operators: {', '.join(OPERATORS)}",
        entity=meta.cls,
        property=prop,
    )


class _Compiler:
    def __init__(self, meta: EntityMetadata, quote: Any, alias: str | None) -> None:
        self.meta = meta
        self.quote = quote
        self.prefix = f"{quote(alias)}." if alias else ""
        self.params: list[Any] = []

    def column(self, prop: PropertyMetadata) -> str:
        return self.prefix + self.quote(prop.field_name)

    def value(self, prop: PropertyMetadata, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, self.meta.cls) and prop.primary:
            value = getattr(value, prop.name)
        if prop.type.converts:
            try:
                return prop.type.to_db(value)
            except (AttributeError, TypeError, ValueError) as exc:
                raise ValidationError(
                    f"Invalid value {value!r} in a filter on {self.meta.class_name}.{prop.name}: "
                    f"expected {prop.type.describe()} ({exc})",
                    entity=self.meta.cls,
                    property=prop.name,
                ) from None
        return value

    def group(self, conditions: Mapping[str, Any]) -> str:
        parts = [self.entry(key, value) for key, value in conditions.items()]
        parts = [p for p in parts if p]
        if not parts:
            return ""
        return parts[0] if len(parts) == 1 else " and ".join(parts)

    def entry(self, key: Any, value: Any) -> str:
        if isinstance(key, str) and key.startswith("$"):
            return self.logical(key, value)
        prop = self.meta.prop(key)
        if not prop.persist:
            raise ValidationError(
                f"{self.meta.class_name}.{key} is not persisted (persist=False) and cannot be "
                f"used in a filter",
                entity=self.meta.cls,
                property=key,
            )
        if isinstance(value, Mapping) and any(
            isinstance(k, str) and k.startswith("$") for k in value
        ):
            parts = [self.operator(prop, op, operand) for op, operand in value.items()]
            return " and ".join(parts) if len(parts) > 1 else parts[0]
        if isinstance(value, (list, tuple, set, frozenset)) and not prop.type.mutable:
            return self.operator(prop, "$in", value)
        return self.operator(prop, "$eq", value)

    def logical(self, op: str, value: Any) -> str:
        if op in ("$and", "$or"):
            items = value
            if not isinstance(items, (list, tuple)) or not all(
                isinstance(i, Mapping) for i in items
            ):
                raise ValidationError(
                    f"{op} in a filter on {self.meta.class_name} takes a list of conditions "
                    f"(dicts), got {value!r}",
                    entity=self.meta.cls,
                )
            parts = [self.group(i) for i in items]
            parts = [p for p in parts if p]
            if not parts:
                return "1 = 1" if op == "$and" else "1 = 0"
            joined = f" {op[1:]} ".join(f"({p})" for p in parts)
            return f"({joined})"
        if op == "$not":
            if not isinstance(value, Mapping):
                raise ValidationError(
                    f"$not in a filter on {self.meta.class_name} takes a condition (dict), "
                    f"got {value!r}",
                    entity=self.meta.cls,
                )
            inner = self.group(value)
            return f"not ({inner})" if inner else "1 = 0"
        raise _unknown_operator(self.meta, op, None)

    def operator(self, prop: PropertyMetadata, op: Any, operand: Any) -> str:
        col = self.column(prop)
        if op in _COMPARISONS:
            if operand is None and op in ("$eq", "$ne"):
                return f"{col} is null" if op == "$eq" else f"{col} is not null"
            self.params.append(self.value(prop, operand))
            return f"{col} {_COMPARISONS[op]} ?"
        if op in ("$in", "$nin"):
            if not isinstance(operand, (list, tuple, set, frozenset)):
                raise ValidationError(
                    f"{op} on {self.meta.class_name}.{prop.name} takes a list, got {operand!r}",
                    entity=self.meta.cls,
                    property=prop.name,
                )
            items = list(operand)
            if not items:
                return "1 = 0" if op == "$in" else "1 = 1"
            self.params.extend(self.value(prop, v) for v in items)
            marks = ", ".join("?" * len(items))
            return f"{col} {'in' if op == '$in' else 'not in'} ({marks})"
        if op == "$like":
            self.params.append(operand)
            return f"{col} like ?"
        if op == "$re":
            self.params.append(operand)
            return f"{col} regexp ?"
        if op == "$exists":
            return f"{col} is not null" if operand else f"{col} is null"
        if op == "$not":
            if isinstance(operand, Mapping):
                inner = self.entry(prop.name, operand)
            else:
                inner = self.operator(prop, "$eq", operand)
            return f"not ({inner})"
        raise _unknown_operator(self.meta, str(op), prop.name)


def compile_where(
    meta: EntityMetadata, where: Any, quote: Any, alias: str | None = None
) -> tuple[str, list[Any]]:
    """`where` (a dict, a PK value, a list of PKs) -> (SQL condition or "", parameters).
    Raises ValidationError for an unknown property or operator; nothing has run by then."""
    compiler = _Compiler(meta, quote, alias)
    sql = compiler.group(normalize_where(meta, where))
    return sql, compiler.params


def compile_order_by(meta: EntityMetadata, order_by: Any, quote: Any, alias: str | None) -> str:
    """`{"created_at": "desc", "id": QueryOrder.ASC}` (or a list of such dicts) -> SQL."""
    if not order_by:
        return ""
    items: list[tuple[str, Any]] = []
    for part in order_by if isinstance(order_by, (list, tuple)) else [order_by]:
        if not isinstance(part, Mapping):
            raise ValidationError(
                f"order_by on {meta.class_name} takes a dict such as {{'id': 'asc'}}, got "
                f"{part!r}",
                entity=meta.cls,
            )
        items.extend(part.items())
    prefix = f"{quote(alias)}." if alias else ""
    parts = []
    for name, direction in items:
        prop = meta.prop(name)
        if isinstance(direction, QueryOrder):
            text = direction.value
        elif direction in (1, "1"):
            text = "asc"
        elif direction in (-1, "-1"):
            text = "desc"
        elif isinstance(direction, str) and direction.lower() in {o.value for o in QueryOrder}:
            text = direction.lower()
        else:
            raise ValidationError(
                f"Invalid order direction {direction!r} for {meta.class_name}.{name}; use "
                f"'asc', 'desc' or QueryOrder",
                entity=meta.cls,
                property=name,
            )
        parts.append(f"{prefix}{quote(prop.field_name)} {text}")
    return ", ".join(parts)
