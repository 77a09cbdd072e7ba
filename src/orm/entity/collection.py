"""`Collection[T]`: the inverse side of a one-to-many relation (`OneToMany(mapped_by=...)`)
and either side of a many-to-many (`ManyToMany()`).

One-to-many: the foreign key lives in the target's table, so a collection writes nothing
itself: adding or removing an item sets the item's owning `ManyToOne`, and the flush writes
that column.

Many-to-many: the owning side's collection is what the flush writes to the pivot table. It
keeps the changes since it was loaded or last flushed (`_delta`: item -> added or removed),
the difference between that stored state and its items, so a flush writes exactly the
changed pairs, and registers itself with its Unit of Work when it first changes (a flush
never scans collections). A change made through the inverse side is applied to the owning
collection too (initialized or not: an uninitialized one keeps only the change).

A loaded entity's collection is uninitialized until `populate` or `load()` fills it;
reading or changing its items before then is a ValidationError, never a hidden query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .._backend import core
from .._markers import DELETED
from .._typing import TYPE_CHECKING, Generic, TypeVar, overload
from ..errors import ValidationError, _own_table, _short
from .reference import Ref, _unwrap

if TYPE_CHECKING:
    from typing import Any

T = TypeVar("T")
_new = object.__new__

__all__ = ["Collection", "UNSTORED", "constructed"]


class _Unstored:
    """`Collection._delta` of a many-to-many owning side filled by its owner's constructor:
    nothing is stored for the owner yet, so its pairs to write are exactly its items. One
    marker instead of a change record per item (a new graph's collections cost one pass)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSTORED"

    def __reduce__(self) -> str:
        """The one marker, also through pickle and copy: the flush tells it by identity,
        and a second instance would read as a change record."""
        return "UNSTORED"


UNSTORED: Any = _Unstored()


def _sides(owner: Any, prop: str) -> tuple[bool, str | None] | None:
    """(owning side?, the other side's property) of a many-to-many collection, None for a
    one-to-many (or before discovery)."""
    sides = getattr(type(owner), "_orm_many_to_many", None)
    return None if sides is None else sides.get(prop)


class Collection(Generic[T]):
    __slots__ = ("owner", "prop", "_items", "_dirty", "_delta")

    def __init__(self, owner: Any, prop: str, items: Iterable[T] | None = None,
                 initialized: bool = True) -> None:
        self.owner = owner
        self.prop = prop
        #: insertion-ordered set (dict) of the items, None while uninitialized
        self._items: dict[int, T] | None = {} if initialized else None
        self._dirty = False
        #: many-to-many owning side: the changes not yet written, id(item) -> (item, added)
        self._delta: dict[int, tuple[Any, bool]] | None = None
        if items is not None:
            for item in items:
                self.add(item)
            self._dirty = False

    # -- copies ----------------------------------------------------------------------------
    def __getstate__(self) -> tuple[Any, ...]:
        """Items and changes as lists: their dicts are keyed by `id()`, which a copy (pickle,
        `copy.deepcopy`) does not keep, so `remove` or `contains` would not find them."""
        items, delta = self._items, self._delta
        return (
            self.owner,
            self.prop,
            None if items is None else list(items.values()),
            self._dirty,
            list(delta.values()) if delta and delta is not UNSTORED else delta,
        )

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        if len(state) == 2:  # pickled before __getstate__ existed: (None, slot values)
            slots = state[1]
            items, delta = slots.get("_items"), slots.get("_delta")
            state = (
                slots["owner"], slots["prop"], None if items is None else list(items.values()),
                slots.get("_dirty", False),
                list(delta.values()) if type(delta) is dict else delta,
            )
        self.owner, self.prop, items, self._dirty, delta = state
        self._items = None if items is None else {id(i): i for i in items}
        if type(delta) is list:
            delta = {id(change[0]): change for change in delta}
        self._delta = delta

    # -- metadata --------------------------------------------------------------------------
    def _mapped_by(self) -> str:
        """The item's ManyToOne pointing back (a one-to-many). A many-to-many reaches here
        only before discovery, when neither side is known yet."""
        options = type(self.owner)._orm_declaration.properties[self.prop]
        if options.get("relation") == "m:n":
            cls = type(self.owner).__name__
            raise ValidationError(
                f"{cls}.{self.prop} is a ManyToMany, whose two sides are known once ORM.init() "
                f"has discovered the entities: create {cls} entities with their {self.prop} "
                f"after ORM.init().",
                entity=self.owner,
                property=self.prop,
            )
        return options.get("mapped_by")

    def _target(self) -> type | None:
        """The class the collection holds once discovery ran (None before: not checked)."""
        targets = getattr(type(self.owner), "_orm_collection_targets", None)
        return None if targets is None else targets.get(self.prop)

    def _require(self) -> dict[int, T]:
        items = self._items
        if items is None:
            cls = type(self.owner).__name__
            raise ValidationError(
                f"{cls}.{self.prop} is not initialized: populate it "
                f"(populate=[{self.prop!r}] or em.populate(entities, [{self.prop!r}])) or call "
                f"{cls.lower()}.{self.prop}.load() before reading or changing its items.",
                entity=self.owner,
                property=self.prop,
            )
        return items

    def _check(self, item: Any) -> Any:
        """The item (a Ref unwrapped) if it is an entity of exactly the target class (an
        entity of a sub-entity class is stored in its own table), else ValidationError."""
        item = _unwrap(item)
        target = self._target()
        if target is not None and type(item) is not target:
            cls = type(self.owner).__name__
            raise ValidationError(
                f"{cls}.{self.prop} holds {target.__name__} entities, got "
                f"{type(item).__name__} ({_short(item, 80)}){_own_table(target, item)}.",
                entity=self.owner,
                property=self.prop,
            )
        return item

    # -- state -----------------------------------------------------------------------------
    def is_initialized(self) -> bool:
        return self._items is not None

    def is_dirty(self) -> bool:
        return self._dirty

    def _fill(self, items: Iterable[T]) -> None:
        """Loaded state from the database: initialized, clean. A many-to-many owning side's
        unwritten changes stay: applied to what was read (and dropped where the database
        already agrees)."""
        if self._delta is UNSTORED:
            self._delta = self._added()
        self._items = {id(i): i for i in items}
        delta = self._delta
        if delta:
            mine = self._items
            for key, (item, added) in list(delta.items()):
                if added == (key in mine):
                    del delta[key]  # stored already
                elif added:
                    mine[key] = item
                else:
                    del mine[key]
            if delta:
                return
        self._dirty = False

    @classmethod
    def _loaded(cls, owner: Any, prop: str, items: dict[int, Any]) -> Collection[Any]:
        """A loaded owner's collection as populate makes it: initialized with `items` (id ->
        item, taken as its storage, not copied) and clean, without going through
        `__init__` or the owner's class attribute. The compiled core does the same itself
        (orm._diff.fill_collections) while `__slots__` is what it expects."""
        self = _new(cls)
        self.owner = owner
        self.prop = prop
        self._items = items
        self._dirty = False
        self._delta = None
        return self

    # -- many-to-many ----------------------------------------------------------------------
    def _added(self) -> dict[int, tuple[Any, bool]]:
        """An UNSTORED delta spelt out: every item added."""
        return {key: (item, True) for key, item in (self._items or {}).items()}

    def _changes(self) -> list[tuple[Any, bool]]:
        """The unwritten changes of an owning side, (item, added) pairs."""
        delta = self._delta
        if delta is UNSTORED:
            return [(item, True) for item in (self._items or {}).values()]
        return list(delta.values()) if delta else []

    def _record(self, item: Any, added: bool) -> None:
        """A pair to write (owning side): cancels an opposite unwritten change. Nothing to
        note while UNSTORED: the items (already changed) are the pairs to write."""
        delta = self._delta
        if delta is None:
            delta = self._delta = {}
        if delta is not UNSTORED:
            prior = delta.get(id(item))
            if prior is None:
                delta[id(item)] = (item, added)
            elif prior[1] is not added:
                del delta[id(item)]  # back to the stored state
        self._dirty = True
        uow = self.owner._orm_uow
        if uow is not None:
            uow.collections[id(self)] = self

    def _pair(self, item: Any, added: bool) -> None:
        """The other side changed (`item` added to or removed from its collection): this
        side follows, in its items if initialized, in its delta if it is the owning one."""
        items = self._items
        if items is not None:
            if added == (id(item) in items):
                return
            if added:
                items[id(item)] = item
            else:
                del items[id(item)]
            self._dirty = True
        owning, other = _sides(self.owner, self.prop)  # type: ignore[misc]
        if owning:
            self._record(item, added)
        elif added and other is not None:
            _enroll(self, item, other)

    def _other(self, item: Any, other: str | None) -> Collection[Any] | None:
        if other is None:
            return None
        held = item.__dict__.get(other)
        return held if held is not None else getattr(item, other)

    def _change(self, item: Any, added: bool, sides: tuple[bool, str | None]) -> None:
        mine = self._items
        assert mine is not None
        if added:
            mine[id(item)] = item
        else:
            del mine[id(item)]
        self._dirty = True
        for uow in (item._orm_uow, self.owner._orm_uow):
            if uow is not None and uow.links_removed:  # a link noted at a removal is gone
                uow.forget_links_removed(self.owner, self.prop, item)
                if sides[1] is not None:  # the same pair, seen from the item's side
                    uow.forget_links_removed(item, sides[1], self.owner)
        owning, other = sides
        if owning:
            self._record(item, added)
        back = self._other(item, other)
        if back is not None:
            back._pair(self.owner, added)

    def _joinable(self, items: Iterable[Any], mine: dict[int, Any]) -> list[Any]:
        """The items, each checked (class, EntityManager, removal) before any of them
        changes anything: a refused `add` or `set` leaves the collection as it was."""
        checked = [self._check(raw) for raw in items]
        owner = self.owner
        if owner._orm_snap is DELETED and checked:
            raise ValidationError(
                f"Cannot change {type(owner).__name__}.{self.prop} of {_short(owner, 60)}: its "
                f"row was deleted by a flush. em.persist() it to insert it again first.",
                entity=owner,
                property=self.prop,
            )
        uow = owner._orm_uow
        joining = []
        for item in checked:
            if id(item) not in mine:
                self._check_manager(item)
                joining.append(item)
        if joining and uow is not None and uow.removed:
            _refuse_removed_owner(owner, self.prop)
            _check_new_items(owner, joining)  # one look through what they bring along
        return checked

    def _check_manager(self, item: Any) -> None:
        """An item managed by (or new in) another EntityManager cannot be paired with an
        entity of this one: its key and state belong to that one. Nor can one this
        EntityManager is about to delete: the flush would drop the new link with the row,
        so adding it after `em.remove()` is refused rather than lost (the last call wins:
        removing an item after adding it deletes it, links included)."""
        uow, theirs = self.owner._orm_uow, item._orm_uow
        if theirs is None and item._orm_snap is DELETED:
            name = type(item).__name__
            raise ValidationError(
                f"Cannot add {name} {_short(item, 60)} to {type(self.owner).__name__}.{self.prop}: "
                f"its row was deleted by a flush. em.persist() it to insert it again as a "
                f"new row, or add another {name}.",
                entity=self.owner,
                property=self.prop,
            )
        if uow is not None and theirs is uow and uow.is_removed(item):
            name = type(item).__name__
            raise ValidationError(
                f"Cannot add {name} {_short(item, 60)} to {type(self.owner).__name__}.{self.prop}: "
                f"it is marked for removal in this EntityManager (em.remove()). Call "
                f"em.persist() on it first to keep it, or leave it out.",
                entity=self.owner,
                property=self.prop,
            )
        if uow is not None and theirs is not None and theirs is not uow:
            cls = type(self.owner).__name__
            state = "new in" if item._orm_snap is None else "managed by"
            raise ValidationError(
                f"Cannot add {type(item).__name__} {_short(item, 60)} to {cls}.{self.prop}: it is "
                f"{state} another EntityManager (id {theirs.em.id}). Load it in this one "
                f"(em.find_one / em.get_reference) and add that instance.",
                entity=self.owner,
                property=self.prop,
            )

    def _link(self, item: Any) -> None:
        """The inverse bookkeeping of `item.<mapped_by> = owner`: no write to the item."""
        if self._items is not None and id(item) not in self._items:
            self._items[id(item)] = item
            self._dirty = True

    def _unlink(self, item: Any) -> None:
        if self._items is not None and self._items.pop(id(item), None) is not None:
            self._dirty = True

    def _forget(self, keys: set[int]) -> None:
        """Take out the items whose `id()` is in `keys` (made by a failed flush's handlers,
        which make them again on the retry) as if never added: no pair left to write."""
        items = self._items
        if items:
            for key in [k for k in items if k in keys]:
                del items[key]
        delta = self._delta
        if delta and delta is not UNSTORED:
            for key in [k for k in delta if k in keys]:
                del delta[key]

    def _fill_new(self, items: Iterable[Any]) -> None:
        """The items given to the constructor of the owner, a new entity that no
        EntityManager holds yet (nothing to cascade to, no stored pairs): each item's type
        checked once, all before anything changes; an owning side's delta is UNSTORED, and
        an inverse side's items get the owner on their owning side, as `add` does. Clean,
        like a collection loaded with these items."""
        owner = self.owner
        cls = type(owner)
        sides = getattr(cls, "_orm_many_to_many", None)
        targets = getattr(cls, "_orm_collection_targets", None)
        side = None if sides is None else sides.get(self.prop)
        target = None if targets is None else targets.get(self.prop)
        if side is None or target is None or owner._orm_uow is not None or self._items:
            for item in items:
                self.add(item)
            self._dirty = False
            return
        fresh, wrong = core.checked_items(items, target, Ref)
        if wrong is not None:
            self._check(wrong)  # raises, naming the property
        if not fresh:
            return
        self._items = fresh
        owning, other = side
        if owning:
            self._delta = UNSTORED
        if other is not None:
            for item in fresh.values():
                back = self._other(item, other)
                if back is not None:
                    back._pair(owner, True)

    # -- changes ---------------------------------------------------------------------------
    def add(self, *items: T) -> None:
        """Add items and point each one's owning relation at the owner (moving it out of
        its previous owner's initialized collection); for a many-to-many, the item's side
        gets the owner too."""
        mine = self._require()
        checked = self._joinable(items, mine)  # all of them, before any change
        sides = _sides(self.owner, self.prop)
        if sides is not None:
            for item in checked:
                if id(item) in mine:
                    continue
                _cascade(self.owner, self.prop, item)  # first: a persisted item's side
                self._change(item, True, sides)  # registers its change with the flush
            return
        mapped_by = self._mapped_by()
        for item in checked:
            if id(item) in mine:
                continue
            setattr(item, mapped_by, self.owner)  # moves it between collections too
            self._link(item)  # (the owner's __init__ may not have stored this collection yet)
            _cascade(self.owner, self.prop, item)

    def remove(self, *items: T) -> None:
        """Remove items; each one's owning relation is set to None (the flush writes NULL,
        or refuses a NOT NULL column)."""
        mine = self._require()
        checked = [self._check(raw) for raw in items]  # all of them, before any change
        sides = _sides(self.owner, self.prop)
        if sides is not None:
            for item in checked:
                if id(item) in mine:
                    self._change(item, False, sides)
            return
        mapped_by = self._mapped_by()
        for item in checked:
            if id(item) not in mine:
                continue
            if _unwrap(item.__dict__.get(mapped_by)) is self.owner:
                setattr(item, mapped_by, None)
            else:  # it points at another owner: only this list was out of step
                self._unlink(item)

    def remove_all(self) -> None:
        self.remove(*list(self._require().values()))

    def set(self, items: Iterable[T]) -> None:
        wanted = self._joinable(_iterable(self.owner, self.prop, items), self._require())
        keep = {id(i) for i in wanted}
        self.remove(*[i for i in list(self._require().values()) if id(i) not in keep])
        self.add(*wanted)

    # -- reading ---------------------------------------------------------------------------
    def get_items(self) -> list[T]:
        return list(self._require().values())

    def contains(self, item: Any) -> bool:
        return id(_unwrap(item)) in self._require()

    def count(self) -> int:
        return len(self._require())

    def __len__(self) -> int:
        return len(self._require())

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._require().values()))

    def __contains__(self, item: Any) -> bool:
        return self.contains(item)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        """The items in the order they joined, as a list indexes them (`article.tags[0]`,
        `[-1]`, slices give a list); read-only: changes go through add / remove / set."""
        return list(self._require().values())[index]

    def __bool__(self) -> bool:
        """Whether it holds any item, as a list is (`if article.tags:`); an uninitialized
        collection raises, as `len()` does, rather than guess."""
        return bool(self._require())

    def load(self) -> Collection[T]:
        """Load the items with one query (through the owner's EntityManager)."""
        from .wrapped import wrap

        em = wrap(self.owner).get_entity_manager()
        if em is None:
            raise ValidationError(
                f"{type(self.owner).__name__}.{self.prop} cannot be loaded: its owner is not "
                f"managed by an EntityManager.",
                entity=self.owner,
                property=self.prop,
            )
        em.populate([self.owner], [self.prop])
        return self

    init = load

    def __repr__(self) -> str:
        if self._items is None:
            return f"<Collection {type(self.owner).__name__}.{self.prop} (not initialized)>"
        return f"<Collection {type(self.owner).__name__}.{self.prop} {list(self._items.values())!r}>"


def constructed(owner: Any, prop: str, items: Iterable[Any] | None) -> Collection[Any]:
    """A new entity's collection (its generated `__init__`): initialized, filled with
    `items`. The long way, for what `core.new_collection` (which the generated `__init__`
    calls) leaves to it: items of another kind than a list or tuple, a None among them, an
    inverse side or a one-to-many to keep in step, an item of the wrong class (worded
    here)."""
    if items is not None:
        if type(items) is not list and type(items) is not tuple:
            items = list(_iterable(owner, prop, items))  # read twice if not the common case
        if None in items:  # the core's check would take a None item for "all checked"
            Collection(owner, prop)._check(None)  # raises, naming the property
        made = core.owning_collection(Collection, owner, prop, items, Ref, UNSTORED)
        if made is not None:  # the common case, in one call
            return made  # type: ignore[no-any-return]
    collection: Collection[Any] = Collection(owner, prop)
    if items is not None:
        collection._fill_new(items)
    return collection


def _enroll(collection: Any, item: Any, other: str) -> None:
    """`item`, a new entity no EntityManager holds, now holds the managed owner of
    `collection`, an inverse many-to-many side (`Article(tags=[managed_tag])`): the next
    flush persists it (Cascade.PERSIST), as a post built with a managed writer joins the
    writer's EntityManager at once. It cannot join at once: it may still be under
    construction. The flush persists it if its `other` collection still holds an entity
    of that Unit of Work (not marked for removal): it may take several, and let go of any
    of them, so the names are kept, not the owner."""
    uow = collection.owner._orm_uow
    if uow is None or item._orm_snap is not None or item._orm_uow is not None:
        return
    if _persisting(uow, collection.owner, collection.prop) is not None:
        entry = uow.enrolled.get(id(item))
        if entry is None:
            uow.enrolled[id(item)] = (item, (other,))
        elif other not in entry[1]:
            uow.enrolled[id(item)] = (item, (*entry[1], other))


def _join(owner: Any, collection_name: str, item: Any) -> None:
    """`item` now points at `owner`: it joins the owner's collection if initialized, and a
    new item of a managed owner is persisted at once (Cascade.PERSIST), loaded collection or
    not. The owner itself may not change, so no flush would find the item otherwise; and
    whether the post of a writer is saved must not depend on whether `writer.posts` was
    loaded."""
    held = owner.__dict__.get(collection_name)
    if held is not None:
        held._link(item)
    _cascade(owner, collection_name, item)


def _cascade(owner: Any, collection_name: str, item: Any) -> None:
    uow = owner._orm_uow
    if uow is not None and item._orm_snap is None and item._orm_uow is not uow:
        relation = _persisting(uow, owner, collection_name)
        if relation is not None:
            uow.persist(item, relation.target_meta)


def _persisting(uow: Any, owner: Any, name: str) -> Any:
    """The relation `name` of `owner`, a managed entity, if it cascades persist
    (Cascade.PERSIST), else None."""
    cls = type(owner)
    relation = (uow.em._metas.get(cls) or uow.em.metadata.get(cls)).properties[name].relation
    return relation if relation.persist_cascade else None


def inverse_init(cls: type, inverses: dict[str, str], init: Any) -> Any:
    """`__init__` of such a class: a new entity built with its owner in hand joins the
    owner's initialized collection. Not for an instance of a subclass (calling it through
    `super().__init__()`): a sub-entity has relations of its own (see `inverse_setattr`)."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self) is not cls:
            return
        values = self.__dict__
        joins = []
        for name, collection_name in inverses.items():
            owner = _unwrap(values.get(name))
            if owner is not None:
                _check_owner(self, name, owner)  # every owner, before it joins any
                if owner._orm_uow is not None and owner._orm_uow.removed:
                    _refuse_removed_owner(owner, collection_name, self, name)
                    _check_new_item(owner, self)
                joins.append((owner, collection_name))
        for owner, collection_name in joins:
            _join(owner, collection_name, self)

    __init__._orm_inverse = True  # type: ignore[attr-defined]
    return __init__


def _iterable(owner: Any, name: str, value: Any) -> Iterable[Any]:
    """What `set()` or an assignment to a collection property may take: an iterable of
    entities (a list, a tuple, another collection, a generator), not None, a string or a
    single entity."""
    if value is None or isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        target = getattr(type(owner), "_orm_collection_targets", {}).get(name)
        what = target.__name__ if isinstance(target, type) else "target"
        raise ValidationError(
            f"{type(owner).__name__}.{name} is a collection: give it an iterable of {what} "
            f"entities (a list; [] to empty it), got {type(value).__name__} {_short(value, 60)}. "
            f"Nothing was changed.",
            entity=owner,
            property=name,
        )
    return value


def collection_setattr(cls: type, names: set[str], inner: Any) -> Any:
    """`__setattr__` of a class with collection properties: assigning one
    (`article.tags = [a, b]`, as with a SQLAlchemy relationship list) is its `set()`, so the
    property stays the Collection the Unit of Work tracks, and both sides stay in step.
    Only for instances of `cls` itself: a subclass inherits the method, not the metadata
    (a sub-entity gets a wrapper of its own for its own collections)."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name not in names or type(self) is not cls:
            inner(self, name, value)
            return
        current = self.__dict__.get(name)
        if value is current and current is not None:
            return  # `article.tags = article.tags`
        getattr(self, name).set(list(_iterable(self, name, value)))

    __setattr__._orm_collections = names  # type: ignore[attr-defined]
    return __setattr__


def inverse_setattr(cls: type, inverses: dict[str, str], inner: Any) -> Any:
    """`__setattr__` of a class whose ManyToOne has an inverse collection: assigning the
    relation moves the entity between the initialized collections of the old and new
    owners (the foreign key, written at flush, stays the one source of truth).

    Only for instances of `cls` itself. A sub-entity inherits this method with the
    ManyToOne, but its rows are in its own table, which the inverse collection (read
    through `cls`'s foreign key column) never lists: its copy of the relation is
    one-directional, unless an inverse side of its own wraps its class again."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        collection_name = inverses.get(name)
        if collection_name is None or type(self) is not cls:
            inner(self, name, value)
            return
        if value is not None:
            _check_owner(self, name, _unwrap(value))  # before anything changes
            uow = self._orm_uow
            if uow is not None and uow.removed:
                _check_not_removed(self, name, _unwrap(value))
            owner_uow = _unwrap(value)._orm_uow
            if owner_uow is not None and owner_uow.removed:
                if _unwrap(value) is not _unwrap(self.__dict__.get(name)):
                    _refuse_removed_owner(_unwrap(value), collection_name, self, name)
                _check_new_item(_unwrap(value), self)
        old = _unwrap(self.__dict__.get(name))
        inner(self, name, value)
        new = _unwrap(self.__dict__.get(name))
        if old is new:
            return
        if old is not None:
            held = old.__dict__.get(collection_name)
            if held is not None:
                held._unlink(self)
            if new is None and self._orm_snap is None and self._orm_uow is not None:
                _orphan_new(old, collection_name, self)
        if new is not None:
            _join(new, collection_name, self)

    return __setattr__


def _check_owner(item: Any, name: str, owner: Any) -> None:
    """A ManyToOne with an inverse collection takes an entity of its target class (or
    None): anything else would be refused at flush, but the collections would be changed
    by then, so it is refused here, with nothing changed."""
    owners = type(item).__dict__.get("_orm_inverse_owners")
    target = None if owners is None else owners.get(name)
    if target is not None and type(owner) is not target:
        raise ValidationError(
            f"Invalid value for {type(item).__name__}.{name}: expected a {target.__name__} "
            f"entity or None, got {type(owner).__name__} {_short(owner, 60)}"
            f"{_own_table(target, owner)}. Nothing was changed.",
            entity=item,
            property=name,
        )
    gone = item if item._orm_snap is DELETED else owner if owner._orm_snap is DELETED else None
    if gone is not None:
        raise ValidationError(
            f"Cannot point {type(item).__name__} {_short(item, 60)} at {type(owner).__name__} "
            f"{_short(owner, 60)} through {name}: the row of {type(gone).__name__} "
            f"{_short(gone, 60)} was deleted by a flush. em.persist() it to insert it again "
            f"as a new row. Nothing was changed.",
            entity=item,
            property=name,
        )


def _refuse_removed_owner(
    owner: Any, collection_name: str, item: Any = None, name: str | None = None
) -> None:
    """A new link to an owner marked for removal, made through its collection or (`item`,
    `name`) through the item's ManyToOne: the flush deletes the owner's row, so the link
    could not be written (a many-to-many pair would go with the row, a foreign key would
    fail). Refused, nothing changed, both ways alike."""
    uow = owner._orm_uow
    if uow is None or not uow.is_removed(owner):
        return
    where = f"{type(owner).__name__}.{collection_name} of {_short(owner, 60)}"
    if item is None:
        what, entity, prop = f"add to {where}", owner, collection_name
    else:
        what = f"point {type(item).__name__}.{name} at {_short(owner, 60)}"
        entity, prop = item, name
    raise ValidationError(
        f"Cannot {what}: it is marked for removal in this EntityManager (em.remove()), so "
        f"the flush deletes its row and the new link could not be written. Call "
        f"em.persist() on it first to keep it. Nothing was changed.",
        entity=entity,
        property=prop,
    )


def _check_new_item(owner: Any, item: Any) -> None:
    """A new item about to join a managed owner joins its Unit of Work at once (cascade
    persist): its collections may not hold an entity that Unit of Work is about to delete
    (as `em.persist()` refuses), checked before anything changes."""
    _check_new_items(owner, [item])


def _check_new_items(owner: Any, items: list[Any]) -> None:
    """`_check_new_item` for the items of one `add` or `set`, in one look (an entity they
    share is read once)."""
    uow = owner._orm_uow
    if uow is None or not uow.removed:
        return
    metas = uow.em.metadata
    roots = []
    for item in items:
        if item._orm_uow is not uow and item._orm_snap is None:
            meta = metas.find(type(item))
            if meta is not None:
                roots.append((meta, [item]))
    if roots:
        # joining by cascade, as the flush persists an enrolled entity: a link it made
        # before a removal goes with the row (see UnitOfWork.links_removed)
        uow.refuse_removed_graph(roots, noted_ok=True)


def _check_not_removed(item: Any, name: str, owner: Any) -> None:
    """Pointing an entity marked for removal at another owner moves it into that owner's
    collection, which `Collection.add` refuses (the flush would delete it all the same):
    refused here too, with nothing changed."""
    if not item._orm_uow.is_removed(item) or owner is _unwrap(item.__dict__.get(name)):
        return
    raise ValidationError(
        f"Cannot point {type(item).__name__} {_short(item, 60)} at {type(owner).__name__} "
        f"{_short(owner, 60)} through {name}: it is marked for removal in this EntityManager "
        f"(em.remove()), and the flush would delete it. Call em.persist() on it first to "
        f"keep it. Nothing was changed.",
        entity=item,
        property=name,
    )


def _orphan_new(owner: Any, collection_name: str, item: Any) -> None:
    """A new item unlinked from a collection with orphan_removal is not inserted (as
    `em.remove()` forgets a new entity); linked to an owner again, it is persisted again."""
    uow = item._orm_uow
    metas = uow.em.metadata
    if metas.find(type(owner)) is None:
        return
    relation = metas.get(type(owner)).properties[collection_name].relation
    if relation.orphan_removal:
        uow.remove(item, metas.get(type(item)))
