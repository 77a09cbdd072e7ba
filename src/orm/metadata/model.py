"""EntityMetadata / PropertyMetadata: the resolved, validated description of an entity, per
ORM instance (table and column names depend on its naming strategy)."""

from __future__ import annotations

from collections.abc import Mapping

from .._markers import MISSING
from .._typing import TYPE_CHECKING
from ..errors import ValidationError, _own_table, _short
from ..types import Type, unstorable

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "PropertyMetadata", "EntityMetadata", "RelationMetadata", "RelationType", "PendingKey",
    "PivotMetadata",
]


# Plain classes rather than dataclasses (eq=False): `dataclasses` imports `inspect`, which a
# script would pay for at `import orm`; built once per property / entity type at discovery.


class PropertyMetadata:
    name: str
    field_name: str
    type: Type
    python_type: Any
    nullable: bool
    default: Any
    default_factory: Any
    unique: bool
    index: bool
    primary: bool
    autoincrement: bool
    hidden: bool
    persist: bool
    version: bool
    on_create: Any
    on_update: Any
    comment: str | None
    column_type: str | None
    length: int | None
    precision: int | None
    scale: int | None
    #: position in `EntityMetadata.columns` (-1 when not persisted)
    column_index: int
    #: what a relation property points at (None for a scalar property)
    relation: RelationMetadata | None

    def __init__(
        self,
        name: str,
        field_name: str,
        type: Type,  # noqa: A002 - the property's mapped type, as named in the metadata
        python_type: Any = None,
        nullable: bool = False,
        default: Any = MISSING,
        default_factory: Any = None,
        unique: bool = False,
        index: bool = False,
        primary: bool = False,
        autoincrement: bool = False,
        hidden: bool = False,
        persist: bool = True,
        version: bool = False,
        on_create: Any = None,
        on_update: Any = None,
        comment: str | None = None,
        column_type: str | None = None,
        length: int | None = None,
        precision: int | None = None,
        scale: int | None = None,
        column_index: int = -1,
        relation: RelationMetadata | None = None,
    ) -> None:
        self.relation = relation
        self.name = name
        self.field_name = field_name
        self.type = type
        self.python_type = python_type
        self.nullable = nullable
        self.default = default
        self.default_factory = default_factory
        self.unique = unique
        self.index = index
        self.primary = primary
        self.autoincrement = autoincrement
        self.hidden = hidden
        self.persist = persist
        self.version = version
        self.on_create = on_create
        self.on_update = on_update
        self.comment = comment
        self.column_type = column_type
        self.length = length
        self.precision = precision
        self.scale = scale
        self.column_index = column_index

    def __repr__(self) -> str:
        return f"<PropertyMetadata {self.name} -> {self.field_name} {self.type!r}>"


class RelationMetadata:
    """One side of a relation between two entities, as MikroORM describes it.

    `kind` is "m:1" or "1:1" for the owning side (a foreign key column in this entity's
    table); "1:m" and "m:n" are the kinds collections will use. `owner` says which side holds
    the foreign key (or the pivot table); `mapped_by` / `inversed_by` name the property on
    the other side. Resolved at discovery, in a second pass over all the entities, so a
    target may be declared after the entity pointing at it."""

    kind: str
    #: the target entity's class and metadata (set at discovery)
    target: type
    target_meta: EntityMetadata
    owner: bool
    #: whether the property holds a `Ref` around the entity
    ref: bool
    #: the Cascade members in effect (ALL expanded)
    cascade: frozenset[Any]
    #: "cascade" | "set null" | "restrict" | "no action" | None (the database's default)
    on_delete: str | None
    persist_cascade: bool
    mapped_by: str | None
    inversed_by: str | None
    #: an inverse side whose items are deleted once they leave it (OneToMany only)
    orphan_removal: bool
    #: an inverse side whose items are removed with their owner (Cascade.REMOVE, or
    #: orphan_removal, which implies it)
    remove_cascade: bool

    def __init__(
        self,
        kind: str,
        owner: bool = True,
        ref: bool = False,
        cascade: frozenset[Any] = frozenset(),
        on_delete: str | None = None,
        mapped_by: str | None = None,
        inversed_by: str | None = None,
        orphan_removal: bool = False,
    ) -> None:
        from .cascade import Cascade

        self.kind = kind
        self.owner = owner
        self.ref = ref
        self.cascade = cascade
        #: whether persisting the owner persists the new entity it references
        self.persist_cascade = Cascade.PERSIST in cascade or Cascade.ALL in cascade
        self.on_delete = on_delete
        self.mapped_by = mapped_by
        self.inversed_by = inversed_by
        self.orphan_removal = orphan_removal
        self.remove_cascade = orphan_removal or Cascade.REMOVE in cascade
        self.target = None  # type: ignore[assignment]
        self.target_meta = None  # type: ignore[assignment]
        #: a many-to-many's pivot table (both sides share it; set at discovery)
        self.pivot: PivotMetadata | None = None
        #: a many-to-many's property on the other side (None: declared on one side only)
        self.other: str | None = None

    def __repr__(self) -> str:
        target = getattr(self.target, "__name__", None)
        return f"<RelationMetadata {self.kind} -> {target}>"


class PivotMetadata:
    """The pivot table of a many-to-many: one row per (owner, target) pair, a composite
    primary key of both columns, each a foreign key `on delete cascade` to its table.

    `owner_column` holds the owning side's key, `target_column` the target's; both are
    `PropertyMetadata` of a `RelationType`, so DDL and key conversion are the ones a
    ManyToOne uses. Built once at discovery."""

    table: str
    #: the owning side's property (`Article.tags`)
    prop: PropertyMetadata
    owner_meta: EntityMetadata
    target_meta: EntityMetadata
    owner_column: PropertyMetadata
    target_column: PropertyMetadata

    def __init__(
        self,
        table: str,
        prop: PropertyMetadata,
        owner_meta: EntityMetadata,
        target_meta: EntityMetadata,
        owner_column: PropertyMetadata,
        target_column: PropertyMetadata,
    ) -> None:
        self.table = table
        self.prop = prop
        self.owner_meta = owner_meta
        self.target_meta = target_meta
        self.owner_column = owner_column
        self.target_column = target_column

    def columns(self, prop: PropertyMetadata) -> tuple[PropertyMetadata, PropertyMetadata]:
        """(the column holding `prop`'s entity's key, the column holding its items' keys):
        the owning side reads the pivot one way, the inverse side the other."""
        if prop is self.prop:
            return self.owner_column, self.target_column
        return self.target_column, self.owner_column

    def __repr__(self) -> str:
        return f"<PivotMetadata {self.table} of {self.owner_meta.class_name}.{self.prop.name}>"


class PendingKey:
    """The key a new entity will get, standing in a flush's parameters and snapshots until
    the database has generated it (the unit of work replaces it before the statement that
    needs it runs). Equal to nothing else, so a relation re-pointed to a new entity always
    counts as a change."""

    __slots__ = ("entity",)

    def __init__(self, entity: Any) -> None:
        self.entity = entity

    def __repr__(self) -> str:
        return f"<key of new {type(self.entity).__name__}>"


class RelationType(Type):
    """The mapped type of a relation's foreign key column: the value is the target entity
    (or a `Ref` around it), the database value is the target's primary key in database form
    (a `PendingKey` while the target's key is still to be generated)."""

    name = "relation"

    def __init__(self, relation: RelationMetadata) -> None:
        self.relation = relation
        self.pk_name = ""
        self.pk_to_db: Any = None
        self._target: Any = None
        self._ref: Any = None

    def resolve(self) -> None:
        """Called once the target is known (discovery's second pass)."""
        from ..entity.reference import Ref

        target = self.relation.target_meta
        self.python_types = (target.cls, Ref)
        self.pk_name = target.pk.name
        self.pk_to_db = target.pk.type.to_db if target.pk.type.converts else None
        self._target = target.cls
        self._ref = Ref

    def to_db(self, value: Any) -> Any:
        """The target's key in database form. Only an entity of exactly the target class
        is one: a sub-entity (an @entity() subclass) is stored in its own table, so its
        key names a row of that table, never of the target's."""
        cls = type(value)
        if cls is self._ref:
            value = value.entity
            cls = type(value)
        if cls is not self._target:
            raise TypeError(self.problem(value))
        key = getattr(value, self.pk_name, None)
        if key is None:
            return PendingKey(value)
        conv = self.pk_to_db
        return key if conv is None else conv(key)

    def problem(self, value: Any) -> str:
        """What is wrong with `value` (a Ref unwrapped), which is not a target entity:
        the words of the flush's ValidationError (error paths only)."""
        target = self.relation.target_meta
        given = value.entity if type(value) is self._ref else value
        return (
            f"got {type(given).__name__} {_short(given, 60)}"
            f"{_own_table(target.cls, given, target.table)}"
        )

    def describe(self) -> str:
        name = self.relation.target.__name__
        return f"Ref[{name}]" if self.relation.ref else f"a {name} entity"

    def column_type(self, prop: Any, dialect: str) -> str:
        target_pk = self.relation.target_meta.pk
        return target_pk.type.column_type(target_pk, dialect)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"RelationType({self.relation!r})"


def _not_a_column(
    meta: EntityMetadata, prop: PropertyMetadata, owner: Any, operation: str | None
) -> ValidationError:
    """A property given to a call that writes columns (`upsert`, `native_insert`,
    `native_update`) that has none: a collection, the inverse side of a one-to-one, a
    property with persist=False."""
    relation = prop.relation
    if relation is not None and relation.kind in ("1:m", "m:n"):
        what = "a collection (its links are written by a flush)"
    elif relation is not None:
        what = "the inverse side of a one-to-one (the other table holds its foreign key)"
    else:
        what = "not stored (persist=False)"
    call = f"{operation}()" if operation else "This call"
    return ValidationError(
        f"{call} writes {meta.class_name}'s columns only, and {meta.class_name}.{prop.name} "
        f"is {what}, with no column in table {meta.table!r}. Leave it out, and set it on "
        f"the entity before a flush; nothing was written.",
        entity=owner,
        property=prop.name,
    )


def _relation_db_value(
    meta: EntityMetadata, prop: PropertyMetadata, value: Any, owner: Any, pending: bool,
    operation: str | None = None,
) -> Any:
    """A relation's value in native queries and upserts: the target entity (or a Ref), or
    its primary key, -> the key in database form; anything else, or a target not stored
    yet, is the flush's ValidationError (its advice naming `operation`, as for the other
    columns)."""
    from ..entity.reference import Ref

    target = prop.relation.target_meta  # type: ignore[union-attr]
    if getattr(type(value), "_orm_declaration", None) is None and type(value) is not Ref:
        try:
            key = target.python_key(value)
        except ValidationError:
            meta.plan.on_invalid(owner, prop.column_index, value, operation)
            raise
        pk_type = target.pk.type
        return pk_type.to_db(key) if pk_type.converts else key
    try:
        db = prop.type.to_db(value)
    except TypeError:
        meta.plan.on_invalid(owner, prop.column_index, value, operation)
        raise
    if isinstance(db, PendingKey) and not pending:
        raise ValidationError(
            f"{meta.class_name}.{prop.name}: the {target.class_name} given is not stored yet "
            f"(no primary key); flush it first.",
            entity=owner,
            property=prop.name,
        )
    return db


class EntityMetadata:
    cls: type
    class_name: str
    table: str
    properties: dict[str, PropertyMetadata]
    columns: list[PropertyMetadata]
    pk: PropertyMetadata
    pk_index: int
    version: PropertyMetadata | None
    has_mutable: bool
    has_hooks: bool
    #: columns whose values may change in place only for some value types (see
    #: Type.mutable_values): (property name, those types)
    watched: tuple[tuple[str, tuple[type, ...]], ...]
    #: columns of custom types that never said whether their values change in place (see
    #: types.presumed_in_place): compared only for entities holding a mutable value
    presumed: tuple[str, ...]
    #: whether the class's `__init__` is the generated one (which applies the defaults)
    generated_init: bool
    #: the compiled plan handed to the diff core
    plan: Any
    #: SQL text cached per statement shape (see orm.query.sql)
    sql: dict[Any, str]
    #: lifecycle hook methods by event, found at discovery: ((function, takes_args), ...)
    hooks: dict[str, tuple[tuple[Any, bool], ...]]
    #: everything listening to this type's events, hooks then subscribers (kept by the
    #: ORM's EventManager, see orm.events.manager); empty when nothing listens
    listeners: dict[str, Any]
    #: whether anything listens to on_init or on_load (checked once per query)
    loads: bool
    #: the relation properties (owning sides first, in declaration order)
    relations: list[PropertyMetadata]

    def __init__(
        self,
        cls: type,
        class_name: str,
        table: str,
        properties: dict[str, PropertyMetadata],
        columns: list[PropertyMetadata],
        pk: PropertyMetadata,
        pk_index: int,
        version: PropertyMetadata | None = None,
        has_mutable: bool = False,
        has_hooks: bool = False,
        watched: tuple[tuple[str, tuple[type, ...]], ...] = (),
        presumed: tuple[str, ...] = (),
        generated_init: bool = True,
        plan: Any = None,
        sql: dict[Any, str] | None = None,
        hooks: dict[str, tuple[tuple[Any, bool], ...]] | None = None,
    ) -> None:
        self.cls = cls
        self.class_name = class_name
        self.table = table
        self.properties = properties
        self.columns = columns
        self.pk = pk
        self.pk_index = pk_index
        self.version = version
        self.has_mutable = has_mutable
        self.has_hooks = has_hooks
        self.watched = watched
        self.presumed = presumed
        self.generated_init = generated_init
        self.plan = plan
        self.sql = {} if sql is None else sql
        self.hooks = {} if hooks is None else hooks
        self.listeners = {}
        self.loads = False
        self.relations = []
        #: the inverse sides (`OneToMany(mapped_by=...)`): no column
        self.collections = []
        #: the inverse one-to-one sides (`OneToOne(mapped_by=...)`): no column either
        self.inverse_ones: list[PropertyMetadata] = []
        #: the inverse sides whose items are removed with this entity (Cascade.REMOVE)
        self.remove_cascades: list[PropertyMetadata] = []

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
        self,
        data: Mapping[str, Any],
        entity: Any = None,
        pending: bool = False,
        operation: str | None = None,
    ) -> tuple[list[str], list[Any]]:
        """Property values -> (column names, database values), each value checked against
        its type as a flush checks it (a ValidationError naming entity and property, raised
        through the plan's `on_invalid`, before any SQL runs; outside a flush its advice
        names `operation`, the call that wrote them). With `pending` (a flush), a relation
        to a new entity gives a `PendingKey` the flush fills in."""
        fields, values = [], []
        on_invalid = self.plan.on_invalid
        owner = self.cls if entity is None else entity
        columns = self.columns
        for key, value in data.items():
            prop = self.prop(key)
            at = prop.column_index
            if not (0 <= at < len(columns) and columns[at] is prop):
                raise _not_a_column(self, prop, owner, operation)
            if value is not None and prop.relation is not None:
                value = _relation_db_value(self, prop, value, owner, pending, operation)
                fields.append(prop.field_name)
                values.append(value)
                continue
            if value is not None:
                mapped = prop.type
                accepted = mapped.python_types
                if accepted and (
                    not isinstance(value, accepted)
                    or (value.__class__ is bool and bool not in accepted)  # as the cores
                ):
                    on_invalid(owner, prop.column_index, value, operation)
                if mapped.converts:
                    try:
                        value = mapped.to_db(value)
                    except (TypeError, ValueError, OverflowError):
                        on_invalid(owner, prop.column_index, value, operation)
                        raise
                elif unstorable(value) is not None:
                    on_invalid(owner, prop.column_index, value, operation)
            fields.append(prop.field_name)
            values.append(value)
        return fields, values

    def row_key(self, row: tuple) -> Any:
        """The identity-map key of a row read from the database (in column order)."""
        key = row[self.pk_index]
        if key is not None and self.pk.type.converts:
            key = self.pk.type.to_python(key)
        return key

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
                key = pk.type.to_python(value)
                # a type that only checks what is written (a string refusing NUL characters
                # on PostgreSQL) hands the value back as it was: still not a key
                if isinstance(key, accepted):
                    return key
            elif int in accepted and type(value) is not bool:
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
