"""`ORM`: start-up (discovery, connection, the global EntityManager) and shutdown."""

from __future__ import annotations

import _thread
import sys
from collections.abc import Callable, Iterator

from ._typing import TYPE_CHECKING, contextmanager
from .config import Options, define_config, merge_config
from .connection import Connection
from .entity_manager import EntityManager, flush_mode_of
from .errors import ValidationError
from .metadata.discovery import discover
from .platforms.sqlite import SqlitePlatform
from .platforms.sqlite_connection import SqliteConnection
from .query.sql import SqlBuilder
from .schema.generator import SchemaGenerator

if TYPE_CHECKING:
    import logging
    from typing import Any

    from .events.manager import EventManager
    from .platforms.base import Platform

__all__ = ["ORM"]


# `logging` is imported when logging is configured (`debug=` or `logger=`), not at start-up.


def _callback_handler(callback: Callable[[str], None]) -> logging.Handler:
    """A handler sending log lines to `logger=` from the config (MikroORM's
    `logger: console.log`)."""
    import logging

    class _CallbackHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            callback(record.getMessage())

    return _CallbackHandler(logging.INFO)


def _relation_flush_modules(metadata: Any) -> None:
    """Entities with relations are flushed through the insert ordering (and pivot tables
    through their module): imported here, once their relations are known, rather than by
    the first flush, which would otherwise pay for loading (without cached bytecode,
    compiling) them in the middle of writing. A script without relations never loads
    them (tests/test_startup.py)."""
    from .unit_of_work import commit_order  # noqa: F401

    if metadata.pivots:
        from .unit_of_work import pivots  # noqa: F401


#: held while an ORM creates its EventManager (see `ORM.events`); `_thread` is loaded with
#: the interpreter, where `threading` would be one more module to import
_EVENTS_CREATED = _thread.allocate_lock()


class ORM:
    """The entry point: `ORM.init(config)` or `with ORM.init(...) as orm:`."""

    def __init__(self, config: Options) -> None:
        self.config = config
        self._handler: logging.Handler | None = None
        self._setup_logging()
        self.platform: Platform
        if config.driver == "postgresql":
            from .platforms.postgresql import PostgresPlatform

            self.platform = PostgresPlatform()
        else:
            self.platform = SqlitePlatform()
        try:
            self.metadata = discover(
                config.entities,
                config.naming(),
                config.base_dir,
                log=config.debug_enabled("discovery"),
                platform=self.platform,
            )
            if self.metadata.has_relations:
                _relation_flush_modules(self.metadata)
            self.sql = SqlBuilder(self.platform)
            #: the EventManager (see `events`); None while nothing listens
            self._events: EventManager | None = None
            if config.subscribers or any(meta.hooks for meta in self.metadata):
                events = self.events  # builds the listener tables of the hooks
                for subscriber in config.subscribers:
                    events.register_subscriber(subscriber)
            self.connection = self._connect()
        except BaseException:
            self._teardown_logging()
            raise
        flush_mode = flush_mode_of(config.flush_mode) or "auto"
        self._em = EntityManager(self, is_global=True, flush_mode=flush_mode)
        self.schema = SchemaGenerator(
            self.metadata, self.platform, self.connection, config.naming()
        )
        if config.debug_enabled("info"):
            import logging

            logging.getLogger("orm.info").info(
                "[info] ORM successfully connected to database %s",
                self.connection.describe(),
            )

    @property
    def events(self) -> EventManager:
        """The subscribers and listener tables, shared by every EntityManager of this ORM.
        Created when something listens (a subscriber in the config, a lifecycle hook on an
        entity) or on first use: until then the Unit of Work and transactions see no
        `_events` and skip the event paths, and a script without listeners never imports
        the event machinery."""
        events = self._events
        if events is None:
            from .events.manager import EventManager

            with _EVENTS_CREATED:  # two threads' first use: one manager, or a subscriber is lost
                events = self._events
                if events is None:
                    events = self._events = EventManager(self.metadata)
        return events

    def _connect(self) -> Connection:
        config = self.config
        common: dict[str, Any] = {
            "log_queries": config.debug_enabled("query"),
            "resolve_column": self._resolve_column,
            "timeout": config.timeout,
        }
        if config.driver == "postgresql":
            from .platforms.postgresql_connection import PostgresConnection

            return PostgresConnection(
                self.platform,  # type: ignore[arg-type]
                config.client_url,
                host=config.host,
                port=config.port,
                user=config.user,
                password=config.password,
                db_name=config.db_name,
                schema=config.schema,
                isolation_level=config.isolation_level,
                pool_size=config.pool_size,
                **common,
            )
        return SqliteConnection(
            config.db_name,
            self.platform,
            busy_timeout=config.busy_timeout,
            journal_mode=config.journal_mode,
            **common,
        )

    @classmethod
    def init(cls, config: Options | None = None, **options: Any) -> ORM:
        """Start the ORM from a `define_config()` result, from keyword options, or (with no
        arguments) from the config file found by the search in `orm.config`."""
        if config is None and not options:
            from .config_files import load_config  # the search: see orm.config

            config, _ = load_config()
        elif config is None:
            config = define_config(**options)
        elif options:
            config = merge_config(config, **options)
        return cls(config)

    # -- logging ----------------------------------------------------------------------------
    def _setup_logging(self) -> None:
        cfg = self.config
        namespaces = [ns for ns in ("query", "discovery", "info") if cfg.debug_enabled(ns)]
        if not namespaces and cfg.logger is None:
            return
        import logging

        orm_log = logging.getLogger("orm")
        for ns in namespaces:
            logging.getLogger(f"orm.{ns}").setLevel(logging.INFO)
        if cfg.logger is not None:
            self._handler = _callback_handler(cfg.logger)
        elif not orm_log.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._handler = handler
        if self._handler is not None:
            orm_log.addHandler(self._handler)
            if orm_log.level == logging.NOTSET or orm_log.level > logging.INFO:
                orm_log.setLevel(logging.INFO)

    def _teardown_logging(self) -> None:
        if self._handler is not None:
            import logging

            logging.getLogger("orm").removeHandler(self._handler)
            self._handler = None

    # -- state ------------------------------------------------------------------------------
    def _resolve_column(self, table: str, column: str) -> tuple[str | None, str | None]:
        """The entity and property a table's column maps; a many-to-many's pivot table
        names the owning side's collection (`Post.labels`), whichever of its columns."""
        meta = self.metadata.by_table(table)
        if meta is None:
            for pivot in self.metadata.pivots:
                if pivot.table == table:
                    return pivot.owner_meta.class_name, pivot.prop.name
            return None, None
        for prop in meta.columns:
            if prop.field_name == column:
                return meta.class_name, prop.name
        return meta.class_name, None

    def _check_open(self) -> None:
        if not self.connection.is_open:
            raise ValidationError(
                "This ORM is closed (orm.close() was called); create a new one with ORM.init()."
            )

    @property
    def em(self) -> EntityManager:
        """The global EntityManager: fork it (or use a request context) for real work."""
        self._check_open()
        return self._em

    def is_connected(self) -> bool:
        if not self.connection.is_open:
            return False
        try:
            self.connection.query("select 1")
        except Exception:
            return False
        return True

    def close(self) -> None:
        """Close the connection; using the ORM afterwards raises ValidationError."""
        self.connection.close()
        self._teardown_logging()

    def __enter__(self) -> ORM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def request_context(self) -> Iterator[EntityManager]:
        """`with orm.request_context() as em:` — calls on `orm.em` inside use this fork."""
        from .context import RequestContext  # contextvars: for the scripts that use it

        with RequestContext.enter(self.em) as em:
            yield em
