"""`Property()` and `PrimaryKey()`: what a class body declares about one property.

They only record the options. Checking them (unknown option, unresolvable type) happens at
discovery, where the error can name the entity and the property.
"""

from __future__ import annotations

from .._markers import MISSING
from .._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["PropertyOptions", "Property", "PrimaryKey", "KNOWN_OPTIONS"]

KNOWN_OPTIONS = frozenset(
    {
        "type",
        "column_type",
        "name",
        "field_name",
        "nullable",
        "default",
        "default_factory",
        "unique",
        "index",
        "length",
        "precision",
        "scale",
        "hidden",
        "persist",
        "version",
        "on_create",
        "on_update",
        "comment",
        "primary",
        "autoincrement",
    }
)


class PropertyOptions:
    """The options of one declared property; turned into `PropertyMetadata` at discovery."""

    __slots__ = ("options", "unknown")

    def __init__(self, options: dict[str, Any], unknown: dict[str, Any]) -> None:
        self.options = options
        self.unknown = unknown

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    @property
    def has_default(self) -> bool:
        return self.options.get("default", MISSING) is not MISSING or (
            self.options.get("default_factory") is not None
        )

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not MISSING)
        return f"Property({opts})"


def Property(  # noqa: N802 - reads as a declaration, like dataclasses.field
    *,
    type: Any = None,  # noqa: A002 - MikroORM's option name
    column_type: str | None = None,
    name: str | None = None,
    field_name: str | None = None,
    nullable: bool | None = None,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    unique: bool = False,
    index: bool = False,
    length: int | None = None,
    precision: int | None = None,
    scale: int | None = None,
    hidden: bool = False,
    persist: bool = True,
    version: bool = False,
    on_create: Callable[[Any], Any] | None = None,
    on_update: Callable[[Any], Any] | None = None,
    comment: str | None = None,
    **unknown: Any,
) -> Any:
    """Declare a mapped property with options (see SPEC section 1).

    Returns Any, as `dataclasses.field` does, so `email: str = Property(unique=True)` checks.
    It is the field specifier of `@entity()` (PEP 681): type checkers take a property as an
    optional argument of the generated `__init__` only when `default=` or `default_factory=`
    is given. The ORM also leaves `version=True`, `nullable=True`, `on_create=` and `X | None`
    properties optional; to have checkers agree, give them `default=None` (`default=1` for a
    version), which the ORM treats the same way.
    """
    options = dict(
        type=type,
        column_type=column_type,
        field_name=field_name or name,
        nullable=nullable,
        default=default,
        default_factory=default_factory,
        unique=unique,
        index=index,
        length=length,
        precision=precision,
        scale=scale,
        hidden=hidden,
        persist=persist,
        version=version,
        on_create=on_create,
        on_update=on_update,
        comment=comment,
        primary=False,
        autoincrement=None,
    )
    return PropertyOptions(options, unknown)


def PrimaryKey(  # noqa: N802
    *,
    type: Any = None,  # noqa: A002
    autoincrement: bool | None = None,
    **options: Any,
) -> Any:
    """Declare the primary key. An `int` key with no value gets its value from the database
    (unless `autoincrement=False`); other keys are given by the user or a `default_factory`.

    Not a field specifier of `@entity()`: type checkers read `id: int = PrimaryKey()` as a
    default, so the key is an optional argument for them, as the database fills it."""
    prop = Property(type=type, **options)
    prop.options["primary"] = True
    prop.options["autoincrement"] = autoincrement
    return prop
