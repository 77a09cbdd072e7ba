"""`ManyToOne()`, `OneToOne()` and `Cascade`: what a class body declares about a relation.

Like `Property()` they only record options; the target entity is resolved at discovery (from
the annotation or `entity=`, once every entity class exists, so forward references and
classes defined later work), where a bad target can be reported naming both sides.
"""

from __future__ import annotations

from .._markers import MISSING
from .._typing import TYPE_CHECKING
from .options import PropertyOptions

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ManyToMany", "ManyToOne", "OneToMany", "OneToOne", "RELATION_OPTIONS", "ON_DELETE",
]


def __getattr__(name: str) -> Any:
    # `orm.metadata.relations.Cascade`, as before it moved to orm.metadata.cascade
    if name == "Cascade":
        from .cascade import Cascade

        return Cascade
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: what `on_delete=` accepts (None: the database's default, which is `no action`)
ON_DELETE = ("cascade", "set null", "restrict", "no action")

#: the options a relation declaration records besides the column options it shares
RELATION_OPTIONS = frozenset(
    {"relation", "entity", "ref", "cascade", "on_delete", "join_column", "inversed_by",
     "mapped_by", "owner", "orphan_removal", "order_by", "pivot_table",
     "inverse_join_column"}
)  # fmt: skip


def _relation(
    kind: str,
    entity: Any,
    nullable: bool | None,
    ref: bool,
    cascade: Any,
    on_delete: str | None,
    join_column: str | None,
    inversed_by: str | None,
    index: bool,
    unique: bool,
    hidden: bool,
    unknown: dict[str, Any],
) -> PropertyOptions:
    options = dict(
        type=None,
        column_type=None,
        field_name=join_column,
        nullable=nullable,
        default=MISSING,
        default_factory=None,
        unique=unique,
        index=index,
        length=None,
        precision=None,
        scale=None,
        hidden=hidden,
        persist=True,
        version=False,
        on_create=None,
        on_update=None,
        comment=None,
        primary=False,
        autoincrement=None,
        relation=kind,
        entity=entity,
        ref=ref,
        cascade=cascade,
        on_delete=on_delete,
        join_column=join_column,
        inversed_by=inversed_by,
        mapped_by=None,
        owner=True,
    )
    return PropertyOptions(options, unknown)


def ManyToOne(  # noqa: N802 - reads as a declaration, like Property()
    entity: Any = None,
    *,
    nullable: bool | None = None,
    ref: bool = False,
    cascade: Any = ("persist",),
    on_delete: str | None = None,
    join_column: str | None = None,
    inversed_by: str | None = None,
    index: bool = True,
    hidden: bool = False,
    **unknown: Any,
) -> Any:
    """Declare the owning side of a many-to-one relation: a foreign key column
    (`<property>_<target key column>`, or `join_column`) holding the target's primary key.

    The target is the annotation's class (`author: User = ManyToOne()`, `Ref[User]`,
    `User | None`), or `entity=` (a class, its name, or a callable returning the class).
    `nullable` defaults to whether the annotation allows None."""
    return _relation(
        "m:1", entity, nullable, ref, cascade, on_delete, join_column, inversed_by, index,
        False, hidden, unknown,
    )


def OneToOne(  # noqa: N802
    entity: Any = None,
    *,
    nullable: bool | None = None,
    ref: bool = False,
    cascade: Any = ("persist",),
    on_delete: str | None = None,
    join_column: str | None = None,
    inversed_by: str | None = None,
    mapped_by: str | None = None,
    hidden: bool = False,
    **unknown: Any,
) -> Any:
    """Declare the owning side of a one-to-one relation: a many-to-one whose foreign key is
    unique (one row per target).

    With `mapped_by`, the inverse side instead: no column; the property holds the target
    whose owning `OneToOne` named by `mapped_by` points at this entity (or None)."""
    if mapped_by is not None:
        options = _relation(
            "1:1", entity, True, False, cascade, None, None, None, False, False, hidden, unknown
        ).options
        options.update(persist=False, mapped_by=mapped_by, owner=False)
        for name, value in (("ref", ref), ("on_delete", on_delete), ("join_column", join_column),
                            ("inversed_by", inversed_by), ("nullable", nullable)):
            if value:  # options of the side holding the foreign key
                unknown[name] = value
        return PropertyOptions(options, unknown)
    return _relation(
        "1:1", entity, nullable, ref, cascade, on_delete, join_column, inversed_by, False,
        True, hidden, unknown,
    )


def OneToMany(  # noqa: N802
    entity: Any = None,
    *,
    mapped_by: str | None = None,
    cascade: Any = ("persist",),
    orphan_removal: bool = False,
    hidden: bool = False,
    **unknown: Any,
) -> Any:
    """Declare the inverse side of a many-to-one: a `Collection` of the entities whose
    `ManyToOne` named by `mapped_by` points at this one. No column: the foreign key is the
    target's."""
    options = _relation(
        "1:m", entity, True, False, cascade, None, None, None, False, False, hidden, unknown
    ).options
    options.update(persist=False, mapped_by=mapped_by, owner=False,
                   orphan_removal=orphan_removal)
    return PropertyOptions(options, unknown)


def ManyToMany(  # noqa: N802
    entity: Any = None,
    *,
    mapped_by: str | None = None,
    inversed_by: str | None = None,
    pivot_table: str | None = None,
    join_column: str | None = None,
    inverse_join_column: str | None = None,
    cascade: Any = ("persist",),
    hidden: bool = False,
    **unknown: Any,
) -> Any:
    """Declare a many-to-many relation: a `Collection` of target entities, stored in a
    pivot table of (owner key, target key) rows.

    The owning side (no `mapped_by`) declares the pivot table: `pivot_table`, by default
    `<owner table>_<property>`; its columns `join_column` (the owner's key, by default
    `<owner>_<key column>`) and `inverse_join_column` (the target's). The inverse side names
    the owning property with `mapped_by`; changes made through either side are written by
    the owning one."""
    options = _relation(
        "m:n", entity, True, False, cascade, "cascade", None, inversed_by, False, False,
        hidden, unknown,
    ).options
    options.update(
        persist=False, field_name=None, mapped_by=mapped_by, owner=mapped_by is None,
        pivot_table=pivot_table, join_column=join_column,
        inverse_join_column=inverse_join_column,
    )
    return PropertyOptions(options, unknown)
