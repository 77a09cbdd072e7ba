"""Configuration: `define_config()` and the search for a config file.

A config file is a Python module exposing `config` (a `define_config(...)` result). It is
found, in this order, via `--config PATH` / an explicit path, the `ORM_CONFIG` environment
variable, `[tool.orm] config_paths` in the nearest `pyproject.toml`, then `./orm_config.py`
and `./src/orm_config.py`. The first file that exists is loaded; a path given explicitly
(`--config` or `ORM_CONFIG`) must exist, so that a typo never silently selects another
configuration. `ORM.init()` without arguments and the `orm` command line share this search.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from ._typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from pathlib import Path
    from typing import Any

# The search and the loading of config files import `pathlib`, `tomllib`, `traceback`,
# `importlib.util` and `zlib` inside the functions that need them: a script that passes its
# options to `ORM.init(...)` never searches, and must not pay for these imports at start-up.

from .errors import ORMError, ValidationError
from .naming import NamingStrategy, UnderscoreNamingStrategy

__all__ = [
    "Options",
    "define_config",
    "ConfigCandidate",
    "config_candidates",
    "config_search_paths",
    "find_pyproject",
    "load_config_file",
    "load_config",
    "ConfigError",
    "DEFAULT_CONFIG_PATHS",
    "CONFIG_TEMPLATE",
]

DEBUG_NAMESPACES = ("query", "discovery", "info")

#: the fallbacks of the search, relative to the current directory
DEFAULT_CONFIG_PATHS = ("orm_config.py", "src/orm_config.py")

#: what a minimal config file looks like (shown when none is found)
CONFIG_TEMPLATE = '''\
from orm import define_config

config = define_config(
    db_name="app.db",               # relative to the current directory; ":memory:" for RAM
    entities=["entities/*.py"],     # classes, dotted modules ("app.entities") or file globs
)
'''


class Options:
    """Everything `ORM.init()` accepts. Build it with `define_config(...)`.

    A plain class rather than a dataclass: `dataclasses` imports `inspect` (with `ast`, `dis`
    and `tokenize`), a cost every script would pay at `import orm`. It keeps the dataclass
    behaviour that matters: keyword (or positional, in field order) construction, `==` by
    value, a readable repr; `merge_config()` is its `replace()`."""

    #: every option, in order, with its default (`entities` defaults to a new empty list)
    FIELDS: tuple[str, ...] = (
        "db_name", "entities", "debug", "allow_global_context", "naming_strategy", "driver",
        "logger", "flush_mode", "timeout", "base_dir", "client_url", "host", "port", "user",
        "password", "schema", "pool_size", "isolation_level", "busy_timeout", "journal_mode",
        "subscribers",
    )

    db_name: str
    entities: list[Any]
    debug: bool | list[str]
    allow_global_context: bool
    naming_strategy: NamingStrategy | type[NamingStrategy]
    driver: str
    logger: Callable[[str], None] | None
    flush_mode: Any
    timeout: float
    #: folder that relative entity globs are resolved against (the config file's folder)
    base_dir: str | None
    #: `postgresql://user:password@host:port/db` or `sqlite:///path/to/file.db`
    client_url: str | None
    host: str | None
    port: int | None
    user: str | None
    password: str | None
    #: the PostgreSQL schema (namespace) holding the tables
    schema: str | None
    pool_size: int
    isolation_level: str
    #: SQLite: milliseconds a statement waits for another connection's lock (None: `timeout`)
    busy_timeout: int | None
    #: SQLite: `pragma journal_mode` set on connect ("wal", "delete", ...; None: the file's)
    journal_mode: str | None
    #: EventSubscriber instances, registered at start-up (see orm.events)
    subscribers: list[Any]

    def __init__(
        self,
        db_name: str = ":memory:",
        entities: list[Any] | None = None,
        debug: bool | list[str] = False,
        allow_global_context: bool = False,
        naming_strategy: NamingStrategy | type[NamingStrategy] = UnderscoreNamingStrategy,
        driver: str = "sqlite",
        logger: Callable[[str], None] | None = None,
        flush_mode: Any = None,
        timeout: float = 5.0,
        base_dir: str | None = None,
        client_url: str | None = None,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        schema: str | None = None,
        pool_size: int = 5,
        isolation_level: str = "read committed",
        busy_timeout: int | None = None,
        journal_mode: str | None = None,
        subscribers: list[Any] | None = None,
    ) -> None:
        self.db_name = db_name
        self.entities = [] if entities is None else entities
        self.debug = debug
        self.allow_global_context = allow_global_context
        self.naming_strategy = naming_strategy
        self.driver = driver
        self.logger = logger
        self.flush_mode = flush_mode
        self.timeout = timeout
        self.base_dir = base_dir
        self.client_url = client_url
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.schema = schema
        self.pool_size = pool_size
        self.isolation_level = isolation_level
        self.busy_timeout = busy_timeout
        self.journal_mode = journal_mode
        self.subscribers = [] if subscribers is None else subscribers

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{name}={'***' if name == 'password' and value else _redacted(value)!r}"
            if name in ("password", "client_url") else f"{name}={value!r}"
            for name, value in self._values().items()
        )
        return f"Options({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment] - mutable, compared by value (as a dataclass)

    def debug_enabled(self, namespace: str) -> bool:
        if self.debug is True:
            return True
        if not self.debug:
            return False
        return namespace in self.debug  # type: ignore[operator]

    def naming(self) -> NamingStrategy:
        strategy = self.naming_strategy
        return strategy() if isinstance(strategy, type) else strategy


_KNOWN = frozenset(Options.FIELDS)


def define_config(**options: Any) -> Options:
    """Validated configuration for `ORM.init()`; an unknown option is a ValidationError."""
    unknown = set(options) - _KNOWN
    if unknown:
        raise ValidationError(
            f"Unknown configuration option(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(_KNOWN))}"
        )
    if options.get("client_url") and "driver" not in options:
        options["driver"] = driver_of_url(options["client_url"])
    opts = Options(**options)
    driver = _DRIVERS.get(str(opts.driver).lower()) if isinstance(opts.driver, str) else None
    if driver is None:
        raise ValidationError(
            f"Unknown driver {opts.driver!r}; known: sqlite, postgresql"
        )
    opts.driver = driver
    if driver == "sqlite" and opts.client_url:
        if driver_of_url(opts.client_url) != "sqlite":
            raise ValidationError(
                f"client_url {_redacted(opts.client_url)!r} is not an SQLite URL "
                f"(sqlite:///path/to/file.db) but driver is 'sqlite'"
            )
        opts.db_name = opts.client_url.split(":", 1)[1].removeprefix("//").removeprefix("/") \
            if opts.client_url.lower().startswith("sqlite:///") else ":memory:"
        opts.client_url = None
    timeout = opts.timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not timeout >= (0 if driver == "sqlite" else 0.001)
        or timeout == float("inf")
    ):
        raise ValidationError(
            f"timeout must be a number of seconds ({'0 or more' if driver == 'sqlite' else 'more than 0'}), not {timeout!r}"
        )
    if driver == "sqlite":
        foreign = [
            name for name in ("host", "port", "user", "password", "schema", "pool_size",
                              "isolation_level")
            if name in options
        ]
        if foreign:
            raise ValidationError(
                f"{', '.join(foreign)} {'applies' if len(foreign) == 1 else 'apply'} to "
                f"PostgreSQL only; this config uses SQLite (db_name={opts.db_name!r}). Set "
                f"client_url='postgresql://...' (or driver='postgresql') to use PostgreSQL."
            )
    if driver == "postgresql":
        if opts.client_url:
            if driver_of_url(opts.client_url) != "postgresql":
                raise ValidationError(
                    f"client_url {_redacted(opts.client_url)!r} is not a PostgreSQL URL "
                    f"(postgresql://user@host:5432/db) but driver is 'postgresql'"
                )
            # `postgres://`, `POSTGRESQL://`, `postgresql+psycopg://`: libpq reads only
            # postgresql:// (and postgres://) in lower case
            opts.client_url = "postgresql://" + opts.client_url.split("://", 1)[1]
        _check_postgresql(opts, "db_name" in options)
        if opts.busy_timeout is not None:
            raise ValidationError(
                "busy_timeout is an SQLite option; PostgreSQL bounds lock waits with its "
                "lock_timeout setting (e.g. client_url "
                "'postgresql://.../app?options=-c%20lock_timeout%3D5s')"
            )
        if opts.journal_mode is not None:
            raise ValidationError(
                "journal_mode is an SQLite option; PostgreSQL keeps its own write-ahead log "
                "(readers never wait for writers there)"
            )
    else:
        from .platforms.sqlite_connection import check_busy_timeout, check_journal_mode

        opts.busy_timeout = check_busy_timeout(opts.busy_timeout)
        opts.journal_mode = check_journal_mode(opts.journal_mode)
    if isinstance(opts.debug, (list, tuple)):
        bad = [ns for ns in opts.debug if ns not in DEBUG_NAMESPACES]
        if bad:
            raise ValidationError(
                f"Unknown debug namespace(s) {bad}; known: {', '.join(DEBUG_NAMESPACES)}"
            )
    opts.db_name = _fspath(opts.db_name)
    if not isinstance(opts.db_name, str) and not (driver == "postgresql" and opts.db_name is None):
        raise ValidationError(
            f"db_name must be a file name (str or Path) or ':memory:', not {opts.db_name!r}"
        )
    opts.base_dir = _fspath(opts.base_dir)
    opts.entities = _entity_list(opts.entities)
    if not isinstance(opts.subscribers, (list, tuple)):
        raise ValidationError(
            f"subscribers must be a list of EventSubscriber instances, not "
            f"{opts.subscribers!r:.80}"
        )
    opts.subscribers = list(opts.subscribers)
    return opts


_DRIVERS = {
    "sqlite": "sqlite", "sqlitedriver": "sqlite", "sqlite3": "sqlite",
    "postgresql": "postgresql", "postgres": "postgresql", "postgresqldriver": "postgresql",
    "pg": "postgresql",
}


def driver_of_url(url: Any) -> str:
    """`postgresql://...` (or `postgres://`) is PostgreSQL, `sqlite:///path` SQLite."""
    if not isinstance(url, str) or "://" not in url:
        raise ValidationError(
            f"client_url must be a URL such as postgresql://user@host:5432/db or "
            f"sqlite:///path/to/file.db, not {_redacted(url)!r}"
        )
    scheme = url.split("://", 1)[0].lower().split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise ValidationError(
        f"client_url {_redacted(url)!r} names an unknown database ({scheme}://); known: "
        f"postgresql://, sqlite:///"
    )


def url_password(url: Any) -> str | None:
    """The password a URL spells (between `user:` and `@`, or a `password=` parameter),
    as written, or None."""
    if not isinstance(url, str) or "://" not in url:
        return None
    import re

    found = re.search(r"(?i)[?&]password=([^&#]*)", url)
    if found and found.group(1):
        return found.group(1)
    rest = url.split("://", 1)[1]
    if "@" in rest:
        credentials = rest.rsplit("@", 1)[0]
        if ":" in credentials:
            return credentials.split(":", 1)[1] or None
    return None


def hide_password(text: str, url: Any) -> str:
    """`text` (an error message, say) with every spelling of the URL's password hidden."""
    password = url_password(url)
    if isinstance(url, str):
        text = text.replace(url, str(_redacted(url)))
    if password:
        from urllib.parse import unquote

        for spelling in {password, unquote(password)}:
            if spelling:
                text = text.replace(spelling, "***")
    return text


def _redacted(url: Any) -> Any:
    """A URL with its password (if any, also a `password=` parameter) replaced by ***, for
    messages."""
    if not isinstance(url, str) or "://" not in url:
        return url
    if "password=" in url.lower():
        import re

        url = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}@{host}"


def _check_postgresql(opts: Options, db_name_given: bool) -> None:
    from .platforms.postgresql_connection import ISOLATION_LEVELS

    if not db_name_given:
        opts.db_name = None  # type: ignore[assignment] - from client_url (or the user's name)
    level = " ".join(str(opts.isolation_level).lower().replace("_", " ").split())
    if level not in ISOLATION_LEVELS:
        raise ValidationError(
            f"isolation_level {opts.isolation_level!r} is not one of "
            f"{', '.join(repr(x) for x in ISOLATION_LEVELS)}"
        )
    opts.isolation_level = level
    size = opts.pool_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValidationError(
            f"pool_size must be a positive whole number of connections, not {size!r}"
        )
    if opts.schema is not None and (not isinstance(opts.schema, str) or not opts.schema):
        raise ValidationError(f"schema must be a schema name, not {opts.schema!r}")
    if opts.port is not None and (
        isinstance(opts.port, bool) or not str(opts.port).isdigit()
        or not 1 <= int(opts.port) <= 65535
    ):
        raise ValidationError(f"port must be a port number (1 to 65535), not {opts.port!r}")


def _entity_list(entities: Any) -> list[Any]:
    """`entities` as a list; a single class, module name or glob is a list of one (a bare
    string must not be split into characters)."""
    if entities is None:
        return []
    if isinstance(entities, (str, type)) or _is_path_like(entities):
        return [entities]
    if not hasattr(entities, "__iter__"):
        return [entities]
    return list(entities)


def _is_path_like(value: Any) -> bool:
    """`isinstance(value, os.PathLike)` without importing `os` (a script that names its
    database by a `str` never needs it): the ABC checks for `__fspath__` on the class."""
    return getattr(type(value), "__fspath__", None) is not None


def _fspath(value: Any) -> Any:
    """`os.fspath` of a path-like value (`pathlib` imported `os` already for a `Path`); any
    other value as it is, for the checks that follow."""
    if _is_path_like(value):
        import os

        return os.fspath(value)
    return value


def merge_config(base: Options, **overrides: Any) -> Options:
    unknown = set(overrides) - _KNOWN
    if unknown:
        raise ValidationError(f"Unknown configuration option(s) {', '.join(sorted(unknown))}")
    return Options(**{**base._values(), **overrides})


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
