"""What the package needs of `typing` at run time, without importing `typing`.

`typing` brings `re`, `contextlib` and more with it: about a third of what `import orm` cost.
The package needs it at run time only for generic base classes (`Collection[T]`, `Ref[T]`),
`TypeVar`, `@overload` and `@dataclass_transform`. Type checkers read the `TYPE_CHECKING` branch
below (the real names); at run time the stand-ins do what those do for the interpreter:
`Collection[Post]` is a `types.GenericAlias`, as `list[int]` is, so annotations evaluate and
`get_origin` / `get_args` answer for them.

Modules use `TYPE_CHECKING` from here and import typing-only names under `if TYPE_CHECKING:`.
An annotation of a user's can be a `typing` object only if `typing` is already imported, which
is what `get_origin` and `get_args` rely on.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False

__all__ = [
    "TYPE_CHECKING",
    "lazy_names",
    "Generic",
    "TypeVar",
    "overload",
    "dataclass_transform",
    "get_origin",
    "get_args",
]

_GenericAlias = type(list[int])
_UnionType = type(int | None)

if TYPE_CHECKING:
    from typing import Generic as Generic
    from typing import TypeVar as TypeVar
    from typing import dataclass_transform as dataclass_transform
    from typing import get_args as get_args
    from typing import get_origin as get_origin
    from typing import overload as overload
else:

    class Generic:
        """`class Collection(Generic[T])` at run time: `Generic[T]` is this class, and
        `Collection[Post]` the alias `list[int]` would be."""

        __slots__ = ()

        def __class_getitem__(cls, params):
            if cls is Generic:
                return Generic
            return _GenericAlias(cls, params)

    def TypeVar(name, *constraints, **options):  # noqa: N802 - typing's name
        return name

    def overload(func):
        """The overloads only describe the signature to type checkers; the last definition,
        the implementation, replaces them."""
        return func

    def dataclass_transform(**options):
        def decorate(obj):
            obj.__dataclass_transform__ = options
            return obj

        return decorate

    def get_origin(tp):
        typing = sys.modules.get("typing")
        if typing is not None:
            return typing.get_origin(tp)
        if isinstance(tp, _GenericAlias):
            return tp.__origin__
        if isinstance(tp, _UnionType):
            return _UnionType
        return None

    def get_args(tp):
        typing = sys.modules.get("typing")
        if typing is not None:
            return typing.get_args(tp)
        if isinstance(tp, (_GenericAlias, _UnionType)):
            return tp.__args__
        return ()


def lazy_names(package: str, table: dict[str, str], namespace: dict[str, object]) -> object:
    """A module `__getattr__` for `package`: a name of `table` is imported from its module
    (relative to `package`) on first use, then kept in `namespace`, the package's globals.
    Packages define it only when not TYPE_CHECKING: a checker that saw a module `__getattr__`
    would accept any name from the package, typos included."""

    def __getattr__(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(__import__(f"{package}.{module}", fromlist=[name]), name)
        namespace[name] = value
        return value

    return __getattr__
