"""Configuration: `define_config()` and the search for a config file.

A config file is a Python module exposing `config` (a `define_config(...)` result). It is
found, in this order, via `--config PATH` / an explicit path, the `ORM_CONFIG` environment
variable, `[tool.orm] config_paths` in the nearest `pyproject.toml`, then `./orm_config.py`
and `./src/orm_config.py`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ValidationError
from .naming import NamingStrategy, UnderscoreNamingStrategy

__all__ = ["Options", "define_config", "config_search_paths", "load_config", "ConfigError"]

DEBUG_NAMESPACES = ("query", "discovery", "info")


@dataclass
class Options:
    """Everything `ORM.init()` accepts. Build it with `define_config(...)`."""

    db_name: str = ":memory:"
    entities: list[Any] = field(default_factory=list)
    debug: bool | list[str] = False
    allow_global_context: bool = False
    naming_strategy: NamingStrategy | type[NamingStrategy] = UnderscoreNamingStrategy
    driver: str = "sqlite"
    logger: Callable[[str], None] | None = None
    flush_mode: Any = None
    timeout: float = 5.0
    #: folder that relative entity globs are resolved against (the config file's folder)
    base_dir: str | None = None

    def debug_enabled(self, namespace: str) -> bool:
        if self.debug is True:
            return True
        if not self.debug:
            return False
        return namespace in self.debug  # type: ignore[operator]

    def naming(self) -> NamingStrategy:
        strategy = self.naming_strategy
        return strategy() if isinstance(strategy, type) else strategy


_KNOWN = {f.name for f in fields(Options)}


def define_config(**options: Any) -> Options:
    """Validated configuration for `ORM.init()`; an unknown option is a ValidationError."""
    unknown = set(options) - _KNOWN
    if unknown:
        raise ValidationError(
            f"Unknown configuration option(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(_KNOWN))}"
        )
    opts = Options(**options)
    if opts.driver not in ("sqlite", "SqliteDriver"):
        raise ValidationError(f"Unknown driver {opts.driver!r}; this build supports: sqlite")
    if isinstance(opts.debug, (list, tuple)):
        bad = [ns for ns in opts.debug if ns not in DEBUG_NAMESPACES]
        if bad:
            raise ValidationError(
                f"Unknown debug namespace(s) {bad}; known: {', '.join(DEBUG_NAMESPACES)}"
            )
    opts.entities = list(opts.entities)
    return opts


def merge_config(base: Options, **overrides: Any) -> Options:
    unknown = set(overrides) - _KNOWN
    if unknown:
        raise ValidationError(f"Unknown configuration option(s) {', '.join(sorted(unknown))}")
    return replace(base, **overrides)


class ConfigError(Exception):
    """No config file found, or one that failed to load (the CLI turns it into exit code 2)."""

    def __init__(self, message: str, searched: list[tuple[Path, bool]] | None = None) -> None:
        super().__init__(message)
        self.searched = searched or []


def _pyproject_paths(start: Path) -> list[Path]:
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                return []
            paths = data.get("tool", {}).get("orm", {}).get("config_paths", [])
            if isinstance(paths, str):
                paths = [paths]
            return [folder / p for p in paths]
    return []


def config_search_paths(explicit: str | os.PathLike[str] | None = None,
                        cwd: Path | None = None) -> list[Path]:
    """Every path the config search looks at, in order."""
    cwd = cwd or Path.cwd()
    paths: list[Path] = []
    if explicit:
        paths.append(Path(explicit))
    env = os.environ.get("ORM_CONFIG")
    if env:
        paths.append(Path(env))
    paths.extend(_pyproject_paths(cwd))
    paths.extend([cwd / "orm_config.py", cwd / "src" / "orm_config.py"])
    return [p if p.is_absolute() else cwd / p for p in paths]


def load_config_file(path: Path) -> Options:
    """Import a config file and return its `config`."""
    path = path.resolve()
    name = f"orm_config_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot load config file {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        raise ConfigError(f"Config file {path} failed to load: {last}") from exc
    config = getattr(module, "config", None)
    if config is None:
        raise ConfigError(
            f"Config file {path} does not define `config` (set config = define_config(...))"
        )
    if isinstance(config, dict):
        config = define_config(**config)
    if not isinstance(config, Options):
        raise ConfigError(f"`config` in {path} is not a define_config(...) result")
    if config.base_dir is None:
        config = replace(config, base_dir=folder)
    return config


def load_config(explicit: str | os.PathLike[str] | None = None) -> tuple[Options, Path]:
    """Find and load the config file; ConfigError lists every path searched."""
    searched: list[tuple[Path, bool]] = []
    for path in config_search_paths(explicit):
        found = path.is_file()
        searched.append((path, found))
        if found:
            return load_config_file(path), path
    listing = "\n".join(f"  {p} (not found)" for p, _ in searched)
    raise ConfigError(f"No ORM configuration found. Searched:\n{listing}", searched)
