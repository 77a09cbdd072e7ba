"""The inverse side of a one-to-one relation (`OneToOne(mapped_by=...)`), kept in step in
memory with the owning side.

The foreign key lives in the owning entity's table: the inverse side writes nothing itself.
Assigning either side updates the other (`user.profile = p` sets `p.user = user`, and
`p.user = user` makes `user.profile` p), and the previous partner is unlinked (its owning
relation set to None: the flush writes NULL there). A loaded entity's inverse side is not
known without a query (no row of its own says it): reading it before `populate` is a
ValidationError, as for an uninitialized collection, never a hidden query.

Installed at discovery, once per class: a class attribute explaining the unknown value, and
`__init__` / `__setattr__` wrappers that only act on the two properties concerned.
"""

from __future__ import annotations

from .._markers import DELETED
from .._typing import TYPE_CHECKING
from ..errors import ValidationError, _own_table, _short
from .reference import _unwrap

if TYPE_CHECKING:
    from typing import Any

__all__ = ["install_inverse_one"]

_object_setattr = object.__setattr__
_MISSING = object()


class _InverseOneSlot:
    """Class attribute of an inverse one-to-one: reached only while the instance holds no
    value for it (a loaded entity before populate)."""

    __slots__ = ("name", "target")

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        self.target = target

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        if obj._orm_snap is None:
            return None  # a new entity: no row can point at it yet
        cls = type(obj).__name__
        raise ValidationError(
            f"{cls}.{self.name} is not loaded: the {self.target} on the other side of this "
            f"one-to-one holds the foreign key, so it is only known after a query. Populate it "
            f"(populate=[{self.name!r}] or em.populate(entities, [{self.name!r}])) before "
            f"reading it.",
            entity=obj,
            property=self.name,
        )


def _persist_cascade(inverse: Any, name: str, item: Any) -> None:
    """A new owning entity linked to a managed inverse entity is persisted at once (as a
    new item added to a managed entity's collection), if the inverse side cascades
    persist."""
    uow = inverse._orm_uow
    if uow is not None and item._orm_snap is None and item._orm_uow is not uow:
        prop = uow.em.metadata.get(type(inverse)).properties[name]
        if prop.relation.persist_cascade:
            uow.persist(item, prop.relation.target_meta)


def _linked(owning: Any, mapped_by: str, inverse_name: str, old: Any, new: Any) -> None:
    """`owning.<mapped_by>` went from `old` to `new`: the inverse sides follow."""
    if old is not None and old.__dict__.get(inverse_name) is owning:
        _object_setattr(old, inverse_name, None)
    if new is None:
        return
    previous = _unwrap(new.__dict__.get(inverse_name))
    if previous is not None and previous is not owning:
        if _unwrap(previous.__dict__.get(mapped_by)) is new:
            setattr(previous, mapped_by, None)  # the previous partner is unlinked
    _object_setattr(new, inverse_name, owning)
    _persist_cascade(new, inverse_name, owning)


def _check_partner(
    owning: Any, name: str, value: Any, target: type, back: str | None = None
) -> None:
    """Either side of a one-to-one takes an entity of exactly its target class (or None;
    a sub-entity is stored in its own table): anything else would be refused at flush (or
    never written), but the partners would be unlinked by then, so it is refused here,
    with nothing changed."""
    if value is not None and type(value) is not target:
        raise ValidationError(
            f"Invalid value for {type(owning).__name__}.{name}: expected a "
            f"{target.__name__} entity or None, got {type(value).__name__} "
            f"{_short(value, 60)}{_own_table(target, value)}. Nothing was changed.",
            entity=owning,
            property=name,
        )
    if (
        value is not None and value is not _unwrap(owning.__dict__.get(name))
        # the partner's owning side (`back`) may hold the link an unloaded inverse side
        # does not show yet: not a new one
        and (back is None or _unwrap(value.__dict__.get(back)) is not owning)
    ):
        _check_kept(owning, name, value)
    if value is not None and DELETED in (owning._orm_snap, value._orm_snap):
        gone = owning if owning._orm_snap is DELETED else value
        raise ValidationError(
            f"Cannot link {type(owning).__name__}.{name} to {type(value).__name__} "
            f"{_short(value, 60)}: the row of {type(gone).__name__} {_short(gone, 60)} was "
            f"deleted by a flush. em.persist() it to insert it again as a new row. Nothing "
            f"was changed.",
            entity=owning,
            property=name,
        )


def _check_kept(owning: Any, name: str, value: Any) -> None:
    """A new link between partners, one of them marked for removal: the flush deletes its
    row, so the link could not be written (a foreign key to nothing, or a new partner
    dropped with it by cascade). Refused, as a new link to such an entity through a
    collection or a ManyToOne is."""
    for end in (owning, value):
        uow = end._orm_uow
        if uow is not None and uow.removed and uow.is_removed(end):
            raise ValidationError(
                f"Cannot link {type(owning).__name__}.{name} to {type(value).__name__} "
                f"{_short(value, 60)}: {type(end).__name__} {_short(end, 60)} is marked for "
                f"removal in this EntityManager (em.remove()), so the flush deletes its row "
                f"and the new link could not be written. Call em.persist() on it first to "
                f"keep it. Nothing was changed.",
                entity=owning,
                property=name,
            )


def _owning_setattr(cls: type, ones: dict[str, tuple[str, type]], inner: Any) -> Any:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        side = ones.get(name)
        if side is None or type(self) is not cls:  # a subclass: see _registry
            inner(self, name, value)
            return
        inverse_name, target = side
        _check_partner(self, name, _unwrap(value), target)
        old = _unwrap(self.__dict__.get(name))
        inner(self, name, value)
        new = _unwrap(self.__dict__.get(name))
        if old is not new:
            _linked(self, name, inverse_name, old, new)

    return __setattr__


def _owning_init(cls: type, ones: dict[str, tuple[str, type]], init: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self) is not cls:  # a subclass's `super().__init__()`: see _registry
            return
        for name, (_, target) in ones.items():
            held = _unwrap(self.__dict__.get(name))
            _check_partner(self, name, held, target)
            if held is not None:
                _check_kept(self, name, held)  # (held is this new entity's own value)
        for name, (inverse_name, _) in ones.items():
            new = _unwrap(self.__dict__.get(name))
            if new is not None:
                _linked(self, name, inverse_name, None, new)

    return __init__


def _inverse_setattr(cls: type, sides: dict[str, tuple[str, type]], inner: Any) -> Any:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        side = sides.get(name)
        if side is None or type(self) is not cls:  # a subclass: see _registry
            inner(self, name, value)
            return
        mapped_by, target = side
        value = _unwrap(value)
        _check_partner(self, name, value, target, mapped_by)
        old = _unwrap(self.__dict__.get(name))
        if old is not None and old is not value and _unwrap(old.__dict__.get(mapped_by)) is self:
            setattr(old, mapped_by, None)  # the owning side: NULL written at flush
        if value is not None and _unwrap(value.__dict__.get(mapped_by)) is not self:
            setattr(value, mapped_by, self)  # sets this side too, through _linked
        _object_setattr(self, name, value)  # not a column: nothing to track

    return __setattr__


def _inverse_init(cls: type, sides: dict[str, tuple[str, type]], init: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self) is not cls:  # a subclass's `super().__init__()`: see _registry
            return
        for name in sides:
            value = self.__dict__.get(name)
            if value is not None:
                _object_setattr(self, name, None)
                setattr(self, name, value)

    return __init__


def _registry(cls: type, attr: str, make_setattr: Any, make_init: Any) -> dict[str, Any]:
    """The class's dict of the properties its wrappers handle, the wrappers installed the
    first time (discovery may run again for the same classes). The wrappers act on
    instances of `cls` itself only: a subclass inherits them with the properties, but a
    sub-entity is stored in its own table, so the partner's side (read through `cls`'s
    foreign key) never holds it; its own discovery installs its own wrappers."""
    held = cls.__dict__.get(attr)
    if held is None:
        held = {}
        setattr(cls, attr, held)
        cls.__setattr__ = make_setattr(cls, held, cls.__setattr__)  # type: ignore[assignment]
        cls.__init__ = make_init(cls, held, cls.__init__)  # type: ignore[misc]
    return held


def install_inverse_one(cls: type, name: str, target: type, mapped_by: str) -> None:
    """`cls.<name> = OneToOne(mapped_by=<mapped_by>)` pointing at `target` (whose
    `<mapped_by>` holds the foreign key): install the slot and the wrappers."""
    setattr(cls, name, _InverseOneSlot(name, target.__name__))
    _registry(cls, "_orm_inverse_one_sides", _inverse_setattr, _inverse_init)[name] = (
        mapped_by, target
    )
    _registry(target, "_orm_inverse_ones", _owning_setattr, _owning_init)[mapped_by] = (
        name, cls
    )


def populate_inverse_one(em: Any, meta: Any, entities: list[Any], prop: Any) -> list[Any]:
    """Fill the inverse one-to-one `prop` of stored `entities` with one `where <fk> in
    (...)` query per chunk of keys (None where no row points back). A link made in memory
    and not flushed yet (a new or re-pointed owning entity) is kept, as `populate` keeps a
    collection's; the entities found are returned for the next level."""
    from .loader import CHUNK

    target = prop.relation.target_meta
    mapped_by = prop.relation.mapped_by
    name = prop.name
    pk_name = meta.pk.name
    owners: dict[Any, Any] = {}
    for entity in entities:
        if entity._orm_snap is not None:  # new entities: nothing can point at them yet
            owners.setdefault(getattr(entity, pk_name), entity)
    keys = list(owners)
    found: dict[int, Any] = {}
    chunk = max(1, min(CHUNK, em.connection.max_variables))
    for start in range(0, len(keys), chunk):
        for child in em.find(target.cls, {mapped_by: {"$in": keys[start : start + chunk]}}):
            owner = _unwrap(child.__dict__.get(mapped_by))
            if owner is not None:
                found[id(owner)] = child
    children = []
    for entity in owners.values():
        child = found.get(id(entity))
        held = _unwrap(entity.__dict__.get(name))
        if held is not None and _unwrap(held.__dict__.get(mapped_by)) is entity:
            child = held  # linked in memory: it stays
        _object_setattr(entity, name, child)
        if child is not None:
            children.append(child)
    return children
