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

`getenv` and `getcwd` read the environment and the working directory without importing `os`
(with `stat` and `posixpath`, about 2 M instructions: a tenth of what a tiny script spends in
the package beyond sqlite3's own).
"""

from __future__ import annotations

import gc
import sys

TYPE_CHECKING = False

__all__ = [
    "TYPE_CHECKING",
    "import_pause",
    "lazy_names",
    "lazy_module",
    "contextmanager",
    "Generic",
    "TypeVar",
    "overload",
    "dataclass_transform",
    "get_origin",
    "get_args",
    "getenv",
    "getcwd",
]

_GenericAlias = type(list[int])
_UnionType = type(int | None)

if TYPE_CHECKING:
    from contextlib import contextmanager as contextmanager
    from typing import Any
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


class import_pause:
    """Pauses the cyclic collector while the package's modules load. An import creates a few
    thousand objects that live as long as the program (classes, functions, their code); the
    collector's passes over them, set off by their very allocation (about a dozen for a
    small script), find nothing to free. The pass the allocations are owed runs once the
    pause ends. (Moving them straight into the oldest generation instead, with
    `gc.freeze()` and `gc.unfreeze()`, saved that pass but left the generation's list in an
    order that made every later full collection slower: 8-12 ms more for a program building
    50,000 entities.) A collector switched off stays off. The switch is the interpreter's:
    another thread's `gc.disable()` made during the pause is undone when it ends, as with
    the flush's pause."""

    __slots__ = ("_collecting",)

    def __enter__(self) -> None:
        self._collecting = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._collecting:
            gc.enable()


def lazy_names(package: str, table: dict[str, str], namespace: dict[str, object]) -> object:
    """A module `__getattr__` for `package`: a name of `table` is imported from its module
    (relative to `package`) on first use, then kept in `namespace`, the package's globals.
    Packages define it only when not TYPE_CHECKING: a checker that saw a module `__getattr__`
    would accept any name from the package, typos included."""

    def __getattr__(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        with import_pause():
            value = getattr(__import__(f"{package}.{module}", fromlist=[name]), name)
        namespace[name] = value
        return value

    return __getattr__


class _LazyModule:
    """Stands in for a module a module imports as a whole (`from . import pivots`) but uses
    only on some paths: the first attribute read imports it and puts the module itself in
    the importer's globals in place of this object, so later uses cost a plain global lookup.
    A tiny script loads fewer modules (tests/test_startup.py lists which)."""

    __slots__ = ("_name", "_namespace", "_alias")

    def __init__(self, name: str, namespace: dict[str, object], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def __getattr__(self, attr: str) -> object:
        __import__(self._name)
        module = sys.modules[self._name]
        self._namespace[self._alias] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str, namespace: dict[str, object], alias: str) -> Any:
    """The module `name` as global `alias` of `namespace`, imported on first attribute read
    (see _LazyModule). Modules bind it only when not TYPE_CHECKING and import the module
    itself for type checkers."""
    return _LazyModule(name, namespace, alias)


if not TYPE_CHECKING:  # checkers see contextlib's (imported above)

    def contextmanager(func):
        """`contextlib.contextmanager`, with contextlib imported by the first call rather
        than when the decorated method is defined: `em.transaction()` and
        `orm.request_context()` are defined by modules every script imports, and used by
        few."""
        made = None

        def call(*args, **kwargs):
            nonlocal made
            if made is None:
                from contextlib import contextmanager as real

                made = real(func)
            return made(*args, **kwargs)

        for name in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(call, name, getattr(func, name))
        call.__wrapped__ = func
        return call


def getenv(name: str) -> str | None:
    """`os.environ.get(name)`, without importing `os` when it is not imported yet: until then
    nothing can have changed `os.environ`, so the interpreter's own copy of the environment
    (`posix.environ`, which `os.environ` is made from) is current. Once `os` is imported,
    its `environ` is read, changes included."""
    os = sys.modules.get("os")
    if os is None:
        try:
            from posix import environ
        except ImportError:  # pragma: no cover - Windows: nt.environ is os.environ's source
            import os
        else:
            value = environ.get(name.encode(sys.getfilesystemencoding(), "surrogateescape"))
            if value is None:
                return None
            return value.decode(sys.getfilesystemencoding(), "surrogateescape")
    return os.environ.get(name)


def getcwd() -> str:
    """`os.getcwd()`, without importing `os` (see `getenv`)."""
    try:
        from posix import getcwd as current
    except ImportError:  # pragma: no cover - Windows
        from os import getcwd as current
    return current()
