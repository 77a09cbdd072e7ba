"""Folder-based discovery: `entities` given as dotted module names and file globs.

`"app.modules"` imports the module and, if it is a package, every module below it;
`"src/**/*_entity.py"` (relative to the config file's folder) imports every matching file (a
matching folder stands for every `.py` file below it). Every `@entity()` class (and
`EntitySchema`) those modules *define* is collected, each once.

A file inside a package is imported under its package name (`app/models/user.py` as
`app.models.user`, the package's parent folder appended to `sys.path` as pytest does), so that
the class discovery registers is the very class `from app.models.user import User` gives;
a file outside any package, or whose name is taken by another module, gets a private module
name derived from its full path.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import pkgutil
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..config import describe_exception
from ..errors import MetadataError, ORMError
from .declare import EntitySchema, declaration_of

__all__ = ["EntryReport", "expand_entries", "inspect_entries", "is_glob"]


@dataclass
class EntryReport:
    """What one item of `entities` stood for (used by `orm debug`)."""

    entry: Any
    #: "class", "schema", "module" or "path"
    kind: str
    #: what was looked for: the class name, the module name, or the absolute glob
    target: str
    #: the Python files a path entry matched
    files: list[Path] = field(default_factory=list)
    #: the modules imported for it
    modules: list[str] = field(default_factory=list)
    #: the entity classes it contributed
    entities: list[type] = field(default_factory=list)
    #: why it failed (the MetadataError's message), or None
    error: str | None = None

    @property
    def found(self) -> bool:
        """A path entry that matched at least one Python file; a module that imported."""
        if self.error is not None:
            return False
        if self.kind == "path":
            return bool(self.files)
        return True


def is_glob(entry: str) -> bool:
    """A string entry that is a file path or glob (rather than a dotted module name)."""
    return (
        any(ch in entry for ch in "*?[")
        or entry.endswith(".py")
        or "/" in entry
        or os.sep in entry
        or entry.startswith((".", "~"))
    )


# -- importing --------------------------------------------------------------------------------


def _syntax_error(exc: SyntaxError, fallback: Path | str) -> MetadataError:
    return MetadataError(
        f"Syntax error in entity file {exc.filename or fallback}, line {exc.lineno}: {exc.msg}"
    )


def _import_failure(exc: Exception, what: str) -> MetadataError:
    return MetadataError(f"{what} failed to import: {describe_exception(exc)}")


def _import_named(name: str, what: str) -> ModuleType:
    """`importlib.import_module`, with user-code failures turned into MetadataError."""
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        raise _syntax_error(exc, name) from exc
    except ORMError:
        raise
    except Exception as exc:
        raise _import_failure(exc, what) from exc


def _import_module_tree(name: str, base_dir: str | Path | None = None) -> list[Any]:
    """Import a dotted module and, if it is a package, every module below it (sorted by
    name; `__main__` modules are skipped). `base_dir` is put on `sys.path` if the module is
    not importable without it."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        own = missing == name or name.startswith(missing + ".")
        base = str(Path(base_dir).resolve()) if base_dir is not None else None
        if own and base is not None and base not in sys.path:
            sys.path.append(base)
            importlib.invalidate_caches()
            return _import_module_tree(name, None)
        if own:
            raise MetadataError(
                f"Entity module {name!r} not found (no module named {missing!r}). Check the "
                f"name, or that its folder is on sys.path (folders searched: the config "
                f"file's folder and sys.path)."
            ) from exc
        raise _import_failure(exc, f"Entity module {name!r}") from exc
    except SyntaxError as exc:
        raise _syntax_error(exc, name) from exc
    except ORMError:
        raise
    except Exception as exc:
        raise _import_failure(exc, f"Entity module {name!r}") from exc
    return _walk(module)


def _walk(module: ModuleType) -> list[ModuleType]:
    modules = [module]
    path = getattr(module, "__path__", None)
    if path is None:
        return modules
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if info.name == "__main__":
            continue
        sub_name = f"{module.__name__}.{info.name}"
        sub = _import_named(sub_name, f"Entity module {sub_name!r}")
        modules.extend(_walk(sub) if info.ispkg else [sub])
    return modules


def _package_name(path: Path) -> tuple[Path, str] | None:
    """For a file inside a regular package: (the folder to import from, the dotted name), as
    pytest's `prepend` mode computes them (up through the folders holding an `__init__.py`)."""
    if not (path.parent / "__init__.py").is_file():
        return None
    parts = [path.stem] if path.name != "__init__.py" else []
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return folder, ".".join(parts)


def _same_file(module: Any, path: Path) -> bool:
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str) or not filename.endswith(path.name):
        return False
    try:
        return Path(filename).resolve() == path
    except (OSError, ValueError):  # pragma: no cover - unreadable path
        return False


def _sys_path() -> list[Path]:
    out = []
    for entry in sys.path:
        try:
            out.append(Path(entry or ".").resolve())
        except (OSError, ValueError):  # pragma: no cover
            continue
    return out


def _name_candidates(path: Path) -> list[tuple[Path | None, str]]:
    """Dotted names `path` may be importable as: its package name (with the folder to add to
    sys.path), then its name relative to each sys.path folder that holds it."""
    candidates: list[tuple[Path | None, str]] = []
    located = _package_name(path)
    if located is not None:
        candidates.append(located)
    for root in _sys_path():
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts.pop()
        if parts and all(p.isidentifier() for p in parts):
            candidates.append((None, ".".join(parts)))
    return candidates


def _import_by_name(path: Path) -> ModuleType | None:
    """Import `path` under a dotted name that leads to this very file, if there is one."""
    what = f"Entity file {path}"
    for root, name in _name_candidates(path):
        existing = sys.modules.get(name)
        if existing is not None:
            if _same_file(existing, path):
                return existing
            continue
        if root is not None and root not in _sys_path():
            sys.path.append(str(root))
            importlib.invalidate_caches()
        try:
            spec = importlib.util.find_spec(name)
        except SyntaxError as exc:  # a parent package's __init__
            raise _syntax_error(exc, path) from exc
        except ORMError:
            raise
        except (ImportError, ValueError):
            continue
        except Exception as exc:
            raise _import_failure(exc, what) from exc
        if spec is not None and spec.origin and Path(spec.origin).resolve() == path:
            return _import_named(name, what)
    return None


def _private_name(path: Path) -> str:
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    return f"orm_discovered_{stem}_{zlib.crc32(str(path).encode()):08x}"


def _import_file(path: Path) -> Any:
    """Import a Python file by path, once: a file already imported (by discovery or by the
    application, under any name) is not imported again."""
    path = Path(path).resolve()
    for module in list(sys.modules.values()):
        if _same_file(module, path):
            return module
    module = _import_by_name(path)
    if module is not None:
        return module
    mod_name = _private_name(path)
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise MetadataError(f"Cannot import entity file {path}: it is not a Python file (.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[mod_name]
        raise _syntax_error(exc, path) from exc
    except ORMError:
        del sys.modules[mod_name]
        raise
    except Exception as exc:
        del sys.modules[mod_name]
        raise _import_failure(exc, f"Entity file {path}") from exc
    return module


def _entities_in(modules: Iterable[Any]) -> list[type]:
    """The entity classes the modules define (not those they merely import), and the
    classes of the `EntitySchema`s they hold, in definition order."""
    found: list[type] = []
    for module in modules:
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and declaration_of(value) is not None
            ):
                found.append(value)
            elif isinstance(value, EntitySchema):
                found.append(value.class_)
    return found


# -- entries ----------------------------------------------------------------------------------


def _glob_pattern(entry: str, base: Path) -> str:
    expanded = os.path.expanduser(entry)
    return expanded if os.path.isabs(expanded) else str(base / expanded)


def _python_files(pattern: str) -> list[Path]:
    """The `.py` files a glob matches; a matched folder stands for every `.py` file below
    it (hidden folders and `__pycache__` left out)."""
    files: list[Path] = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = Path(match)
        if path.is_dir():
            for sub in sorted(path.rglob("*.py")):
                rel = sub.relative_to(path).parts[:-1]
                if not any(p.startswith(".") or p == "__pycache__" for p in rel):
                    files.append(sub)
        elif path.suffix == ".py" and path.is_file():
            files.append(path)
    unique: list[Path] = []
    seen: set[Path] = set()
    for f in files:
        resolved = f.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(resolved)
    return unique


def _expand(entry: Any, base: Path, base_dir: str | Path | None) -> EntryReport:
    """One `entities` item -> its report; MetadataError when it cannot be used."""
    if isinstance(entry, EntitySchema):
        return EntryReport(entry, "schema", entry.name, entities=[entry.class_])
    if isinstance(entry, type):
        return EntryReport(entry, "class", entry.__name__, entities=[entry])
    if isinstance(entry, os.PathLike):
        entry = os.fspath(entry)
    if isinstance(entry, str) and entry.strip():
        text = entry.strip()
        if is_glob(text):
            pattern = _glob_pattern(text, base)
            files = _python_files(pattern)
            modules = [_import_file(f) for f in files]
            return EntryReport(
                entry, "path", pattern, files=files,
                modules=[m.__name__ for m in modules], entities=_entities_in(modules),
            )
        modules = _import_module_tree(text, base_dir)
        return EntryReport(
            entry, "module", text, modules=[m.__name__ for m in modules],
            entities=_entities_in(modules),
        )
    raise MetadataError(
        f"`entities` holds {entry!r}, which is neither an entity class, an EntitySchema, a "
        f"dotted module name nor a file glob."
    )


def inspect_entries(entries: Iterable[Any],
                    base_dir: str | Path | None = None) -> list[EntryReport]:
    """Like `expand_entries`, but one report per entry, an entry that fails recording its
    error instead of raising (for `orm debug`)."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    reports = []
    for entry in entries:
        try:
            reports.append(_expand(entry, base, base_dir))
        except MetadataError as exc:
            kind = "path" if isinstance(entry, str) and is_glob(entry) else "module"
            target = _glob_pattern(entry, base) if kind == "path" else str(entry)
            reports.append(EntryReport(entry, kind, target, error=str(exc)))
    return reports


def expand_entries(entries: Iterable[Any], base_dir: str | Path | None = None) -> list[type]:
    """Classes, `EntitySchema`s, dotted module names and file globs -> entity classes, each
    once, in the order first seen. A glob that matches nothing contributes nothing (`orm
    debug` reports it); a module that cannot be imported or a file with a syntax error is a
    MetadataError naming the module or the file and line."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    unique: list[type] = []
    seen: set[type] = set()
    for entry in entries:
        for cls in _expand(entry, base, base_dir).entities:
            if cls not in seen:
                seen.add(cls)
                unique.append(cls)
    return unique
