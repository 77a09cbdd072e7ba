"""Configuration: `define_config()` and the search for a config file.

A config file is a Python module exposing `config` (a `define_config(...)` result). It is
found, in this order, via `--config PATH` / an explicit path, the `ORM_CONFIG` environment
variable, `[tool.orm] config_paths` in the nearest `pyproject.toml`, then `./orm_config.py`
and `./src/orm_config.py`. The first file that exists is loaded; a path given explicitly
(`--config` or `ORM_CONFIG`) must exist, so that a typo never silently selects another
configuration. `ORM.init()` without arguments and the `orm` command line share this search, which lives in
`orm.config_files` and is imported by its first use (this module gives its names).
"""

from __future__ import annotations

from collections.abc import Callable

from ._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

# The search and the loading of config files import `pathlib`, `tomllib`, `traceback`,
# `importlib.util` and `zlib` inside the functions that need them: a script that passes its
# options to `ORM.init(...)` never searches, and must not pay for these imports at start-up.

from .errors import ValidationError, _short
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
            f"{_short(opts.subscribers, 80)}"
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


if TYPE_CHECKING:
    from .config_files import (
        ConfigCandidate,
        ConfigError,
        config_candidates,
        config_search_paths,
        find_pyproject,
        load_config,
        load_config_file,
    )
    from .config_files import (
        describe_exception as describe_exception,
    )
    from .config_files import (
        pyproject_config_paths as pyproject_config_paths,
    )
else:

    def __getattr__(name: str) -> Any:
        """The search for a config file and its loading (orm.config_files) are imported by
        their first use: `ORM.init()` without options, the command line. A script that
        passes its options never needs them (nor pathlib and tomllib, which they use)."""
        if name not in _SEARCH:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from . import config_files

        value = getattr(config_files, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | _SEARCH)


#: the names orm.config_files defines, given by this module on first use
_SEARCH = frozenset(
    [
        "ConfigError",
        "ConfigCandidate",
        "find_pyproject",
        "pyproject_config_paths",
        "config_candidates",
        "config_search_paths",
        "describe_exception",
        "load_config_file",
        "load_config",
    ]
)
