"""`@entity()` and `EntitySchema`: turning a class into an entity, once, at class creation.

What happens here is what must be true of the class whatever ORM later uses it: the declared
properties are recorded (types are resolved later, at discovery, where a failure can be
reported well), each property gets a class-level slot that explains unloaded values, and the
class gets a generated keyword `__init__`, a `__repr__` and the dirty-tracking `__setattr__`.
All of it is generated once per class, as `dataclasses` does, so no instance pays for it.
"""

from __future__ import annotations

import keyword
import sys

from .._markers import MISSING, REFERENCE, UNLOADED, is_set
from .._typing import TYPE_CHECKING, TypeVar, dataclass_transform, get_origin, overload
from ..errors import MetadataError, ValidationError
from .options import Property, PropertyOptions

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["entity", "EntitySchema", "EntityDeclaration", "declaration_of"]

if TYPE_CHECKING:
    _T = TypeVar("_T")


class EntityDeclaration:
    """What a class declared: property options by name (declaration order) and the raw
    annotations, plus entity-level options. Stored on the class as `_orm_declaration`."""

    def __init__(
        self,
        cls: type,
        properties: dict[str, PropertyOptions],
        annotations: dict[str, Any],
        table_name: str | None,
        from_schema: bool,
        unknown: dict[str, Any],
    ) -> None:
        self.cls = cls
        self.properties = properties
        self.annotations = annotations
        self.table_name = table_name
        self.from_schema = from_schema
        self.unknown = unknown
        self.module = sys.modules.get(cls.__module__)
        #: set by `entity()`: see `_install`
        self.tracked_writes = False

    @property
    def persisted(self) -> list[str]:
        return [n for n, o in self.properties.items() if o.get("persist", True)]


def declaration_of(cls: Any) -> EntityDeclaration | None:
    """The declaration made by `cls` itself (not inherited from an entity base class)."""
    decl = cls.__dict__.get("_orm_declaration") if isinstance(cls, type) else None
    return decl if isinstance(decl, EntityDeclaration) else None


class _PropertySlot:
    """Class attribute standing for a property. A non-data descriptor: reading an attribute
    that is set on the instance never reaches it (no cost on the hot path); it only explains
    the values that are *not* there: an uninitialized reference, a column left out by a
    partial load, or a property a custom `__init__` did not set."""

    __slots__ = ("name", "index", "default")

    def __init__(self, name: str, index: int, default: Any) -> None:
        self.name = name
        self.index = index
        self.default = default

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        snap = obj._orm_snap
        cls_name = type(obj).__name__
        if snap is REFERENCE:
            raise ValidationError(
                f"{cls_name}.{self.name} cannot be read: this {cls_name} is an uninitialized "
                f"reference (only its primary key is known). Call wrap(entity).init() or load "
                f"it with em.find_one()/populate before reading its properties.",
                entity=obj,
                property=self.name,
            )
        if (
            isinstance(snap, tuple)
            and 0 <= self.index < len(snap)
            and snap[self.index] is UNLOADED
        ):
            raise ValidationError(
                f"{cls_name}.{self.name} was not loaded: the query that loaded this entity "
                f"selected other fields. Use em.refresh(entity) or query without fields=.",
                entity=obj,
                property=self.name,
            )
        if self.default is not MISSING:
            return self.default
        raise AttributeError(f"{cls_name!r} object has no attribute {self.name!r}")


def annotation_namespace(cls: type) -> dict[str, Any]:
    """Names a string annotation of `cls` may use: the module's, which win over the class's
    own (as in `typing.get_type_hints`: a property called `uuid` must not hide the module)."""
    namespace = {
        k: v for k, v in vars(cls).items() if not isinstance(v, (_PropertySlot, PropertyOptions))
    }
    module = sys.modules.get(cls.__module__)
    if module is not None:
        namespace.update(vars(module))
    namespace.setdefault(cls.__name__, cls)
    return namespace


def _resolve_annotation(cls: type, raw: Any) -> Any:
    """Best effort at class-creation time; MISSING when it cannot be resolved yet (discovery
    will try again and report)."""
    if not isinstance(raw, str):
        return raw
    try:
        return eval(raw, annotation_namespace(cls))  # noqa: S307 - annotations are code
    except Exception:
        return MISSING


def _is_classvar(raw: Any) -> bool:
    if isinstance(raw, str):
        return raw.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))
    typing = sys.modules.get("typing")  # a ClassVar exists only once typing is imported
    return typing is not None and (raw is typing.ClassVar or get_origin(raw) is typing.ClassVar)


def _collect(cls: type) -> tuple[dict[str, PropertyOptions], dict[str, Any]]:
    """Properties of `cls` and its bases, base first (as dataclasses orders fields)."""
    props: dict[str, PropertyOptions] = {}
    annotations: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        if base is object:
            continue
        decl = declaration_of(base)
        if decl is not None and base is not cls:
            props.update(decl.properties)
            annotations.update(decl.annotations)
            continue
        own = base.__dict__.get("__annotations__", {})
        for name, value in base.__dict__.items():
            if isinstance(value, PropertyOptions) and name not in own:
                props[name] = value  # declared without an annotation: its `type=` decides
                annotations[name] = None
        for name, raw in own.items():
            if name.startswith("_") or _is_classvar(raw):
                continue
            value = base.__dict__.get(name, MISSING)
            if isinstance(value, PropertyOptions):
                opts = value
            elif value is MISSING:
                opts = Property()
            else:
                opts = Property(default=value)
            props[name] = opts
            annotations[name] = raw
    return props, annotations


def _is_optional(cls: type, raw: Any) -> bool:
    resolved = _resolve_annotation(cls, raw)
    if resolved is MISSING:
        return isinstance(raw, str) and ("None" in raw or raw.startswith("Optional["))
    from ..types import unwrap_optional

    return unwrap_optional(resolved)[1]


def _is_int_annotation(cls: type, raw: Any, opts: PropertyOptions) -> bool:
    type_opt = opts.get("type")
    if type_opt is not None:
        from ..types import IntegerType, resolve_type

        try:
            return isinstance(resolve_type(type_opt), IntegerType)
        except LookupError:
            return False
    resolved = _resolve_annotation(cls, raw)
    if resolved is MISSING:
        return raw == "int"
    from ..types import unwrap_optional

    return unwrap_optional(resolved)[0] is int


def is_generated_pk(cls: type, raw: Any, opts: PropertyOptions) -> bool:
    """An integer primary key without a default is filled by the database."""
    if not opts.get("primary"):
        return False
    auto = opts.get("autoincrement")
    if auto is not None:
        return bool(auto)
    return not opts.has_default and _is_int_annotation(cls, raw, opts)


def _init_source(
    cls: type, props: dict[str, PropertyOptions], annotations: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Source of the generated `__init__` and the names it closes over.

    The body evaluates each value (argument, default or factory) and hands them all to
    `core.init_entity`, which sets them in one C loop, bypassing the dirty-tracking
    `__setattr__` (a new entity is not tracked yet).
    """
    from .._backend import core

    params: list[str] = []
    values: list[str] = []
    env: dict[str, Any] = {
        "_init": core.init_entity,
        "_NAMES": tuple(props),
        "_M": MISSING,
    }
    refs = ref_properties(cls, props, annotations)
    if refs:
        env["_ref"] = _wrap_ref
    for name, opts in props.items():
        default = opts.get("default", MISSING)
        factory = opts.get("default_factory")
        raw = annotations.get(name)
        if name in refs:
            params.append(f"{name}=None" if _relation_optional(cls, raw, opts) else name)
            values.append(f"_ref({name})")
            continue
        if opts.get("relation") in _COLLECTIONS:
            # once per class, not per entity
            from ..entity.collection import UNSTORED, Collection, constructed
            from ..entity.reference import Ref

            # the core makes the common collections (none given; a list or tuple of targets
            # for an owning many-to-many) in one call, `constructed` the others
            env.update(_coll=core.new_collection, _Coll=Collection, _Ref=Ref,
                       _UNSTORED=UNSTORED, _slow=constructed)
            params.append(f"{name}=None")
            values.append(f"_coll(_Coll, self, {name!r}, {name}, _Ref, _UNSTORED, _slow)")
            continue
        if opts.get("relation"):
            params.append(f"{name}=None" if _relation_optional(cls, raw, opts) else name)
            values.append(name)
            continue
        if factory is not None:
            env[f"_f_{name}"] = factory
            params.append(f"{name}=_M")
            values.append(f"_f_{name}() if {name} is _M else {name}")
        elif default is not MISSING:
            env[f"_d_{name}"] = default
            params.append(f"{name}=_M")
            if isinstance(default, (list, dict, set, bytearray)):
                import copy  # only for a mutable default: `import orm` does not need it

                env["_copy"] = copy.deepcopy
                value = f"_copy(_d_{name})"
            else:
                value = f"_d_{name}"
            values.append(f"{value} if {name} is _M else {name}")
        elif (
            is_generated_pk(cls, raw, opts)
            or opts.get("version")
            or opts.get("nullable")
            or opts.get("on_create") is not None
            or (raw is not None and _is_optional(cls, raw))
        ):
            params.append(f"{name}=None")
            values.append(name)
        else:
            params.append(name)
            values.append(name)
    signature = ", ".join(["self", "*", *params]) if params else "self"
    if values:
        body = f"    _init(self, _NAMES, ({', '.join(values)},))"
    else:
        body = "    pass"
    return f"def __init__({signature}):\n{body}", env


#: the relation kinds a `Collection` holds: one-to-many and many-to-many
_COLLECTIONS = ("1:m", "m:n")


class _CollectionSlot:
    """Class attribute of a collection property. A loaded entity gets its (uninitialized)
    collection on first access, so hydration pays nothing for the inverse sides."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        # the class is cached: an import statement here, run per access, cost more than
        # making the collection
        collection = (_collection or _collection_class())(obj, self.name, initialized=False)
        obj.__dict__[self.name] = collection
        return collection


#: orm.entity.collection.Collection once first needed (that module imports this one's users)
_collection: Any = None


def _collection_class() -> Any:
    global _collection
    if _collection is None:
        from ..entity.collection import Collection

        _collection = Collection
    return _collection


def _relation_optional(cls: type, raw: Any, opts: PropertyOptions) -> bool:
    nullable = opts.get("nullable")
    if nullable is not None:
        return bool(nullable)
    return raw is not None and _is_optional(cls, raw)


def ref_properties(
    cls: type, props: dict[str, PropertyOptions], annotations: dict[str, Any]
) -> frozenset[str]:
    """The relation properties that hold a `Ref`: `ref=True`, or annotated `Ref[...]`
    (read from the text when the annotation cannot be resolved yet)."""
    from ..entity.reference import Ref

    out = set()
    for name, opts in props.items():
        if not opts.get("relation"):
            continue
        if opts.get("ref"):
            out.add(name)
            continue
        raw = annotations.get(name)
        if isinstance(raw, str):
            if "Ref[" in raw.replace(" ", ""):
                out.add(name)
            continue
        if raw is None:
            continue
        from ..types import unwrap_optional

        inner = unwrap_optional(raw)[0]
        if inner is Ref or get_origin(inner) is Ref:
            out.add(name)
    return frozenset(out)


def _wrap_ref(value: Any) -> Any:
    """An entity given for a `Ref` property is held wrapped (None and refs as they are)."""
    from ..entity.reference import Ref

    if value is None or type(value) is Ref:
        return value
    if getattr(type(value), "_orm_declaration", None) is None:
        return value  # not an entity: refused with the property's message at flush
    return Ref(value)


def _ref_setattr(names: frozenset[str], inner: Callable[[Any, str, Any], None]):
    """`__setattr__` of a class with `Ref` properties: an entity assigned to one is
    wrapped, then the write is tracked as any other."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name in names:
            value = _wrap_ref(value)
        inner(self, name, value)

    __setattr__._orm_refs = True  # type: ignore[attr-defined]
    return __setattr__


def _make_init(cls: type, props: dict[str, PropertyOptions], annotations: dict[str, Any]):
    source, env = _init_source(cls, props, annotations)
    exec(source, env)  # noqa: S102 - generated once per class, like dataclasses
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = f"Create a new {cls.__name__}; keyword arguments only."
    return init


_ORM_STATE = ("_orm_uow", "_orm_snap")
_NO_OPTIONS: dict[str, Any] = {}


def _entity_getstate(self: Any) -> dict[str, Any]:
    """What `copy.copy`, `copy.deepcopy` and `pickle` carry: the entity's values, never its
    place in a Unit of Work. A copy of a managed entity is a detached entity: were it to
    share the original's Unit of Work and snapshot, its writes would be flushed to the
    original's row behind the identity map's back."""
    state = dict(vars(self))
    for name in _ORM_STATE:
        state.pop(name, None)
    return state


def _entity_setstate(self: Any, state: dict[str, Any]) -> None:
    """A collection of another owner is `copy.copy`'s: the copy gets its own (see
    `_own_copy`). Sharing the original's would write the copy's changes as the original's
    pairs (its owner is the original) and none as the copy's. `copy.deepcopy` and pickle
    hand over collections already owned by this copy."""
    from .._backend import core

    core.init_entity(self, (), ())  # the ORM's own attributes first (see init_entity)
    props = type(self)._orm_declaration.properties
    for name, value in state.items():
        options = props.get(name, _NO_OPTIONS)
        if options.get("relation") in _COLLECTIONS and getattr(value, "owner", self) is not self:
            value = _own_copy(value, self, owning=options.get("relation") == "m:n" and not
                              options.get("mapped_by"))
        object.__setattr__(self, name, value)


def _own_copy(collection: Any, owner: Any, owning: bool) -> Any:
    """The collection `owner`, a shallow copy, gets for the original's `collection`, made
    as pickle makes one. The owning side of a many-to-many holds the same items: the copy
    owns its pairs. Initialized, it records no changes: what the original's recorded says
    nothing of the copy's pairs, nor of the items' inverse sides, which list the original
    only; inserted, the copy writes all its items as pairs and joins those inverse sides
    (see commit_order._pair_inverse_sides). An inverse side holds what points at the copy,
    which is nothing yet: the items' owning sides point at the original, and listing them
    would let a change through the copy's side rewrite the original's rows (removing a post
    from the copy's `posts` would set its writer to None). Either is initialized when the
    original's is."""
    state = collection.__getstate__()
    if state[2] is not None:
        state = (state[0], state[1], state[2] if owning else [], False, None)
    copied = type(collection).__new__(type(collection))
    copied.__setstate__((owner, *state[1:]))
    return copied


class _Shown(str):
    def __repr__(self) -> str:
        return str(self)


def _entity_repr(self: Any) -> str:
    decl = type(self)._orm_declaration
    cls_name = type(self).__name__
    parts = []
    for name, opts in decl.properties.items():
        if opts.get("hidden") or not is_set(self, name):
            continue
        value = getattr(self, name)
        if opts.get("relation") == "m:n" and value._items is not None:
            # items by key only: their own collections hold this entity (a cycle)
            from ..entity.reference import pk_name_of

            value = _Shown("[" + ", ".join(
                f"<{type(i).__name__} {getattr(i, pk_name_of(type(i)), None)!r}>"
                for i in value._items.values()
            ) + "]")
        elif opts.get("relation") and getattr(type(value), "_orm_declaration", None):
            # the target by its key only: a full repr would recurse through cycles
            from ..entity.reference import pk_name_of

            key = getattr(value, pk_name_of(type(value)), None)
            value = _Shown(f"<{type(value).__name__} {key!r}>")
        parts.append(f"{name}={value!r}")
    if self._orm_snap is REFERENCE:
        parts.append("<not initialized>")
    return f"{cls_name}({', '.join(parts)})"


def _install(
    cls: type,
    props: dict[str, PropertyOptions],
    annotations: dict[str, Any],
    table_name: str | None,
    from_schema: bool,
    unknown: dict[str, Any],
) -> type:
    from .._backend import core

    for name in props:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise MetadataError(
                f"{cls.__name__}: property name {name!r} is not a valid Python identifier; "
                f"name the property otherwise and map the column with field_name=...",
                entity=cls.__name__,
                property=str(name),
            )
    decl = EntityDeclaration(cls, props, annotations, table_name, from_schema, unknown)
    persisted = decl.persisted
    for name, opts in props.items():
        index = persisted.index(name) if name in persisted else -1
        default = opts.get("default", MISSING)
        if isinstance(default, (list, dict, set)):
            default = MISSING  # a shared mutable default would leak between instances
        if opts.get("relation") in _COLLECTIONS:
            setattr(cls, name, _CollectionSlot(name))
            continue
        setattr(cls, name, _PropertySlot(name, index, default))
    cls._orm_declaration = decl
    cls._orm_uow = None
    cls._orm_snap = None
    generated = "__init__" not in cls.__dict__
    if generated:
        cls.__init__ = _make_init(cls, props, annotations)
    elif not getattr(cls.__dict__["__init__"], "_orm_wrapped", False):
        cls.__init__ = _prepare_then(cls.__dict__["__init__"])
    cls._orm_generated_init = generated
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = _entity_repr
    if "__getstate__" not in cls.__dict__ and "__setstate__" not in cls.__dict__:
        cls.__getstate__ = _entity_getstate
        cls.__setstate__ = _entity_setstate
    if "__setattr__" not in cls.__dict__ and cls.__setattr__ is object.__setattr__:
        cls.__setattr__ = core.tracked_setattr
    elif "__setattr__" in cls.__dict__:
        cls.__setattr__ = _chain_setattr(cls.__dict__["__setattr__"])
    if "__delattr__" not in cls.__dict__ and cls.__delattr__ is object.__delattr__:
        cls.__delattr__ = core.tracked_delattr
    # every write goes through the ORM's own `__setattr__` and `__delattr__` first (not a
    # user's, which may write before the ORM sees it): a loaded entity's snapshot may wait
    # for the first write
    decl.tracked_writes = (
        cls.__setattr__ is core.tracked_setattr and cls.__delattr__ is core.tracked_delattr
    )
    refs = ref_properties(cls, props, annotations)
    if refs and not getattr(cls.__setattr__, "_orm_refs", False):
        cls.__setattr__ = _ref_setattr(refs, cls.__setattr__)
    _share_attribute_names(cls, (*props, "_orm_snap", "_orm_uow"))
    return cls


def _share_attribute_names(cls: type, names: tuple[str, ...]) -> None:
    """Enter every attribute name an entity of `cls` can hold into the key table its instances
    share, once, by setting them all on a throwaway instance.

    CPython keeps an instance's attributes in a compact values array (80 bytes for 5
    properties and the ORM's two) only while their names are in that table, and the table
    stops taking new names after the first few dozen instances. Left to the instances, the
    first ones would decide: had they been references (primary key only) or partial loads,
    every complete entity loaded afterwards would carry its own dict instead (measured: 192
    bytes more per entity of a 5-column table). Names set here never reach user code: each
    property is a `_PropertySlot` (not a data descriptor) and the other two are class values.
    Skipped for a class whose instances cannot be made this way or that has a `__del__` (it
    would run on the throwaway instance).
    """
    if getattr(cls, "__del__", None) is not None:
        return
    try:
        probe = object.__new__(cls)
        for name in names:
            object.__setattr__(probe, name, None)
    except (TypeError, AttributeError):
        return  # e.g. `__slots__` without `__dict__`: nothing shared to prepare


def _prepare_then(user_init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a user's own `__init__` so the ORM's attributes exist before the user's (see
    `core.init_entity` for why the order of first assignment matters)."""
    import functools  # for the classes with an `__init__` of their own: not at `import orm`

    from .._backend import core

    @functools.wraps(user_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        core.init_entity(self, (), ())
        user_init(self, *args, **kwargs)

    __init__._orm_wrapped = True  # type: ignore[attr-defined]
    return __init__


def _chain_setattr(user_setattr: Callable[[Any, str, Any], None]):
    """Keep a user's own `__setattr__` and still record the write for change detection."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        user_setattr(self, name, value)
        uow = self._orm_uow
        if uow is not None:
            uow.dirty[id(self)] = self

    __setattr__._orm_chained = True  # type: ignore[attr-defined]
    return __setattr__


@overload
def entity(cls: type[_T], /) -> type[_T]: ...


@overload
def entity(
    cls: None = None,
    *,
    table_name: str | None = None,
    table: str | None = None,
    **unknown: Any,
) -> Callable[[type[_T]], type[_T]]: ...


# PEP 681: type checkers see the keyword `__init__` generated here. Only `Property` is a field
# specifier: checkers take a field as optional only when its specifier call passes `default=`
# or `default_factory=`, so `id: int = PrimaryKey()` (generated by the database, hence optional)
# must read as a plain default. `eq_default=False`: entities keep identity equality and hashing.
@dataclass_transform(eq_default=False, kw_only_default=True, field_specifiers=(Property,))
def entity(
    cls: type | None = None,
    *,
    table_name: str | None = None,
    table: str | None = None,
    **unknown: Any,
) -> Any:
    """Class decorator declaring an entity: `@entity()` (or `@entity(table_name="users")`)."""

    def decorate(target: type) -> type:
        if not isinstance(target, type):
            raise TypeError(f"@entity() decorates classes, not {target!r}")
        props, annotations = _collect(target)
        return _install(target, props, annotations, table_name or table, False, unknown)

    if cls is not None:
        return decorate(cls)
    return decorate


class EntitySchema:
    """An entity defined without decorators, for a plain class or none at all:
    `EntitySchema(name="Book", class_=Book, properties={"id": PrimaryKey(type=int), ...})`."""

    def __init__(
        self,
        name: str,
        properties: dict[str, Any],
        class_: type | None = None,
        table_name: str | None = None,
        **unknown: Any,
    ) -> None:
        self.name = name
        cls = class_ if class_ is not None else type(name, (), {"__module__": __name__})
        props: dict[str, PropertyOptions] = {}
        for prop_name, opts in properties.items():
            if not isinstance(opts, PropertyOptions):
                opts = Property(type=opts)
            props[prop_name] = opts
        annotations = {n: None for n in props}
        self.class_ = _install(cls, props, annotations, table_name, True, unknown)

    def __repr__(self) -> str:
        return f"EntitySchema(name={self.name!r})"
