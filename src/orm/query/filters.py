"""Filter dicts -> SQL `where` clauses, validated before any SQL runs.

MikroORM's operators: ``$eq $ne $in $nin $gt $gte $lt $lte $like $re $and $or $not
$exists``. A value is checked and converted to its database form by the property's type as
a flush would write it, so `{"created_at": {"$gt": some_datetime}}` compares like with like
and a value the column cannot hold is a ValidationError, not a driver error. An empty
condition (`{}`) is TRUE wherever it appears.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._typing import TYPE_CHECKING, lazy_module
from ..entity.reference import Ref
from ..errors import ValidationError, _own_table, _short
from ..metadata.model import EntityMetadata, PropertyMetadata
from ..platforms.base import Platform
from ..types import EnumType, IntegerType, Type, UuidType

if TYPE_CHECKING:
    from typing import Any

    from . import order as _order
    from .order import QueryOrder
else:
    _order = lazy_module(f"{__package__}.order", globals(), "_order")

__all__ = ["compile_where", "OPERATORS", "normalize_where", "QueryOrder", "compile_order_by"]

_COMPARISONS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = (
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$like", "$re", "$and",
    "$or", "$not", "$exists",
)  # fmt: skip


def __getattr__(name: str) -> Any:
    # `orm.query.filters.QueryOrder`, as before it moved to orm.query.order
    if name == "QueryOrder":
        return _order.QueryOrder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


#: a condition true of no row; a condition true of every row compiles to "" (no SQL), so
#: that constants fold away and a filter true of every row is exactly the one compiling to ""
_FALSE = "1 = 0"

#: what `$in` / `$nin` take, and what a property's value list means (`{"age": [1, 2]}`)
_SEQUENCES = (list, tuple, set, frozenset)


def _coerce(mapped: Type, value: Any) -> Any:
    """A filter operand of another Python type converted by the property's mapped type where
    that is unambiguous: an int's text ("1" -> 1, so that a primary key given as text finds
    its row), a UUID's text, an enum member's value. None when it cannot be."""
    mapped = getattr(mapped, "mapped", mapped)  # a checked type: the one it checks for
    try:
        if isinstance(mapped, IntegerType):
            return int(value) if isinstance(value, str) else None
        if isinstance(mapped, (UuidType, EnumType)):
            converted = mapped.to_python(value)
            return converted if isinstance(converted, mapped.python_types) else None
    except (TypeError, ValueError, ArithmeticError):
        pass
    return None


class _Compiler:
    """Compiles one filter. Every value is checked against its property's type (and every
    operator against what it takes) here, so that a bad filter is a ValidationError naming
    entity, property, operator and value before any SQL runs, never a driver error."""

    def __init__(
        self,
        meta: EntityMetadata,
        platform: Platform,
        alias: str | None,
        depth: int = 0,
        bound: int = 0,
    ) -> None:
        self.meta = meta
        self.depth = depth
        self.platform = platform
        self.quote = platform.quote
        self.param = platform.param
        self.prefix = f"{platform.quote(alias)}." if alias else ""
        self.params: list[Any] = []
        #: how many parameters the filter may bind: the statement's limit, less what the
        #: rest of it binds (`limit`/`offset`, the values of an update)
        self.max_params = platform.max_parameters - bound

    def column(self, prop: PropertyMetadata) -> str:
        return self.prefix + self.quote(prop.field_name)

    def invalid(
        self, prop: PropertyMetadata, op: str, value: Any, expected: str
    ) -> ValidationError:
        return ValidationError(
            f"Invalid value for {op} on {self.meta.class_name}.{prop.name} in a filter: got "
            f"{type(value).__name__} {_short(value, 60)}; expected {expected}",
            entity=self.meta.cls,
            property=prop.name,
        )

    def value(self, prop: PropertyMetadata, value: Any, op: str = "$eq") -> Any:
        """A filter operand -> its database form, checked as a flush checks a value."""
        if value is None:
            return None
        if prop.relation is not None:
            return self.relation_key(prop, value, op)
        mapped = prop.type
        if prop.primary and type(value) is self.meta.cls:
            value = getattr(value, prop.name)
        if value.__class__ is bool and mapped.python_types and bool not in mapped.python_types:
            # True == 1 in Python, and SQLite would compare it so; PostgreSQL refuses to
            # compare a number with a boolean (and an enum's True would be its member 1)
            raise self.invalid(
                prop, op, value, f"{mapped.describe()} (True and False are not values of it)"
            )
        if mapped.python_types and not isinstance(value, mapped.python_types):
            converted = _coerce(mapped, value)
            if converted is None:
                raise self.invalid(prop, op, value, self.expected(prop, op, value))
            value = converted
        db = value
        # a value longer than the column, or with more decimal places, matches no row or
        # compares as a number: an answer, not an error (a NUL character is still refused
        # below, as the database would refuse it)
        mapped = mapped.for_filters
        if mapped.converts:
            try:
                db = mapped.to_db(value)
            except (AttributeError, TypeError, ValueError, OverflowError) as exc:
                raise self.invalid(prop, op, value, f"{mapped.describe()} ({exc})") from None
        if not isinstance(db, self.platform.bindable):
            if db is not value:  # the type's to_db made it: the type is to blame
                raise ValidationError(
                    f"Invalid value for {op} on {self.meta.class_name}.{prop.name} in a "
                    f"filter: {type(mapped).__name__}.to_db made {type(db).__name__} "
                    f"{_short(db, 40)} of {type(value).__name__} {_short(value, 40)}, which "
                    f"the database driver cannot bind: make to_db return a value it takes "
                    f"(str, int, float, bytes, ...)",
                    entity=self.meta.cls,
                    property=prop.name,
                )
            raise self.invalid(prop, op, value, self.expected(prop, op, value))
        problem = self.platform.storage_problem(db)
        if problem is not None:
            raise self.invalid(prop, op, value, f"{mapped.describe()} ({problem})")
        return db

    def relation_key(self, prop: PropertyMetadata, value: Any, op: str) -> Any:
        """A relation's operand: the target entity (or a Ref to it) or its primary key ->
        the key in database form, checked as the target's key."""
        target = prop.relation.target_meta  # type: ignore[union-attr]
        entity = value.entity if type(value) is Ref else value
        expected = (
            f"a {target.class_name} entity or its primary key ({target.pk.type.describe()})"
        )
        if type(entity) is target.cls:
            value = getattr(entity, target.pk.name, None)
            if value is None:
                raise self.invalid(prop, op, entity, f"{expected}; this one is not stored yet")
        elif getattr(type(entity), "_orm_declaration", None) is not None:
            # (an entity of a sub-entity class too: its key names a row of its own table)
            raise self.invalid(
                prop, op, entity, expected + _own_table(target.cls, entity, target.table)
            )
        try:
            return _Compiler(target, self.platform, None).value(target.pk, value, op)
        except ValidationError:
            raise self.invalid(prop, op, value, expected) from None

    def relation_filter(self, prop: PropertyMetadata, conditions: Mapping[str, Any]) -> str:
        """`{"author": {"email": ...}}`: the foreign key in the keys of the target rows that
        match, the conditions checked against the target entity."""
        target = prop.relation.target_meta  # type: ignore[union-attr]
        return f"{self.column(prop)} in ({self.subquery(target, target.pk, conditions)})"

    def subquery(
        self, target: EntityMetadata, selected: PropertyMetadata, conditions: Any,
        not_null: bool = False,
    ) -> str:
        """`select <selected> from <target> where <conditions>`, its parameters bound in
        this statement (the limit on parameters counts them all)."""
        alias = f"e{self.depth + 1}"
        sub = _Compiler(target, self.platform, alias, self.depth + 1)
        sub.max_params = self.max_params - len(self.params)
        cond = sub.group(conditions)
        self.params.extend(sub.params)
        quote = self.quote
        column = f"{quote(alias)}.{quote(selected.field_name)}"
        where = [f"{column} is not null"] if not_null else []
        if cond:
            where.append(f"({cond})" if not_null else cond)
        inner = f"select {column} from {quote(target.table)} as {quote(alias)}"
        return f"{inner} where {' and '.join(where)}" if where else inner

    def _item_conditions(self, prop: PropertyMetadata, conditions: Any, extra: str = "") -> None:
        """A collection's filter is a dict of conditions on its items."""
        target = prop.relation.target_meta  # type: ignore[union-attr]
        if not isinstance(conditions, Mapping) or not conditions or any(
            isinstance(k, str) and k.startswith("$") and k not in ("$and", "$or", "$not")
            for k in conditions
        ):
            raise ValidationError(
                f"The filter on {self.meta.class_name}.{prop.name} ("
                f"{'the inverse one-to-one' if prop.relation.kind == '1:1' else 'a collection'}"  # type: ignore[union-attr]
                f" of {target.class_name}) takes conditions on {target.class_name}, e.g. "
                f"{{{prop.name!r}: {{{target.pk.name!r}: ...}}}}{extra}; got "
                f"{_short(conditions, 60)}"
                + (
                    f" (for {self.meta.class_name} rows with none: {{'$not': {{{prop.name!r}: "
                    f"{{{target.pk.name!r}: {{'$ne': None}}}}}}}})"
                    if conditions is None or conditions == {} else ""
                ),
                entity=self.meta.cls,
                property=prop.name,
            )

    def items_in(self, prop: PropertyMetadata, items: Any) -> Any:
        """`{"tags": {"$in": [...]}}` (MikroORM's spelling): rows holding any of these
        items (entities, Refs or keys); for a many-to-many the list itself, for a one-to-many
        or inverse one-to-one the condition on the items' keys."""
        if not isinstance(items, _SEQUENCES):
            raise self.invalid(prop, "$in", items, "a list of items or keys")
        if prop.relation.kind == "m:n":  # type: ignore[union-attr]
            return list(items)
        target = prop.relation.target_meta  # type: ignore[union-attr]
        keys = []
        for item in items:
            item = item.entity if type(item) is Ref else item
            if type(item) is target.cls:
                item = getattr(item, target.pk.name, None)
            elif getattr(type(item), "_orm_declaration", None) is not None:
                raise self.invalid(
                    prop, "$in", item, f"{target.class_name} entities or their keys"
                    + _own_table(target.cls, item, target.table)
                )
            keys.append(item)  # a key: checked as one by value()
        return {target.pk.name: {"$in": keys}}

    def pivot_filter(self, prop: PropertyMetadata, value: Any) -> str:
        """`{"tags": {"label": "a"}}` on a ManyToMany (either side): the rows paired, in
        the pivot table, with at least one item that matches (`id in (select article_id
        from article_tags where tag_id in (select id from tag where ...))`); `{"tags":
        tag}` (an entity, a Ref, a key, or a list of them): paired with that item."""
        relation = prop.relation
        own, other = relation.pivot.columns(prop)  # type: ignore[union-attr]
        quote = self.quote
        alias = quote(f"p{self.depth + 1}")
        head = (
            f"select {alias}.{quote(own.field_name)} from "
            f"{quote(relation.pivot.table)} as {alias} "  # type: ignore[union-attr]
            f"where {alias}.{quote(other.field_name)}"
        )
        target = relation.target_meta  # type: ignore[union-attr]
        if isinstance(value, Mapping):
            self._item_conditions(prop, value, " or an item")
            inner = self.subquery(target, target.pk, value)
            return f"{self.column(self.meta.pk)} in ({head} in ({inner}))"
        if value is None:
            self._item_conditions(prop, value, " or an item")
        values = list(value) if isinstance(value, _SEQUENCES) else [value]
        if not values:
            return _FALSE
        keys = [self.relation_key(prop, v, "$eq") for v in values]
        self.params.extend(keys)
        marks = ", ".join([self.param] * len(keys))
        return f"{self.column(self.meta.pk)} in ({head} in ({marks}))"

    def collection_filter(self, prop: PropertyMetadata, conditions: Any) -> str:
        """`{"posts": {"title": "x"}}`: the rows having at least one item that matches; the
        key in the foreign keys of the matching target rows."""
        target = prop.relation.target_meta  # type: ignore[union-attr]
        self._item_conditions(prop, conditions)
        back = target.properties[prop.relation.mapped_by]  # type: ignore[union-attr]
        inner = self.subquery(target, back, conditions, not_null=True)
        return f"{self.column(self.meta.pk)} in ({inner})"

    def check_storable(self, prop: PropertyMetadata, op: str, pattern: str) -> None:
        """A pattern the driver cannot bind (a NUL character on PostgreSQL, a lone
        surrogate) is refused as a value would be."""
        problem = self.platform.storage_problem(pattern)
        if problem is not None:
            raise self.invalid(prop, op, pattern, f"a pattern the database can hold ({problem})")

    def expected(self, prop: PropertyMetadata, op: str, value: Any) -> str:
        text = prop.type.describe()
        if prop.primary:  # an entity of a sub-entity class, say, for this entity's key
            text += _own_table(self.meta.cls, value, self.meta.table)
        if isinstance(value, _SEQUENCES) and op in ("$eq", "$ne"):
            text += " (for a list of values use $in / $nin)"
        elif isinstance(value, Mapping):
            text += " (operators are not nested: combine them in one dict or with $and)"
        return text

    def group(self, conditions: Mapping[str, Any]) -> str:
        """A dict of conditions, all of which must hold; "" when there are none (TRUE)."""
        mark = len(self.params)
        return self.all_of([self.entry(key, value) for key, value in conditions.items()], mark)

    def all_of(self, parts: list[str], mark: int) -> str:
        """Compiled conditions joined with `and`: TRUE ("") ones drop out, and one that is
        FALSE makes the whole FALSE (the others' parameters dropped with their SQL; every
        part was still compiled, so validated)."""
        if _FALSE in parts:
            del self.params[mark:]
            return _FALSE
        parts = [p for p in parts if p]
        return " and ".join(parts)

    def entry(self, key: Any, value: Any) -> str:
        if isinstance(key, str) and key.startswith("$"):
            return self.logical(key, value)
        prop = self.meta.prop(key)
        if prop.relation is not None and (prop.relation.kind == "m:n" or not prop.relation.owner):
            if isinstance(value, Mapping) and list(value) == ["$in"]:
                value = self.items_in(prop, value["$in"])
            if prop.relation.kind == "m:n":
                return self.pivot_filter(prop, value)
            return self.collection_filter(prop, value)
        if not prop.persist:
            raise ValidationError(
                f"{self.meta.class_name}.{key} is not persisted (persist=False) and cannot be "
                f"used in a filter",
                entity=self.meta.cls,
                property=key,
            )
        if isinstance(value, Mapping):
            ops = [k for k in value if isinstance(k, str) and k.startswith("$")]
            if ops:
                others = [k for k in value if k not in ops]
                if others:
                    raise ValidationError(
                        f"The filter on {self.meta.class_name}.{prop.name} mixes operators "
                        f"({', '.join(ops)}) with other keys ({', '.join(map(repr, others))}) "
                        f"in {_short(value, 80)}; operators start with '$' (supported: "
                        f"{', '.join(OPERATORS)})",
                        entity=self.meta.cls,
                        property=prop.name,
                    )
                mark = len(self.params)
                return self.all_of(
                    [self.operator(prop, op, operand) for op, operand in value.items()], mark
                )
            if prop.relation is not None:
                return self.relation_filter(prop, value)
            if value and not prop.type.mutable:
                first = next(iter(value))
                raise ValidationError(
                    f"Invalid filter on {self.meta.class_name}.{prop.name}: {_short(value, 80)} is "
                    f"not a value of its type ({prop.type.describe()}) and {first!r} is not an "
                    f"operator (operators start with '$'; supported: {', '.join(OPERATORS)})",
                    entity=self.meta.cls,
                    property=prop.name,
                )
        if isinstance(value, _SEQUENCES) and not prop.type.mutable:
            return self.operator(prop, "$in", value)
        return self.operator(prop, "$eq", value)

    def logical(self, op: str, value: Any) -> str:
        """$and / $or / $not. An empty condition ({}) is TRUE, as in SQL and MikroORM: it
        makes an $or TRUE, drops out of an $and, and `$not: {}` is FALSE; an empty list is
        the operator's identity ($and: [] is TRUE, $or: [] is FALSE). Constants fold: a
        FALSE branch drops out of an $or and makes an $and FALSE, and $not turns one into
        the other, so that a filter with no column left compiles to "" or FALSE."""
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
            mark = len(self.params)
            parts = [self.group(i) for i in items]
            if op == "$and":
                if _FALSE in parts:
                    del self.params[mark:]
                    return _FALSE
                parts = [p for p in parts if p]
                if not parts:
                    return ""
            else:
                if "" in parts:
                    # a branch matches everything: so does the $or (its branches were still
                    # compiled, so validated; their parameters are dropped with their SQL)
                    del self.params[mark:]
                    return ""
                parts = [p for p in parts if p != _FALSE]
                if not parts:
                    return _FALSE
            joined = f" {op[1:]} ".join(f"({p})" for p in parts)
            return f"({joined})"
        if op == "$not":
            if not isinstance(value, Mapping):
                raise ValidationError(
                    f"$not in a filter on {self.meta.class_name} takes a condition (dict), "
                    f"got {value!r}",
                    entity=self.meta.cls,
                )
            return self.negate(self.group(value))
        raise _unknown_operator(self.meta, op, None)

    @staticmethod
    def negate(inner: str) -> str:
        if not inner:
            return _FALSE
        return "" if inner == _FALSE else f"not ({inner})"

    def operator(self, prop: PropertyMetadata, op: Any, operand: Any) -> str:
        col = self.column(prop)
        if op in _COMPARISONS:
            if operand is None:
                if op in ("$eq", "$ne"):
                    return f"{col} is null" if op == "$eq" else f"{col} is not null"
                raise self.invalid(
                    prop, op, operand, f"{prop.type.describe()} (for null use $eq, $ne or $exists)"
                )
            self.params.append(self.value(prop, operand, op))
            return f"{col} {_COMPARISONS[op]} {self.param}"
        if op in ("$in", "$nin"):
            if not isinstance(operand, _SEQUENCES):
                raise ValidationError(
                    f"{op} on {self.meta.class_name}.{prop.name} takes a list, got {operand!r}",
                    entity=self.meta.cls,
                    property=prop.name,
                )
            items = list(operand)
            # None in the list means NULL, which `in (...)` never matches (and which makes
            # `not in (...)` match nothing at all): it becomes an explicit `is [not] null`
            with_null = any(v is None for v in items)
            if with_null:
                items = [v for v in items if v is not None]
            if not items:
                if with_null:
                    return f"{col} is null" if op == "$in" else f"{col} is not null"
                return _FALSE if op == "$in" else ""
            if len(self.params) + len(items) > self.max_params:
                raise ValidationError(
                    f"{op} on {self.meta.class_name}.{prop.name} in a filter has "
                    f"{len(items)} values, more than one statement can bind on "
                    f"{self.platform.name} (at most {self.platform.max_parameters} parameters "
                    f"in all): split the list and query in parts",
                    entity=self.meta.cls,
                    property=prop.name,
                )
            self.params.extend(self.value(prop, v, op) for v in items)
            marks = self.platform.params(len(items))
            if op == "$in":
                sql = f"{col} in ({marks})"
                return f"({sql} or {col} is null)" if with_null else sql
            sql = f"{col} not in ({marks})"
            return f"({sql} and {col} is not null)" if with_null else sql
        if op == "$like":
            if not isinstance(operand, str):
                raise self.invalid(prop, op, operand, "a str pattern (% and _ as wildcards)")
            self.check_storable(prop, op, operand)
            self.params.append(operand)
            return self.platform.like(self.platform.as_text(col, prop))
        if op == "$re":
            if not isinstance(operand, str):
                raise self.invalid(prop, op, operand, "a str regular expression")
            import re  # `import orm` does not load re: the first `$re` filter does

            try:
                re.compile(operand)
            except re.error as exc:
                raise self.invalid(
                    prop, op, operand, f"a valid regular expression (Python's re: {exc})"
                ) from None
            self.check_storable(prop, op, operand)
            problem = self.platform.regex_problem(operand)
            if problem is not None:
                raise self.invalid(
                    prop, op, operand, f"a regular expression {self.platform.name} takes "
                    f"({problem})"
                )
            self.params.append(operand)
            return self.platform.regexp(self.platform.as_text(col, prop))
        if op == "$exists":
            if not isinstance(operand, bool):
                raise self.invalid(prop, op, operand, "True or False")
            return f"{col} is not null" if operand else f"{col} is null"
        if op == "$not":
            if isinstance(operand, Mapping):
                inner = self.entry(prop.name, operand)
            else:
                inner = self.operator(prop, "$eq", operand)
            return self.negate(inner)
        raise _unknown_operator(self.meta, str(op), prop.name)


def compile_where(
    meta: EntityMetadata,
    where: Any,
    platform: Platform,
    alias: str | None = None,
    bound: int = 2,
) -> tuple[str, list[Any]]:
    """`where` (a dict, a PK value, a list of PKs) -> (SQL condition or "", parameters).
    Raises ValidationError for an unknown property or operator, or for a filter binding
    more parameters than the statement can with its `bound` others; nothing has run by
    then."""
    compiler = _Compiler(meta, platform, alias, bound=bound)
    sql = compiler.group(normalize_where(meta, where))
    return sql, compiler.params


def compile_order_by(
    meta: EntityMetadata, order_by: Any, platform: Platform, alias: str | None
) -> str:
    """`{"created_at": "desc", "id": QueryOrder.ASC}` (or a list of such dicts) -> SQL.
    A ManyToOne (or owning one-to-one) path orders by the target's column:
    `{"author": {"name": "asc"}}`, nested too; see `_order_terms`."""
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
    return ", ".join(f"{expr} {text}" for expr, text in _order_terms(meta, items, platform, alias, 0))


def _order_terms(
    meta: EntityMetadata, items: list[tuple[str, Any]], platform: Platform, alias: str | None,
    depth: int,
) -> list[tuple[str, str]]:
    """(`<column>`, `asc|desc...`) per item; through a ManyToOne, the target's column as a scalar
    subquery on the foreign key (`(select o1.name from author as o1 where o1.id =
    u0.author_id) asc`): no join, so each row stays one row, and a NULL key orders as NULL."""
    quote = platform.quote
    prefix = f"{quote(alias)}." if alias else ""
    parts = []
    QueryOrder = _order.QueryOrder  # noqa: N806 - the class
    for name, direction in items:
        prop = meta.prop(name)
        relation = prop.relation
        if isinstance(direction, Mapping) and not direction:
            raise ValidationError(
                f"order_by on {meta.class_name}: {name} is given no column to order by; "
                f"name one, e.g. {{{name!r}: {{'id': 'asc'}}}}",
                entity=meta.cls,
                property=name,
            )
        if isinstance(direction, Mapping) and relation is not None and prop.column_index >= 0:
            target = relation.target_meta
            inner = f"o{depth + 1}"
            source = (
                f"from {quote(target.table)} as {quote(inner)} where "
                f"{quote(inner)}.{quote(target.pk.field_name)} = {prefix}{quote(prop.field_name)}"
            )
            terms = _order_terms(target, list(direction.items()), platform, inner, depth + 1)
            parts.extend((f"(select {column} {source})", text) for column, text in terms)
            continue
        if isinstance(direction, Mapping) or prop.column_index < 0:
            # a collection or an inverse one-to-one has no column here, whatever the
            # direction (a plain one sent `order by ""`)
            raise ValidationError(
                f"order_by on {meta.class_name}: {name} is "
                + (
                    "not a relation" if relation is None
                    else "the inverse side of a one-to-one, which holds no column (order "
                    "from the other side)" if relation.kind == "1:1"
                    else "a collection (several rows each), which cannot order the rows"
                )
                + "; order by a column, or through a ManyToOne: "
                "{'<relation>': {'<column>': 'asc'}}",
                entity=meta.cls,
                property=name,
            )
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
        parts.append((f"{prefix}{quote(prop.field_name)}", text))
    return parts
