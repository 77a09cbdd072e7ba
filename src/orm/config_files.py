"""The search for a config file and its loading (what and in which order: see orm.config).
`orm.config` gives these names on first use: `ORM.init()` without options and the command
line search; a script that passes its options to `ORM.init` never loads this module.
`ConfigError` and `ConfigCandidate` keep `orm.config` as their module, where they are
documented, shown and pickled.
"""

from __future__ import annotations

import sys

from ._typing import TYPE_CHECKING
from .config import (
    _SEARCH,
    CONFIG_TEMPLATE,
    DEFAULT_CONFIG_PATHS,
    Options,
    define_config,
    merge_config,
)
from .errors import ORMError, ValidationError

if TYPE_CHECKING:
    import os
    from pathlib import Path
    from typing import Any

#: the names orm.config lists as given by this module (one list, there)
__all__ = sorted(_SEARCH)


class ConfigError(ORMError):
    """No config file found, or one that failed to load (the CLI turns it into exit code 2).
    `searched` lists `(path, found)` for every path looked at."""

    def __init__(self, message: str, searched: list[tuple[Path, bool]] | None = None) -> None:
        super().__init__(message)
        self.searched = searched or []


# -- the search ---------------------------------------------------------------------------------


class ConfigCandidate:
    """One place the search looks at, and why (`source`); immutable, compared by value."""

    __slots__ = ("path", "source")

    path: Path
    #: "--config", "ORM_CONFIG", "pyproject.toml" or "default"
    source: str

    def __init__(self, path: Path, source: str) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "source", source)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ConfigCandidate is immutable (cannot set {name!r})")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.path, self.source) == (other.path, other.source)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.path, self.source))

    def __repr__(self) -> str:
        return f"ConfigCandidate(path={self.path!r}, source={self.source!r})"

    @property
    def explicit(self) -> bool:
        """Named by the user (`--config`, `ORM_CONFIG`): it must exist."""
        return self.source in ("--config", "ORM_CONFIG")

    @property
    def found(self) -> bool:
        return self.path.is_file()


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest `pyproject.toml`, in `start` (the current directory) or above."""
    from pathlib import Path

    start = (start or Path.cwd()).resolve()
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def pyproject_config_paths(pyproject: Path) -> list[Path]:
    """`[tool.orm] config_paths` of a pyproject.toml, resolved against its folder (a
    ConfigError if the file is not valid TOML or the setting is not a list of strings)."""
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {pyproject}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject} is not valid TOML: {exc}") from exc
    tool = data.get("tool", {})
    section = tool.get("orm", {}) if isinstance(tool, dict) else {}
    paths = section.get("config_paths", []) if isinstance(section, dict) else []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ConfigError(
            f"[tool.orm] config_paths in {pyproject} must be a list of paths (strings), "
            f"e.g. config_paths = [\"config/orm_config.py\"]"
        )
    return [pyproject.parent / p for p in paths]


def config_candidates(explicit: str | os.PathLike[str] | None = None,
                      cwd: Path | None = None) -> list[ConfigCandidate]:
    """Every place the config search looks at, in order (a ConfigError for an unreadable
    pyproject.toml)."""
    import os
    from pathlib import Path

    cwd = cwd or Path.cwd()
    found: list[ConfigCandidate] = []
    if explicit:
        found.append(ConfigCandidate(Path(explicit), "--config"))
    env = os.environ.get("ORM_CONFIG", "").strip()
    if env:
        found.append(ConfigCandidate(Path(env), "ORM_CONFIG"))
    pyproject = find_pyproject(cwd)
    if pyproject is not None:
        found.extend(ConfigCandidate(p, "pyproject.toml") for p in pyproject_config_paths(pyproject))
    found.extend(ConfigCandidate(cwd / p, "default") for p in DEFAULT_CONFIG_PATHS)
    out = []
    for cand in found:
        path = cand.path.expanduser()
        out.append(ConfigCandidate(path if path.is_absolute() else cwd / path, cand.source))
    return out


def config_search_paths(explicit: str | os.PathLike[str] | None = None,
                        cwd: Path | None = None) -> list[Path]:
    """Every path the config search looks at, in order."""
    return [c.path for c in config_candidates(explicit, cwd)]


# -- loading ------------------------------------------------------------------------------------

#: loaded config modules: path -> (checksum of the source, module); a file is executed again
#: only when it changed
_LOADED: dict[str, tuple[int, Any]] = {}


def describe_exception(exc: BaseException) -> str:
    """One line for an exception raised by user code: the last line of its traceback plus
    where it was raised (the deepest frame outside this package and importlib)."""
    import os
    import traceback

    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else f"line {exc.lineno}"
        return f"{type(exc).__name__}: {exc.msg} ({where})"
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    orm_dir = os.path.dirname(os.path.realpath(__file__))
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith("<") and not f.filename.startswith(orm_dir)
    ]
    if frames:
        return f"{last} (at {frames[-1].filename}, line {frames[-1].lineno})"
    return last


def _exec_config_module(path: Path) -> Any:
    import importlib.util
    import zlib

    key = str(path)
    try:
        checksum = zlib.crc32(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from exc
    cached = _LOADED.get(key)
    if cached is not None and cached[0] == checksum:
        return cached[1]
    name = f"_orm_config_{zlib.crc32(key.encode()):08x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot load config file {path}: it is not a Python file (.py)")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        # so that the config (and `entities` given as dotted names) can import its neighbours
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(
            f"Config file {path} failed to load: {describe_exception(exc)}"
        ) from exc
    _LOADED[key] = (checksum, module)
    return module


def _config_of(module: Any, path: Path) -> Options:
    config = getattr(module, "config", None)
    if config is None:
        candidates = [v for v in vars(module).values() if isinstance(v, Options)]
        if len(candidates) != 1:
            raise ConfigError(
                f"Config file {path} does not define `config`; add\n"
                f"  config = define_config(db_name=..., entities=[...])"
            )
        config = candidates[0]
    if callable(config) and not isinstance(config, Options):
        try:
            config = config()
        except Exception as exc:
            raise ConfigError(
                f"`config()` in {path} failed: {describe_exception(exc)}"
            ) from exc
    if isinstance(config, dict):
        try:
            config = define_config(**config)
        except ValidationError as exc:
            raise ConfigError(f"`config` in {path} is invalid: {exc}") from exc
    if not isinstance(config, Options):
        raise ConfigError(
            f"`config` in {path} is a {type(config).__name__}, not a define_config(...) result"
        )
    return config


def load_config_file(path: str | os.PathLike[str]) -> Options:
    """Import a config file and return (a copy of) its `config`, with `base_dir` set to the
    file's folder unless the config sets it. A file that does not exist, fails to import or
    defines no `config` is a ConfigError naming the file and the error."""
    from pathlib import Path

    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise ConfigError(f"Config path {path} is a folder, not a Python file")
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist")
    config = _config_of(_exec_config_module(path), path)
    base_dir = config.base_dir
    if base_dir is None:
        base_dir = str(path.parent)
    elif not Path(base_dir).is_absolute():
        base_dir = str((path.parent / base_dir).resolve())
    return merge_config(config, base_dir=base_dir, entities=list(config.entities))


def _not_found_message(searched: list[tuple[Path, bool]]) -> str:
    listing = "\n".join(f"  {p} (not found)" for p, _ in searched)
    template = "\n".join(f"    {line}".rstrip() for line in CONFIG_TEMPLATE.splitlines())
    return (
        f"No ORM configuration found. Searched:\n{listing}\n"
        f"Create ./orm_config.py, e.g.\n{template}\n"
        f"or pass --config PATH (ORM.init(config)), or set ORM_CONFIG."
    )


def load_config(explicit: str | os.PathLike[str] | None = None,
                cwd: Path | None = None) -> tuple[Options, Path]:
    """Find and load the config file: `(options, path)`. A ConfigError lists every path
    searched (`.searched`); a path given by `--config`/`ORM_CONFIG` that does not exist is
    an error rather than a reason to look further."""
    searched: list[tuple[Path, bool]] = []
    for cand in config_candidates(explicit, cwd):
        found = cand.found
        searched.append((cand.path, found))
        if found:
            return load_config_file(cand.path), cand.path.resolve()
        if cand.explicit:
            raise ConfigError(
                f"Config file {cand.path} (given by {cand.source}) does not exist.", searched
            )
    raise ConfigError(_not_found_message(searched), searched)


ConfigError.__module__ = ConfigCandidate.__module__ = "orm.config"
