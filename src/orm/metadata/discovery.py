"""Discovery: from what the user listed in `entities` to validated `EntityMetadata`.

Everything that can be wrong with an entity definition is found here, at `ORM.init()`, and
reported as a `MetadataError` naming the entity and the property. The per-type plans for the
diff core are built here too, once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from .._backend import core
from .._markers import MISSING
from .._typing import TYPE_CHECKING
from ..errors import MetadataError, ValidationError, _short
from ..naming import NamingStrategy
from ..types import (
    BlobType,
    BooleanType,
    DateTimeType,
    DateType,
    DecimalType,
    EnumType,
    IntegerType,
    TimeType,
    Type,
    UuidType,
    declares_in_place,
    presumed_in_place,
    resolve_type,
    type_from_annotation,
    unwrap_optional,
    value_problem,
)
from .declare import (
    EntityDeclaration,
    EntitySchema,
    annotation_namespace,
    declaration_of,
    is_generated_pk,
)
from .model import (
    EntityMetadata,
    PendingKey,
    PivotMetadata,
    PropertyMetadata,
    RelationMetadata,
    RelationType,
)
from .options import KNOWN_OPTIONS
from .relations import ON_DELETE

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from ..platforms.base import Platform

__all__ = ["MetadataStorage", "discover", "expand_entries", "inspect_entries"]

#: folder-based discovery (`.folders`), re-exported from here but imported only when used:
#: it needs `glob`, `pkgutil`, `pathlib` and `importlib`, which a script listing its entity
#: classes never does
_FOLDER_NAMES = frozenset(
    {"EntryReport", "_entities_in", "_import_file", "_import_module_tree", "is_glob"}
)


def __getattr__(name: str) -> Any:
    if name in _FOLDER_NAMES:
        from . import folders

        return getattr(folders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def inspect_entries(entries: Iterable[Any], base_dir: str | Path | None = None) -> list[Any]:
    """`folders.inspect_entries`: one `EntryReport` per entry (for `orm debug`)."""
    from .folders import inspect_entries as inspect_folders

    return inspect_folders(entries, base_dir)


def expand_entries(entries: Iterable[Any], base_dir: str | Path | None = None) -> list[type]:
    """`folders.expand_entries`: classes, `EntitySchema`s, dotted module names and file globs
    -> entity classes, each once, in the order first seen. A list of classes and schemas
    only (the common case) is handled here without importing the folder discovery."""
    entries = list(entries)
    if not all(isinstance(e, (type, EntitySchema)) for e in entries):
        from .folders import expand_entries as expand_folders

        return expand_folders(entries, base_dir)
    unique: list[type] = []
    seen: set[type] = set()
    for entry in entries:
        cls = entry.class_ if isinstance(entry, EntitySchema) else entry
        if cls not in seen:
            seen.add(cls)
            unique.append(cls)
    return unique



class MetadataStorage:
    """All entities known to one ORM, by class and by class name."""

    def __init__(self, metas: list[EntityMetadata]) -> None:
        self._by_class: dict[type, EntityMetadata] = {m.cls: m for m in metas}
        self._by_name: dict[str, EntityMetadata] = {m.class_name: m for m in metas}
        #: whether any entity has a relation (a flush skips the relation work otherwise)
        self.has_relations = False
        #: class -> position in foreign key order (a referenced entity before those
        #: referencing it; self-references and cycles aside): the order of deletes
        self.fk_rank: dict[type, int] = {}
        #: class -> the classes whose relations (with cascade persist) point at it: a new
        #: one of those may bring new ones of this class into a flush
        self.referrers: dict[type, frozenset[type]] = {}
        #: the pivot tables of the many-to-many relations (owning sides, in declaration order)
        self.pivots: list[PivotMetadata] = []
        #: class -> the (class, property) of every many-to-many collection holding entities
        #: of that class (either side): where a deleted entity is dropped from in memory
        self.m2m_holders: dict[type, list[tuple[type, str]]] = {}
        #: whether removing an entity may remove others (Cascade.REMOVE / orphan_removal on
        #: an inverse side): a flush looks for them only then
        self.removal_cascade = False
        #: class -> its owning relations whose inverse side has orphan_removal: an entity
        #: of the class unlinked through one of them is deleted at flush
        self.orphans: dict[type, list[PropertyMetadata]] = {}
        #: class -> the classes whose removal cascades to it (see _removal_sources)
        self.removed_by: dict[type, frozenset[type]] = {}
        #: class -> the classes held by the collections its new entities may bring into a
        #: flush (filled on first use: see unit_of_work._reached_targets)
        self.reached_targets: dict[type, frozenset[type]] = {}
        #: (class, property) -> the same, for the entities of that class reached back through
        #: the property's other side (see unit_of_work._reached_past)
        self.reached_past: dict[tuple[type, str | None], frozenset[type]] = {}

    def __iter__(self):
        return iter(self._by_class.values())

    def __len__(self) -> int:
        return len(self._by_class)

    def __contains__(self, cls: Any) -> bool:
        return cls in self._by_class

    def find(self, entity: Any) -> EntityMetadata | None:
        meta = self._by_class.get(entity) if isinstance(entity, type) else None
        if meta is None and isinstance(entity, str):
            meta = self._by_name.get(entity)
        if meta is None and isinstance(entity, EntitySchema):
            meta = self._by_class.get(entity.class_)
        return meta

    def get(self, entity: Any) -> EntityMetadata:
        """Metadata of an entity class (or its name), or a MetadataError saying how to
        register it."""
        meta = self.find(entity)
        if meta is None:
            name = getattr(entity, "__name__", None) or repr(entity)
            known = ", ".join(self._by_name) or "none"
            raise MetadataError(
                f"Entity {name} is not registered with this ORM (known entities: {known}). "
                f"Add it to `entities` in the configuration passed to ORM.init().",
                entity=str(name),
            )
        return meta

    def of_instance(self, obj: Any) -> EntityMetadata:
        """Metadata for an entity instance; ValidationError for things that are not entities."""
        meta = self._by_class.get(type(obj))
        if meta is None:
            if declaration_of(type(obj)) is None:
                raise ValidationError(
                    f"Trying to use {type(obj).__name__} {_short(obj, 80)} as an entity, but it is not "
                    f"one: declare its class with @entity() or EntitySchema and register it in "
                    f"`entities`.",
                    entity=obj,
                )
            self.get(type(obj))
        return meta  # type: ignore[return-value]

    def by_table(self, table: str) -> EntityMetadata | None:
        for meta in self._by_class.values():
            if meta.table == table:
                return meta
        return None


def _resolve_annotation(decl: EntityDeclaration, name: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return eval(raw, annotation_namespace(decl.cls))  # noqa: S307
    except Exception as exc:
        raise MetadataError(
            f"Cannot resolve the type of {decl.cls.__name__}.{name}: annotation {raw!r} "
            f"failed with {type(exc).__name__}: {exc}. Import the type where the entity is "
            f"defined, or give it explicitly with Property(type=...).",
            entity=decl.cls.__name__,
            property=name,
        ) from exc


def _build_property(
    decl: EntityDeclaration, name: str, naming: NamingStrategy
) -> PropertyMetadata:
    cls_name = decl.cls.__name__
    opts = decl.properties[name]
    if opts.get("relation"):
        return _build_relation(decl, name, naming)
    if opts.unknown:
        raise MetadataError(
            f"{cls_name}.{name} has unknown option(s) {', '.join(sorted(opts.unknown))}; "
            f"known options: {', '.join(sorted(KNOWN_OPTIONS))}.",
            entity=cls_name,
            property=name,
        )
    raw = decl.annotations.get(name)
    annotation = _resolve_annotation(decl, name, raw) if raw is not None else None
    inner, optional = unwrap_optional(annotation) if annotation is not None else (None, False)
    type_opt = opts.get("type")
    mapped: Type | None
    if type_opt is not None:
        try:
            mapped = resolve_type(type_opt, inner)
        except LookupError as exc:
            raise MetadataError(
                f"{cls_name}.{name}: {exc}", entity=cls_name, property=name
            ) from None
    else:
        mapped = type_from_annotation(inner) if inner is not None else None
    if mapped is None:
        shown = raw if isinstance(raw, str) else getattr(annotation, "__name__", annotation)
        raise MetadataError(
            f"{cls_name}.{name} has no resolvable type (annotation: {shown!r}). Annotate it "
            f"with a supported Python type (int, str, float, bool, bytes, Decimal, datetime, "
            f"date, time, UUID, dict, list, an Enum) or give Property(type=...).",
            entity=cls_name,
            property=name,
        )
    default = opts.get("default", MISSING)
    nullable = opts.get("nullable")
    if nullable is None:
        nullable = optional or (default is None)
    primary = bool(opts.get("primary"))
    version = bool(opts.get("version"))
    if version and not isinstance(mapped, IntegerType):
        raise MetadataError(
            f"{cls_name}.{name} is a version property but not an integer; use `int`.",
            entity=cls_name,
            property=name,
        )
    return PropertyMetadata(
        name=name,
        field_name=opts.get("field_name") or naming.property_to_column_name(name),
        type=mapped,
        python_type=inner,
        nullable=bool(nullable) and not primary,
        default=default,
        default_factory=opts.get("default_factory"),
        unique=bool(opts.get("unique")),
        index=bool(opts.get("index")),
        primary=primary,
        autoincrement=is_generated_pk(decl.cls, raw if raw is not None else "", opts)
        and isinstance(mapped, IntegerType),
        hidden=bool(opts.get("hidden")),
        persist=bool(opts.get("persist", True)),
        version=version,
        on_create=opts.get("on_create"),
        on_update=opts.get("on_update"),
        comment=opts.get("comment"),
        column_type=opts.get("column_type"),
        length=opts.get("length"),
        precision=opts.get("precision"),
        scale=opts.get("scale"),
    )


_RELATION_KNOWN = (
    "entity, nullable, ref, cascade, on_delete, join_column, inversed_by, index, hidden "
    "(ManyToMany: mapped_by, pivot_table, inverse_join_column)"
)
#: the options of an inverse side (it has no column), by relation kind
_INVERSE_KNOWN = {
    "1:1": "entity, mapped_by, cascade, hidden",
    "1:m": "entity, mapped_by, cascade, orphan_removal, hidden",
}
#: options of the side holding the foreign key only
_OWNING_ONLY = ("nullable", "ref", "on_delete", "join_column", "inversed_by", "index")


def _build_relation(
    decl: EntityDeclaration, name: str, naming: NamingStrategy
) -> PropertyMetadata:
    """The first pass over a relation property: its options checked, the annotation kept
    for the second pass (`_resolve_relations`), which knows every entity."""
    cls_name = decl.cls.__name__
    opts = decl.properties[name]
    if "orphan_removal" in opts.unknown and opts.get("owner", True):
        raise MetadataError(
            f"{cls_name}.{name}: orphan_removal belongs on the inverse side "
            f"(OneToMany(mapped_by={name!r}, orphan_removal=True) on the target), not on the "
            f"{'ManyToOne' if opts.get('relation') == 'm:1' else 'OneToOne'} holding the "
            f"foreign key.",
            entity=cls_name,
            property=name,
        )
    if opts.unknown:
        known = _RELATION_KNOWN
        owning_only = sorted(set(opts.unknown) & set(_OWNING_ONLY))
        kind = opts.get("relation")
        if not opts.get("owner", True) and kind in _INVERSE_KNOWN:
            declared = "OneToOne" if kind == "1:1" else "OneToMany"
            known = _INVERSE_KNOWN[kind]
            if owning_only:
                mapped_by = opts.get("mapped_by")
                raise MetadataError(
                    f"{cls_name}.{name} = {declared}(mapped_by={mapped_by!r}) is the inverse "
                    f"side and has no column: {', '.join(owning_only)} "
                    f"{'belongs' if len(owning_only) == 1 else 'belong'} on the side holding "
                    f"the foreign key, the target's {mapped_by!r}. The options of this side: "
                    f"{known}.",
                    entity=cls_name,
                    property=name,
                )
        raise MetadataError(
            f"{cls_name}.{name} has unknown option(s) {', '.join(sorted(opts.unknown))}; "
            f"known options: {known}.",
            entity=cls_name,
            property=name,
        )
    on_delete = opts.get("on_delete")
    if on_delete is not None:
        on_delete = str(on_delete).lower()
        if on_delete not in ON_DELETE:
            raise MetadataError(
                f"{cls_name}.{name}: on_delete={opts.get('on_delete')!r} is not one of "
                f"{', '.join(map(repr, ON_DELETE))} (or None for the database's default).",
                entity=cls_name,
                property=name,
            )
    from .cascade import Cascade  # relations only: see orm.metadata.cascade

    cascade = opts.get("cascade") or ()
    if isinstance(cascade, (str, Cascade)):
        cascade = (cascade,)
    try:
        members = {Cascade(c) for c in cascade}
    except (ValueError, TypeError):
        raise MetadataError(
            f"{cls_name}.{name}: cascade={opts.get('cascade')!r} is not a list of Cascade "
            f"members ({', '.join(c.name for c in Cascade)}).",
            entity=cls_name,
            property=name,
        ) from None
    if Cascade.ALL in members:
        members = set(Cascade)
    if Cascade.REMOVE in members and opts.get("relation") == "m:n":
        raise MetadataError(
            f"{cls_name}.{name}: cascade={opts.get('cascade')!r} includes Cascade.REMOVE on "
            f"a ManyToMany, whose entities on the other side are shared with other rows. It "
            f"is not supported: removing an entity already deletes its pivot rows (its "
            f"links), never the entities it links to; remove those with em.remove() where "
            f"you mean to, and use cascade=[Cascade.PERSIST, Cascade.MERGE] here.",
            entity=cls_name,
            property=name,
        )
    if Cascade.REMOVE in members and opts.get("owner", True):
        raise MetadataError(
            f"{cls_name}.{name}: cascade={opts.get('cascade')!r} includes Cascade.REMOVE on "
            f"the side holding the foreign key, which would delete the referenced "
            f"{'entity' if opts.get('relation') == '1:1' else 'entity, shared by other rows,'} "
            f"whenever this one is removed. It is not supported: declare Cascade.REMOVE on "
            f"the inverse side (OneToMany / OneToOne(mapped_by=...)), and use "
            f"cascade=[Cascade.PERSIST, Cascade.MERGE] here.",
            entity=cls_name,
            property=name,
        )
    relation = RelationMetadata(
        kind=opts.get("relation"),
        owner=bool(opts.get("owner", True)),
        ref=bool(opts.get("ref")),
        cascade=frozenset(members),
        on_delete=on_delete,
        mapped_by=opts.get("mapped_by"),
        inversed_by=opts.get("inversed_by"),
        orphan_removal=bool(opts.get("orphan_removal")),
    )
    nullable = opts.get("nullable")
    return PropertyMetadata(
        name=name,
        field_name=opts.get("field_name") or "",
        type=RelationType(relation),
        python_type=None,
        nullable=bool(nullable),
        unique=bool(opts.get("unique")),
        index=bool(opts.get("index")),
        hidden=bool(opts.get("hidden")),
        persist=relation.owner and relation.kind != "m:n",
        relation=relation,
    )


def _relation_target_spec(decl: EntityDeclaration, prop: PropertyMetadata) -> tuple[Any, bool]:
    """What names the target (a class, a name, or a callable returning the class) and
    whether the annotation allows None / wraps it in `Ref`."""
    from ..entity.reference import Ref

    opts = decl.properties[prop.name]
    raw = decl.annotations.get(prop.name)
    spec = opts.get("entity")
    optional = False
    annotation: Any = raw
    if isinstance(raw, str):
        try:
            annotation = eval(raw, annotation_namespace(decl.cls))  # noqa: S307
        except Exception:
            annotation = raw
    if isinstance(annotation, str):
        text = annotation.replace(" ", "")
        for wrapper in ("Optional[", "typing.Optional["):
            if text.startswith(wrapper) and text.endswith("]"):
                text, optional = text[len(wrapper) : -1], True
        parts = [p for p in text.split("|")]
        if "None" in parts:
            optional = True
            parts = [p for p in parts if p != "None"]
        text = parts[0] if len(parts) == 1 else text
        for wrapper in ("Ref[", "orm.Ref["):
            if text.startswith(wrapper) and text.endswith("]"):
                text = text[len(wrapper) : -1]
                prop.relation.ref = True  # type: ignore[union-attr]
        for wrapper in ("Collection[", "orm.Collection["):
            if text.startswith(wrapper) and text.endswith("]"):
                text = text[len(wrapper) : -1]
        text = text.strip("'\"")
        annotation = text
    elif annotation is not None:
        annotation, optional = unwrap_optional(annotation)
        import typing

        from ..entity.collection import Collection

        if typing.get_origin(annotation) is Collection or annotation is Collection:
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
            if isinstance(annotation, typing.ForwardRef):
                annotation = annotation.__forward_arg__
        elif typing.get_origin(annotation) is Ref or annotation is Ref:
            prop.relation.ref = True  # type: ignore[union-attr]
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
            if isinstance(annotation, typing.ForwardRef):
                annotation = annotation.__forward_arg__
    if spec is None:
        spec = annotation
    elif isinstance(spec, type(lambda: 0)) and not isinstance(spec, type):
        spec = spec()
    return spec, optional


def _resolve_relations(
    metas: list[EntityMetadata],
    storage: MetadataStorage,
    naming: NamingStrategy,
    platform: Platform | None = None,
) -> None:
    """The second pass: every relation's target found among the discovered entities, its
    foreign key column named and typed after the target's primary key."""
    inverses: list[tuple[EntityMetadata, PropertyMetadata]] = []
    for meta in metas:
        decl = declaration_of(meta.cls)
        for prop in meta.properties.values():
            relation = prop.relation
            if relation is None:
                continue
            spec, optional = _relation_target_spec(decl, prop)  # type: ignore[arg-type]
            target = storage.find(spec) if spec is not None else None
            if target is None:
                shown = getattr(spec, "__name__", spec)
                known = ", ".join(m.class_name for m in metas)
                raise MetadataError(
                    f"{meta.class_name}.{prop.name} is a relation to {shown!r}, which is not "
                    f"a registered entity (known entities: {known}). Declare {shown} with "
                    f"@entity() and add it to `entities`, or fix the annotation / entity=.",
                    entity=meta.class_name,
                    property=prop.name,
                )
            relation.target = target.cls
            relation.target_meta = target
            if not relation.owner:
                inverses.append((meta, prop))
                continue
            if relation.kind == "m:n":
                _resolve_pivot(meta, prop, decl, storage, naming, platform)
                continue
            opts = decl.properties[prop.name]  # type: ignore[union-attr]
            if opts.get("nullable") is None:
                prop.nullable = optional
            prop.python_type = target.cls
            if not prop.field_name:
                prop.field_name = naming.join_key_column_name(prop.name, target.pk.field_name)
            prop.type.resolve()  # type: ignore[attr-defined]
            meta.relations.append(prop)
            storage.has_relations = True
            if relation.persist_cascade:
                storage.referrers[target.cls] = storage.referrers.get(
                    target.cls, frozenset()
                ) | {meta.cls}
        _finish_entity(meta, platform)
    _one_directional_copies(metas)
    for meta, prop in inverses:
        if prop.relation.kind == "m:n":  # type: ignore[union-attr]
            _resolve_many_inverse(meta, prop)
        else:
            _resolve_inverse(meta, prop, storage)
    _check_inversed_by(metas)
    _check_many_inversed_by(storage)
    for meta in metas:
        for prop in meta.collections:
            if prop.relation.kind == "m:n":  # type: ignore[union-attr]
                holders = storage.m2m_holders.setdefault(prop.relation.target, [])  # type: ignore[union-attr]
                holders.append((meta.cls, prop.name))
    rank: dict[type, int] = {}
    visiting: set[type] = set()

    def visit(meta: EntityMetadata) -> None:
        if meta.cls in rank or meta.cls in visiting:
            return
        visiting.add(meta.cls)
        for prop in meta.relations:
            visit(prop.relation.target_meta)  # type: ignore[union-attr]
        rank[meta.cls] = len(rank)

    for meta in metas:
        visit(meta)
    storage.fk_rank = rank
    storage.referrers = _transitive(storage.referrers)
    if storage.removal_cascade:
        storage.removed_by = _removal_sources(metas)


def _transitive(direct: dict[type, Any]) -> dict[type, frozenset[type]]:
    """class -> every class reachable from it through `direct` (class -> classes)."""
    closure: dict[type, frozenset[type]] = {}
    for cls in direct:
        seen: set[type] = set()
        todo = [cls]
        while todo:
            for reached in direct.get(todo.pop(), ()):
                if reached not in seen:
                    seen.add(reached)
                    todo.append(reached)
        closure[cls] = frozenset(seen)
    return closure


def _removal_sources(metas: list[EntityMetadata]) -> dict[type, frozenset[type]]:
    """class -> the classes whose removal reaches it through Cascade.REMOVE, transitively
    (a query of the class must flush such a pending removal first, FlushMode.AUTO)."""
    direct: dict[type, set[type]] = {}
    for meta in metas:
        for prop in meta.remove_cascades:
            direct.setdefault(prop.relation.target, set()).add(meta.cls)  # type: ignore[union-attr]
    return _transitive(direct)


def _resolve_inverse(
    meta: EntityMetadata, prop: PropertyMetadata, storage: MetadataStorage
) -> None:
    """A `OneToMany(mapped_by=...)` must name the target's ManyToOne pointing back here (a
    `OneToOne(mapped_by=...)` the target's owning OneToOne); the owning class's `__setattr__`
    then keeps the inverse side in step with it."""
    relation = prop.relation
    target = relation.target_meta  # type: ignore[union-attr]
    side = f"{meta.class_name}.{prop.name}"
    mapped_by = relation.mapped_by  # type: ignore[union-attr]
    one = relation.kind == "1:1"  # type: ignore[union-attr]
    back_kind, back_name = ("1:1", "owning OneToOne") if one else ("m:1", "ManyToOne")
    back = target.properties.get(mapped_by) if isinstance(mapped_by, str) else None
    declared = "OneToOne" if one else "OneToMany"
    if back is None or back.relation is None or back.relation.kind != back_kind or (
        not back.relation.owner or back.relation.target is not meta.cls
    ):
        if back is None:
            why = f"{target.class_name}.{mapped_by} does not exist" if mapped_by else (
                "mapped_by is missing")
        elif back.relation is None or back.relation.kind != back_kind or not back.relation.owner:
            why = f"{target.class_name}.{mapped_by} is not a{'n' if one else ''} {back_name}"
        else:
            _refuse_base_inverse(meta, prop, f"{declared}(mapped_by={mapped_by!r})", back,
                                 target, back_name)
            why = (f"{target.class_name}.{mapped_by} points at "
                   f"{back.relation.target.__name__}, not {meta.class_name}")
        raise MetadataError(
            f"{side} = {declared}(mapped_by={mapped_by!r}) must name the {back_name} on "
            f"{target.class_name} that points back at {meta.class_name}: {why}.",
            entity=meta.class_name,
            property=prop.name,
        )
    if relation.remove_cascade:  # type: ignore[union-attr]
        meta.remove_cascades.append(prop)
        storage.removal_cascade = True
    if relation.orphan_removal:  # type: ignore[union-attr]
        storage.orphans.setdefault(target.cls, []).append(back)
    if one:
        meta.inverse_ones.append(prop)
        from ..entity.one_to_one import install_inverse_one

        install_inverse_one(meta.cls, prop.name, target.cls, mapped_by)
        return
    _collection_target(meta, prop)
    inverses = target.cls.__dict__.get("_orm_inverses")
    if inverses is None:
        inverses = {}
        target.cls._orm_inverses = inverses
        from ..entity.collection import inverse_init, inverse_setattr

        target.cls.__setattr__ = inverse_setattr(target.cls, inverses, target.cls.__setattr__)
        if not getattr(target.cls.__dict__["__init__"], "_orm_inverse", False):
            target.cls.__init__ = inverse_init(target.cls, inverses, target.cls.__init__)
    inverses[mapped_by] = prop.name
    owners = target.cls.__dict__.get("_orm_inverse_owners")
    if owners is None:
        owners = target.cls._orm_inverse_owners = {}
    owners[mapped_by] = meta.cls  # what the relation may point at (checked on assignment)


def inherited_from(cls: type, name: str) -> type | None:
    """The base class `cls` inherited its property `name` from (an entity class, or a
    plain base class declaring properties; the nearest one), None when `cls` declares it
    itself."""
    options = declaration_of(cls).properties.get(name)  # type: ignore[union-attr]
    for base in cls.__mro__[1:]:
        decl = declaration_of(base)
        held = base.__dict__.get(name) if decl is None else decl.properties.get(name)
        if held is options:
            return base
    return None


def _refuse_base_inverse(
    meta: EntityMetadata,
    prop: PropertyMetadata,
    declared: str,
    back: PropertyMetadata,
    target: EntityMetadata,
    back_name: str,
) -> None:
    """An inverse side whose `mapped_by` relation points at a base entity of its class
    (typically inherited with the base's properties) would read the base table's keys as
    its own: the owning side holds keys of the base's rows, and a sub-entity's rows are
    in its own table, with keys of their own. A MetadataError saying what to do instead;
    nothing when the relation points at some other class (the caller's error)."""
    base = back.relation.target  # type: ignore[union-attr]
    if not issubclass(meta.cls, base):
        return
    cls_name = meta.class_name
    source = inherited_from(meta.cls, prop.name)
    how = f" (inherited from {source.__name__})" if source is not None else ""
    article = "an" if back_name.startswith("o") else "a"
    raise MetadataError(
        f"{cls_name}.{prop.name} = {declared}{how} cannot be read: {target.class_name}."
        f"{back.name} points at {base.__name__} and holds keys of {base.__name__} rows, while "
        f"{cls_name} is an entity of its own, stored in its own table {meta.table!r} with "
        f"keys of its own, so {cls_name}.{prop.name} would list the {target.class_name} "
        f"entities of other rows. Declare {prop.name} on {cls_name} with mapped_by naming {article} "
        f"{back_name} on {target.class_name} that points at {cls_name}, or, if {cls_name} "
        f"only shares {base.__name__}'s properties, declare them on a plain (non-@entity) "
        f"base class that both entity classes extend.",
        entity=cls_name,
        property=prop.name,
    )


def _collection_target(meta: EntityMetadata, prop: PropertyMetadata) -> None:
    """`prop` is a collection of its relation's target: the class checks what is added."""
    meta.collections.append(prop)
    if "_orm_collection_targets" not in meta.cls.__dict__:
        meta.cls._orm_collection_targets = {}
    meta.cls._orm_collection_targets[prop.name] = prop.relation.target  # type: ignore[union-attr]
    names = meta.cls.__dict__.get("_orm_collection_names")
    if names is None:  # once per class, however often discovery runs
        from ..entity.collection import collection_setattr

        names = meta.cls._orm_collection_names = set()
        meta.cls.__setattr__ = collection_setattr(meta.cls, names, meta.cls.__setattr__)
    names.add(prop.name)


def _pivot_name(
    platform: Platform | None, name: str, given: bool, meta: EntityMetadata, prop: str,
    option: str,
) -> str:
    """A pivot table or column name: a generated one fitted to the database's identifier
    limit (as index names are), one the user gave refused when longer (the database would
    truncate it)."""
    limit = platform.max_identifier_length if platform is not None else None
    if limit is None or len(name.encode("utf-8")) <= limit:
        return name
    if not given:
        return platform.fit_identifier(name)  # type: ignore[union-attr]
    raise MetadataError(
        f"{meta.class_name}.{prop}: {option}={name!r} is {len(name.encode('utf-8'))} bytes "
        f"long, more than the {limit} bytes {_DISPLAY.get(platform.name, platform.name)} "  # type: ignore[union-attr]
        f"keeps in an identifier (it would truncate it); give a shorter {option}.",
        entity=meta.class_name,
        property=prop,
    )


def _pivot_column(name: str, target: EntityMetadata) -> PropertyMetadata:
    """One column of a pivot table: a NOT NULL foreign key to `target`'s key, `on delete
    cascade` (removing either end removes the pairs it is in)."""
    relation = RelationMetadata("m:1", on_delete="cascade")
    relation.target = target.cls
    relation.target_meta = target
    column = PropertyMetadata(
        name=name, field_name=name, type=RelationType(relation), python_type=target.cls,
        nullable=False, relation=relation,
    )
    column.type.resolve()  # type: ignore[attr-defined]
    return column


def _resolve_pivot(
    meta: EntityMetadata,
    prop: PropertyMetadata,
    decl: Any,
    storage: MetadataStorage,
    naming: NamingStrategy,
    platform: Platform | None,
) -> None:
    """The owning side of a many-to-many: its pivot table named (`<owner table>_<property>`,
    columns `<owner>_<key>` and `<target>_<key>`, `_1`/`_2` when both ends are one class)."""
    relation = prop.relation
    target = relation.target_meta  # type: ignore[union-attr]
    opts = decl.properties[prop.name]
    owner_base = naming.class_to_table_name(meta.class_name)
    target_base = naming.class_to_table_name(target.class_name)
    if owner_base == target_base:
        owner_base, target_base = f"{owner_base}_1", f"{target_base}_2"
    table = opts.get("pivot_table") or (
        f"{meta.table}_{naming.property_to_column_name(prop.name)}"
    )
    owner_name = opts.get("join_column") or naming.join_key_column_name(
        owner_base, meta.pk.field_name
    )
    target_name = opts.get("inverse_join_column") or naming.join_key_column_name(
        target_base, target.pk.field_name
    )
    table = _pivot_name(platform, table, bool(opts.get("pivot_table")), meta, prop.name,
                        "pivot_table")
    owner_name = _pivot_name(platform, owner_name, bool(opts.get("join_column")), meta,
                             prop.name, "join_column")
    target_name = _pivot_name(platform, target_name, bool(opts.get("inverse_join_column")),
                              meta, prop.name, "inverse_join_column")
    if owner_name == target_name:
        raise MetadataError(
            f"{meta.class_name}.{prop.name}: both columns of pivot table {table!r} are named "
            f"{owner_name!r}; give join_column / inverse_join_column distinct names.",
            entity=meta.class_name,
            property=prop.name,
        )
    taken = {m.table: m.class_name for m in storage}
    taken.update({p.table: f"{p.owner_meta.class_name}.{p.prop.name}" for p in storage.pivots})
    if table in taken:
        raise MetadataError(
            f"{meta.class_name}.{prop.name}: its pivot table {table!r} is also the table of "
            f"{taken[table]}; give it another pivot_table=.",
            entity=meta.class_name,
            property=prop.name,
        )
    pivot = PivotMetadata(
        table, prop, meta, target, _pivot_column(owner_name, meta),
        _pivot_column(target_name, target),
    )
    relation.pivot = pivot  # type: ignore[union-attr]
    storage.pivots.append(pivot)
    storage.has_relations = True
    if relation.persist_cascade:  # type: ignore[union-attr]
        storage.referrers[target.cls] = storage.referrers.get(
            target.cls, frozenset()
        ) | {meta.cls}
    _collection_target(meta, prop)
    _many_to_many_sides(meta.cls)[prop.name] = (True, relation.inversed_by)  # type: ignore[union-attr]


def _many_to_many_sides(cls: type) -> dict[str, tuple[bool, str | None]]:
    """`cls._orm_many_to_many`: property -> (owning side?, the other side's property or
    None), what a `Collection` reads to keep both sides in step."""
    sides = cls.__dict__.get("_orm_many_to_many")
    if sides is None:
        sides = {}
        cls._orm_many_to_many = sides  # type: ignore[attr-defined]
    return sides


def _resolve_many_inverse(meta: EntityMetadata, prop: PropertyMetadata) -> None:
    """A `ManyToMany(mapped_by=...)` must name the owning ManyToMany on the target pointing
    back here; it shares that side's pivot table, read the other way."""
    relation = prop.relation
    target = relation.target_meta  # type: ignore[union-attr]
    mapped_by = relation.mapped_by  # type: ignore[union-attr]
    back = target.properties.get(mapped_by) if isinstance(mapped_by, str) else None
    why = None
    if back is None:
        why = f"{target.class_name}.{mapped_by} does not exist"
    elif back.relation is None or back.relation.kind != "m:n":
        why = f"{target.class_name}.{mapped_by} is not a ManyToMany"
    elif not back.relation.owner:
        why = (f"{target.class_name}.{mapped_by} is itself an inverse side "
               f"(mapped_by={back.relation.mapped_by!r}); one side must own the pivot table")
    elif back.relation.target is not meta.cls:
        _refuse_base_inverse(meta, prop, f"ManyToMany(mapped_by={mapped_by!r})", back, target,
                             "owning ManyToMany")
        why = (f"{target.class_name}.{mapped_by} points at "
               f"{back.relation.target.__name__}, not {meta.class_name}")
    elif back.relation.inversed_by not in (None, prop.name):
        why = (f"{target.class_name}.{mapped_by} names "
               f"inversed_by={back.relation.inversed_by!r}, not {prop.name!r}")
    if why is not None:
        raise MetadataError(
            f"{meta.class_name}.{prop.name} = ManyToMany(mapped_by={mapped_by!r}) must name "
            f"the owning ManyToMany on {target.class_name} that points back at "
            f"{meta.class_name}: {why}.",
            entity=meta.class_name,
            property=prop.name,
        )
    relation.pivot = back.relation.pivot  # type: ignore[union-attr]
    relation.other = mapped_by  # type: ignore[union-attr]
    back.relation.other = prop.name  # type: ignore[union-attr]
    _collection_target(meta, prop)
    _many_to_many_sides(meta.cls)[prop.name] = (False, mapped_by)
    _many_to_many_sides(target.cls)[mapped_by] = (True, prop.name)


def _one_directional_copies(metas: list[EntityMetadata]) -> None:
    """An owning relation inherited with its `inversed_by` (from a base entity, or a plain
    base class) names an inverse side mapped by another class's copy of it (the base
    entity's): that side lists the rows of that class's table (or pivot table) only, never
    this one's. This class's copy, which writes its own column (or pivot table), is then
    one-directional: no inverse side to keep in step in memory. (Declared on the class
    itself, such an `inversed_by` is the MetadataError of `_check_inversed_by`.)"""
    for meta in metas:
        for prop in meta.properties.values():
            relation = prop.relation
            if relation is None or not relation.owner or not relation.inversed_by:
                continue
            back = relation.target_meta.properties.get(relation.inversed_by)
            if back is None or back.relation is None or back.relation.owner or (
                back.relation.mapped_by != prop.name or back.relation.target is meta.cls
            ):
                continue
            if inherited_from(meta.cls, prop.name) is None:
                continue
            relation.inversed_by = None
            if relation.kind == "m:n":
                _many_to_many_sides(meta.cls)[prop.name] = (True, None)


def _check_many_inversed_by(storage: MetadataStorage) -> None:
    """An owning ManyToMany's `inversed_by` must name a ManyToMany(mapped_by=...) pointing
    back at it (two owning sides would write two pivot tables for one relation)."""
    for pivot in storage.pivots:
        prop, meta = pivot.prop, pivot.owner_meta
        name = prop.relation.inversed_by  # type: ignore[union-attr]
        if not name:
            continue
        target = pivot.target_meta
        back = target.properties.get(name)
        if back is None or back.relation is None or back.relation.kind != "m:n" or (
            back.relation.owner or back.relation.mapped_by != prop.name
            or back.relation.target is not meta.cls
        ):
            if back is None:
                why = f"{target.class_name}.{name} does not exist"
            elif back.relation is None or back.relation.kind != "m:n":
                why = f"{target.class_name}.{name} is not a ManyToMany"
            elif back.relation.owner:
                why = (f"{target.class_name}.{name} is an owning side too (it has no "
                       f"mapped_by); declare it ManyToMany(mapped_by={prop.name!r})")
            elif back.relation.mapped_by != prop.name:
                why = f"{target.class_name}.{name} is mapped_by={back.relation.mapped_by!r}"
            else:
                why = _other_inverse(meta, target, back)
            raise MetadataError(
                f"{meta.class_name}.{prop.name} = ManyToMany(inversed_by={name!r}) must name "
                f"a ManyToMany(mapped_by={prop.name!r}) on {target.class_name}: {why}.",
                entity=meta.class_name,
                property=prop.name,
            )


def _check_inversed_by(metas: list[EntityMetadata]) -> None:
    for meta in metas:
        for prop in meta.relations:
            name = prop.relation.inversed_by  # type: ignore[union-attr]
            if not name:
                continue
            target = prop.relation.target_meta  # type: ignore[union-attr]
            back = target.properties.get(name)
            if back is None or back.relation is None or back.relation.owner or (
                back.relation.mapped_by != prop.name
            ) or back.relation.target is not meta.cls:
                one = prop.relation.kind == "1:1"  # type: ignore[union-attr]
                declared, inverse = ("OneToOne", "OneToOne") if one else ("ManyToOne", "OneToMany")
                why = (
                    f"{target.class_name}.{name} is not one" if back is None
                    or back.relation is None or back.relation.owner
                    or back.relation.mapped_by != prop.name
                    else _other_inverse(meta, target, back)
                )
                raise MetadataError(
                    f"{meta.class_name}.{prop.name} = {declared}(inversed_by={name!r}) must "
                    f"name a {inverse}(mapped_by={prop.name!r}) on {target.class_name}; "
                    f"{why}.",
                    entity=meta.class_name,
                    property=prop.name,
                )


def _other_inverse(meta: EntityMetadata, target: EntityMetadata, back: PropertyMetadata) -> str:
    """Why an inverse side named by `meta`'s `inversed_by` is not this relation's: it is
    mapped by the relation of another class (a base entity's, whose rows it lists)."""
    other = back.relation.target  # type: ignore[union-attr]
    return (
        f"{target.class_name}.{back.name} is the inverse side of "
        f"{other.__name__}.{back.relation.mapped_by} and lists {other.__name__} "  # type: ignore[union-attr]
        f"entities, not {meta.class_name} ones ({meta.class_name} is stored in its own table "
        f"{meta.table!r}); declare an inverse side of its own on {target.class_name} and name "
        f"that, or leave inversed_by out"
    )


def _target_of(value: Any) -> type:
    """The class of a relation's value, a Ref's entity's for a Ref."""
    from ..entity.reference import Ref

    return type(value.entity) if type(value) is Ref else type(value)


def _invalid_value_reporter(meta_ref: list[EntityMetadata]):
    def on_invalid(entity: Any, index: int, value: Any, operation: str | None = None) -> None:
        """Raise the ValidationError for a value the flush cannot write: of a type the
        property does not accept, refused by its converter, or not storable by SQLite (NaN,
        an int beyond 64 bits); what exactly is worked out here, on the error path only."""
        meta = meta_ref[0]
        prop = meta.columns[index]
        expected = prop.type.describe()
        if value is None:
            problem = "got None, but the property is not nullable"
            held = getattr(entity, "__dict__", {})
            if (
                entity._orm_snap is None
                and prop.name not in held
                and held.get(meta.pk.name) is not None
                and not any(p.name in held for p in meta.columns if not p.primary)
            ):
                # only its key: a reference to a stored row that no EntityManager holds
                # (em.clear() detached it), taken for a new entity by the flush
                problem += (
                    f"; this {meta.class_name} holds only its key "
                    f"{held.get(meta.pk.name)!r}: a reference to a stored row, detached "
                    f"(by em.clear() or from another EntityManager), persisted as a new "
                    f"one. Use the row through this EntityManager instead "
                    f"(em.get_reference({meta.class_name}, key) or em.find_one)"
                )
        elif prop.relation is not None and _target_of(value) is not prop.relation.target:
            problem = prop.type.problem(value)  # type: ignore[attr-defined]
        else:
            problem = value_problem(prop.type, value) or f"got {type(value).__name__} {_short(value, 60)}"
        if operation is None:
            advice = "Fix the value and flush again; nothing of this flush was written."
        else:
            advice = f"Fix the value and call {operation}() again; nothing was written."
        raise ValidationError(
            f"Invalid value for {meta.class_name}.{prop.name}: expected {expected}, {problem}. "
            f"{advice}",
            entity=entity,
            property=prop.name,
        )

    return on_invalid


#: built-in types whose values are immutable and compared by equality: their snapshots keep
#: the Python value (see orm._diff_py, "kinds")
_VALUE_TYPES = (DateType, TimeType, DecimalType, UuidType, EnumType)


def column_kind(mapped: Type) -> int:
    """The diff core's kind of a column: 1 datetime, 2 boolean (both converted in C by the
    compiled core), 3 another immutable built-in value type, 4 blob (its `bytes` values
    passed through in C), 0 for everything else (including subclasses of the built-in types,
    which may convert or compare differently)."""
    kind = type(mapped)
    if kind is DateTimeType:
        return 1
    if kind is BooleanType:
        return 2
    if kind in _VALUE_TYPES:
        return 3
    if kind is BlobType:
        return 4
    return 0


def _overrides(mapped: Type, method: str) -> bool:
    """Whether the type converts in this direction (an identity conversion costs each row a
    call for nothing)."""
    return getattr(type(mapped), method) is not getattr(Type, method)


def _relation_target(prop: PropertyMetadata) -> Any:
    """What hydration needs to turn a foreign key into the target entity: (target class,
    its key's attribute, the key's converter or None, `Ref` to wrap it in or None)."""
    if prop.relation is None:
        return None
    from ..entity.reference import Ref

    target = prop.relation.target_meta
    pk_type = target.pk.type
    return (
        target.cls,
        target.pk.name,
        pk_type.to_python if _overrides(pk_type, "to_python") else None,
        Ref if prop.relation.ref else None,
    )


def _direct_key(prop: PropertyMetadata) -> Any:
    """What the core needs to write a relation's foreign key without calling
    `RelationType.to_db` per row, when that call would only read the target's key: (target
    class, its key's attribute, `PendingKey`); None for any other column."""
    mapped = prop.type
    if type(mapped) is not RelationType or mapped.pk_to_db is not None or not mapped.pk_name:
        return None
    return (mapped._target, mapped.pk_name, PendingKey)


def _build_plan(meta: EntityMetadata) -> Any:
    cols = meta.columns
    holder = [meta]
    targets = tuple(_relation_target(p) for p in cols) if meta.relations else None
    keys = tuple(_direct_key(p) for p in cols) if meta.relations else None
    if keys is not None and not any(keys):
        keys = None
    if targets is not None and not any(targets):
        targets = None  # relations on the other side only: no column holds an entity
    recheck = tuple(
        p.type.to_python if p.relation is None and _settled_by_reading(p.type) else None
        for p in cols
    )
    to_python = tuple(
        None if p.relation is not None
        else p.type.to_python if _overrides(p.type, "to_python") else None
        for p in cols
    )
    kinds = tuple(column_kind(p.type) for p in cols)
    decl = declaration_of(meta.cls)
    # the snapshot of an entity only read can be taken from its attributes when they hold
    # it exactly (see orm._diff_py, "taken on write")
    lazy = (
        decl is not None
        and decl.tracked_writes
        and targets is None
        and not meta.has_mutable
        and not meta.presumed
        and not any(recheck)
        # a blob column (kind 4) may hold a bytearray the user changes in place
        and all(
            k != 4 and (c is None or k in (1, 2, 3))
            for c, k in zip(to_python, kinds, strict=True)
        )
    )
    return core.Plan(
        meta.cls,
        tuple(p.name for p in cols),
        meta.pk_index,
        to_python,
        tuple(p.type.to_db if _overrides(p.type, "to_db") else None for p in cols),
        tuple(p.type.compare if p.type.compares else None for p in cols),
        tuple(p.type.python_types or None for p in cols),
        tuple(p.nullable for p in cols),
        meta.has_mutable,
        _invalid_value_reporter(holder),
        kinds,
        targets,
        keys,
        recheck if any(recheck) else None,
        lazy_snapshot=lazy,
    )


def _settled_by_reading(mapped: Type) -> bool:
    """Whether a difference in database form of a column of `mapped` is checked against
    the value the snapshot reads as before it counts as a change: for a custom type that
    converts, whose to_db may not give the same twice (a salt) or not what the driver
    reads back (a str for a float column). This package's own types need not, nor one
    with a `compare()` of its own: it has said when two database values are the same."""
    return (
        type(mapped).__module__.split(".")[0] != "orm"
        and _overrides(mapped, "to_db")
        and not mapped.compares
    )


def _build_entity(
    cls: type, naming: NamingStrategy, platform: Platform | None = None
) -> EntityMetadata:
    decl = declaration_of(cls)
    if decl is None:
        raise MetadataError(
            f"{getattr(cls, '__name__', cls)!r} is not an entity: decorate it with @entity() "
            f"or describe it with EntitySchema.",
            entity=getattr(cls, "__name__", None),
        )
    cls_name = cls.__name__
    if decl.unknown:
        raise MetadataError(
            f"@entity() on {cls_name} got unknown option(s) {', '.join(sorted(decl.unknown))}; "
            f"known: table_name.",
            entity=cls_name,
        )
    props = {name: _build_property(decl, name, naming) for name in decl.properties}
    if platform is not None:
        for p in props.values():
            if p.persist and p.relation is None:
                platform.adapt_property(p)
    primaries = [p for p in props.values() if p.primary]
    if not primaries:
        raise MetadataError(
            f"Entity {cls_name} has no primary key. Declare one, e.g. `id: int = PrimaryKey()`.",
            entity=cls_name,
        )
    if len(primaries) > 1:
        raise MetadataError(
            f"Entity {cls_name} declares several primary keys "
            f"({', '.join(p.name for p in primaries)}); composite keys are not supported.",
            entity=cls_name,
            property=primaries[1].name,
        )
    columns = [p for p in props.values() if p.persist]
    for i, p in enumerate(columns):
        p.column_index = i
    versions = [p for p in columns if p.version]
    pk = primaries[0]
    meta = EntityMetadata(
        cls=cls,
        class_name=cls_name,
        table=decl.table_name or naming.class_to_table_name(cls_name),
        properties=props,
        columns=columns,
        pk=pk,
        pk_index=pk.column_index,
        version=versions[0] if versions else None,
        has_mutable=any(declares_in_place(p.type) for p in columns),
        presumed=tuple(
            p.name for p in columns if p.relation is None and presumed_in_place(p.type)
        ),
        watched=tuple(
            (p.name, p.type.mutable_values) for p in columns if p.type.mutable_values
        ),
        has_hooks=any(p.on_create or p.on_update for p in columns),
        generated_init=bool(cls.__dict__.get("_orm_generated_init", False)),
        hooks=_hooks_of(cls),
    )
    return meta


def _hooks_of(cls: type) -> dict[str, tuple[tuple[Any, bool], ...]]:
    """The lifecycle hooks of an entity class. Only the decorators of `orm.events.hooks`
    mark a method as a hook: while that module is not imported, no class has any, and a
    program without hooks never loads the event machinery."""
    hooks = sys.modules.get("orm.events.hooks")
    return {} if hooks is None else hooks.collect_hooks(cls)  # type: ignore[no-any-return]


def _finish_entity(meta: EntityMetadata, platform: Platform | None = None) -> None:
    """Once relations are resolved (their columns are named then): the column names
    checked and the diff core's plan built."""
    cls_name = meta.class_name
    seen_fields: dict[str, str] = {}
    for p in meta.columns:
        if p.field_name in seen_fields:
            raise MetadataError(
                f"{cls_name}.{p.name} and {cls_name}.{seen_fields[p.field_name]} both map to "
                f"column {p.field_name!r}; give one of them another `field_name`.",
                entity=cls_name,
                property=p.name,
            )
        seen_fields[p.field_name] = p.name
    if platform is not None and platform.max_identifier_length is not None:
        _check_identifier_lengths(meta, platform)
    meta.plan = _build_plan(meta)


_DISPLAY = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


def _check_identifier_lengths(meta: EntityMetadata, platform: Platform) -> None:
    """A table or column name longer than the database's limit would be truncated by the
    server without an error (PostgreSQL: 63 bytes): the schema would then hold a name the
    metadata never reads back, and two long names could become one."""
    limit = platform.max_identifier_length
    assert limit is not None
    names = [(meta.table, None, "table")] + [
        (p.field_name, p.name, "column") for p in meta.columns
    ]
    for name, prop, kind in names:
        size = len(name.encode("utf-8"))
        if size > limit:
            owner = f"{meta.class_name}.{prop}" if prop else meta.class_name
            option = "field_name" if prop else "table_name"
            raise MetadataError(
                f"{owner}: the {kind} name {name!r} is {size} bytes long, more than the "
                f"{limit} bytes {_DISPLAY.get(platform.name, platform.name)} keeps in an identifier (it would truncate "
                f"it); give it a shorter `{option}`.",
                entity=meta.class_name,
                property=prop,
            )


def discover(
    entries: Iterable[Any],
    naming: NamingStrategy,
    base_dir: str | Path | None = None,
    log: bool = False,
    platform: Platform | None = None,
) -> MetadataStorage:
    """Build and validate the metadata of every listed entity (logged in the `discovery`
    debug namespace when `log`), its types fitted to `platform`'s columns."""
    started = time.perf_counter()
    if log:  # `logging` is imported only when the discovery is logged
        import logging

        _log = logging.getLogger("orm.discovery")
        _log.info("[discovery] ORM entity discovery started")
    classes = expand_entries(entries, base_dir)
    metas = []
    tables: dict[str, str] = {}
    for cls in classes:
        if log:
            _log.info("[discovery] - processing entity %s", cls.__name__)
        meta = _build_entity(cls, naming, platform)
        if meta.table in tables:
            raise MetadataError(
                f"Entities {tables[meta.table]} and {meta.class_name} both map to table "
                f"{meta.table!r}; give one of them another table_name.",
                entity=meta.class_name,
            )
        tables[meta.table] = meta.class_name
        metas.append(meta)
    storage = MetadataStorage(metas)
    _resolve_relations(metas, storage, naming, platform)
    if log:
        took = (time.perf_counter() - started) * 1000
        _log.info(
            "[discovery] - entity discovery finished, found %d entities, took %d ms",
            len(metas),
            took,
        )
    return storage
