"""EntityMetadata / PropertyMetadata: the resolved, validated description of an entity, per
ORM instance (table and column names depend on its naming strategy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._markers import MISSING
from ..errors import ValidationError
from ..types import Type, unstorable

__all__ = ["PropertyMetadata", "EntityMetadata"]


@dataclass(eq=False)
class PropertyMetadata:
    name: str
    field_name: str
    type: Type
    python_type: Any = None
    nullable: bool = False
    default: Any = MISSING
    default_factory: Any = None
    unique: bool = False
    index: bool = False
    primary: bool = False
    autoincrement: bool = False
    hidden: bool = False
    persist: bool = True
    version: bool = False
    on_create: Any = None
    on_update: Any = None
    comment: str | None = None
    column_type: str | None = None
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    #: position in `EntityMetadata.columns` (-1 when not persisted)
    column_index: int = -1

    def __repr__(self) -> str:
        return f"<PropertyMetadata {self.name} -> {self.field_name} {self.type!r}>"


@dataclass(eq=False)
class EntityMetadata:
    cls: type
    class_name: str
    table: str
    properties: dict[str, PropertyMetadata]
    columns: list[PropertyMetadata]
    pk: PropertyMetadata
    pk_index: int
    version: PropertyMetadata | None = None
    has_mutable: bool = False
    has_hooks: bool = False
    #: columns whose values may change in place only for some value types (see
    #: Type.mutable_values): (property name, those types)
    watched: tuple[tuple[str, tuple[type, ...]], ...] = ()
    #: whether the class's `__init__` is the generated one (which applies the defaults)
    generated_init: bool = True
    #: the compiled plan handed to the diff core
    plan: Any = None
    #: SQL text cached per statement shape (see orm.query.sql)
    sql: dict[Any, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.properties)

    def prop(self, name: str) -> PropertyMetadata:
        """The property called `name`, or a ValidationError listing the ones that exist."""
        try:
            return self.properties[name]
        except (KeyError, TypeError):
            raise ValidationError(
                f"{self.class_name} has no property {name!r}; known properties: "
                f"{', '.join(self.properties)}",
                entity=self.cls,
                property=name if isinstance(name, str) else None,
            ) from None

    def to_db_columns(
        self, data: Mapping[str, Any], entity: Any = None
    ) -> tuple[list[str], list[Any]]:
        """Property values -> (column names, database values), each value checked against
        its type as a flush checks it (a ValidationError naming entity and property, raised
        through the plan's `on_invalid`, before any SQL runs)."""
        fields, values = [], []
        on_invalid = self.plan.on_invalid
        owner = self.cls if entity is None else entity
        for key, value in data.items():
            prop = self.prop(key)
            if value is not None:
                mapped = prop.type
                if mapped.python_types and not isinstance(value, mapped.python_types):
                    on_invalid(owner, prop.column_index, value)
                if mapped.converts:
                    try:
                        value = mapped.to_db(value)
                    except (TypeError, ValueError, OverflowError):
                        on_invalid(owner, prop.column_index, value)
                        raise
                elif unstorable(value) is not None:
                    on_invalid(owner, prop.column_index, value)
            fields.append(prop.field_name)
            values.append(value)
        return fields, values

    def python_key(self, value: Any) -> Any:
        """A primary key value as the identity map holds it: of the PK's Python type,
        converted when the form is unambiguous (`"1"` for an int key, a UUID's text), else a
        ValidationError. Every key that enters a lookup goes through here, so one row never
        gets two identities (`1` and `"1"`)."""
        pk = self.pk
        if value is None:
            raise ValidationError(
                f"No primary key given for {self.class_name}.{pk.name} (got None): pass the "
                f"key of the row you want, or a filter dict.",
                entity=self.cls,
                property=pk.name,
            )
        accepted = pk.type.python_types
        if not accepted or (
            isinstance(value, accepted) and not (type(value) is bool and bool not in accepted)
        ):
            return value
        try:
            if pk.type.converts:
                return pk.type.to_python(value)
            if int in accepted and type(value) is not bool:
                if isinstance(value, str):
                    return int(value.strip())
                if isinstance(value, float) and value.is_integer():
                    return int(value)
        except (TypeError, ValueError, AttributeError) as exc:
            reason = f" ({exc})"
        else:
            reason = ""
        raise ValidationError(
            f"{value!r} is not a valid primary key for {self.class_name}.{pk.name}: expected "
            f"{pk.type.describe()}{reason}",
            entity=self.cls,
            property=pk.name,
        )

    def __repr__(self) -> str:
        return f"<EntityMetadata {self.class_name} table={self.table!r}>"
