"""The `orm` command line (also `python -m orm`).

    orm debug                       what is installed, which config is used, does it work
    orm schema:create --dump/--run  create the entities' tables
    orm schema:update --dump/--run  apply the difference between the entities and the database
    orm schema:drop   --dump/--run  drop the entities' tables
    orm schema:fresh  --run         drop and recreate them (every row is lost)

Exit codes: 0 success, 1 the command failed (database error, invalid entities), 2 a config or
usage problem (no config file, a config that fails to load, bad arguments). Expected errors are
one line on stderr plus hints, never a Python traceback (`--traceback` shows it).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import logging
import os
import sqlite3
import sys
import textwrap
import traceback
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from ._backend import diff_backend
from .config import (
    CONFIG_TEMPLATE,
    ConfigCandidate,
    ConfigError,
    Options,
    config_candidates,
    find_pyproject,
    load_config,
    load_config_file,
    merge_config,
    pyproject_config_paths,
)
from .errors import ConnectionException, DriverException, MetadataError, ORMError

__all__ = ["main", "COMMANDS"]

#: command -> one-line description (the order of `orm --help`)
COMMANDS: dict[str, str] = {
    "debug": "show versions, the config search, the database connection and the entities",
    "schema:create": "create the entities' tables and indexes",
    "schema:update": "bring the schema up to date with the entities (only the difference)",
    "schema:drop": "drop the entities' tables",
    "schema:fresh": "drop and recreate the entities' tables (every row is lost)",
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """An expected failure: printed as `orm: error: <message>` plus hints, then exit."""

    def __init__(self, message: str, *, code: int = EXIT_FAILED, hints: Sequence[str] = ()):
        super().__init__(message)
        self.code = code
        self.hints = list(hints)


# -- output -------------------------------------------------------------------------------------


class Style:
    """ANSI colours when writing to a terminal (and NO_COLOR is unset), plain text otherwise."""

    def __init__(self, stream: TextIO) -> None:
        isatty = getattr(stream, "isatty", lambda: False)
        self.enabled = bool(isatty()) and not os.environ.get("NO_COLOR") and (
            os.environ.get("TERM") != "dumb"
        )

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def ok(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)

    def warn(self, text: str) -> str:
        return self._wrap("33", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


# -- argument parsing ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n"
                              f"Run `{self.prog} --help` for usage.\n")


_EPILOG = """\
The config file is searched for, in order: --config PATH, the ORM_CONFIG environment variable,
[tool.orm] config_paths in the nearest pyproject.toml, ./orm_config.py, ./src/orm_config.py.
It defines `config = define_config(db_name=..., entities=[...])`.

Exit codes: 0 success, 1 the command failed, 2 a configuration or usage problem.
Start with `{prog} debug`."""


def _fill(text: str) -> str:
    return textwrap.fill(text, width=88)


def _build_parser(prog: str) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", "-c", metavar="PATH", default=argparse.SUPPRESS,
        help="the config file to use (skips the search)",
    )
    common.add_argument(
        "--traceback", action="store_true", default=argparse.SUPPRESS,
        help="show the full Python traceback of an error",
    )
    parser = _Parser(
        prog=prog,
        description="orm: a data-mapper ORM on SQLite and PostgreSQL. Manage the schema of "
                    "your entities and check your setup.",
        epilog=_EPILOG.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", "-v", action="version", version=f"orm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands",
                                parser_class=_Parser)

    debug = sub.add_parser(
        "debug", parents=[common], help=COMMANDS["debug"],
        description=_fill(
            "Show what orm sees: the versions of orm, Python, SQLite, Cython and psycopg, the "
            "active change detector (cython / python), every config path searched, whether "
            "the configuration loads, whether the database opens (on PostgreSQL: the "
            "server's version and the schema's tables), and the entities each `entities` "
            "item discovers. Nothing is written."
        ),
        epilog=_fill("Exit code 0 when everything works, 1 when the database or an entity "
                     "fails, 2 when no configuration loads.") + f"\nExample: {prog} debug",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    debug.set_defaults(handler=_cmd_debug)

    schema_help = {
        "schema:create": (
            "Create the tables and indexes of every discovered entity. Fails if one of the "
            "tables exists already (use schema:update or schema:fresh then).",
            _cmd_schema_create,
        ),
        "schema:update": (
            "Compare the live database with the entities and apply only the difference: "
            "missing tables, new columns, changed indexes; on PostgreSQL other column "
            "changes are `alter table` statements, while a column SQLite cannot alter is "
            "handled by rebuilding its table with the data copied over. One transaction.",
            _cmd_schema_update,
        ),
        "schema:drop": (
            "Drop the tables of the discovered entities that exist (other tables are left "
            "alone).",
            _cmd_schema_drop,
        ),
        "schema:fresh": (
            "Drop the entities' tables and create them again, empty. Every row in them is "
            "lost, so this needs --run; in an interactive terminal it asks for confirmation "
            "unless --yes is given. --dump alone only prints the SQL.",
            _cmd_schema_fresh,
        ),
    }
    for name, (description, handler) in schema_help.items():
        p = sub.add_parser(
            name, parents=[common], help=COMMANDS[name], description=_fill(description),
            epilog=f"Examples:\n  {prog} {name} --dump        print the SQL, change nothing\n"
                   f"  {prog} {name} --run         execute it\n"
                   f"  {prog} {name} --dump --run  both",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--dump", "-d", action="store_true", help="print the SQL")
        p.add_argument("--run", "-r", action="store_true", help="execute the SQL")
        if name == "schema:fresh":
            p.add_argument("--yes", "-y", action="store_true",
                           help="do not ask for confirmation in an interactive terminal")
        p.set_defaults(handler=handler)
    return parser


_GLOBAL_WITH_VALUE = {"--config", "-c"}


def _first_command(argv: Sequence[str]) -> str | None:
    """The first positional argument (the command), skipping global options."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--":
            return None
        if arg in _GLOBAL_WITH_VALUE:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return None


def _unknown_command(command: str, prog: str) -> CLIError:
    hints = []
    prefixed = [c for c in COMMANDS if c.startswith(command.rstrip(":"))]
    close = prefixed or difflib.get_close_matches(command, list(COMMANDS), n=1, cutoff=0.5)
    if len(close) == 1:
        hints.append(f"Did you mean `{prog} {close[0]}`?")
    elif close:
        hints.append(f"Did you mean one of: {', '.join(close)}?")
    hints.append(f"Run `{prog} --help` for usage.")
    return CLIError(
        f"unknown command {command!r}. Valid commands: {', '.join(COMMANDS)}",
        code=EXIT_USAGE, hints=hints,
    )


# -- configuration and the ORM --------------------------------------------------------------


def _load(args: argparse.Namespace) -> tuple[Options, Path]:
    try:
        return load_config(getattr(args, "config", None))
    except ConfigError as exc:
        hints = []
        if exc.__cause__ is not None:
            hints.append("Fix the error in the config file (`--traceback` shows the full "
                         "Python traceback).")
        raise CLIError(str(exc), code=EXIT_USAGE, hints=hints) from exc


def _db_label(db_name: str) -> str:
    if db_name == ":memory:" or db_name.startswith("file:"):
        return db_name
    return f"{db_name} ({Path(db_name).expanduser().resolve()})"


def _open_orm(config: Options) -> Any:
    """`ORM(config)` with the database checked readable (a file that is not a database fails
    here, with its path, rather than at the first statement)."""
    from .core import ORM

    orm = ORM(config)
    try:
        orm.platform.check_readable(orm.connection)
    except DriverException:
        orm.close()
        raise
    return orm


def _where(orm: Any) -> str:
    """The database the messages of the schema commands name: the SQLite file, or the
    PostgreSQL database, server and schema (never the password)."""
    config = orm.config
    if config.driver != "postgresql":
        return _db_label(config.db_name)
    schema = f", schema {config.schema}" if config.schema else ""
    return f"{orm.connection.describe()}{schema}"


_PG_SETTINGS_HINT = (
    "Check the connection settings in the config (client_url, or host, port, user, password, "
    "db_name) and that the PostgreSQL server is running."
)


def _pg_hints(message: str) -> list[str]:
    """The hint after a failed PostgreSQL connection: none when the driver is missing (the
    message says what to install; the settings and the server are not the problem)."""
    from .platforms.postgresql_connection import DRIVER_MISSING

    return [] if message.startswith(DRIVER_MISSING) else [_PG_SETTINGS_HINT]


def _pg_settings(config: Options) -> str:
    """The PostgreSQL settings of a config as one line, the password replaced by ***."""
    from .config import _redacted

    parts = [_redacted(config.client_url)] if config.client_url else []
    for name in ("host", "port", "user", "password", "db_name"):
        value = getattr(config, name)
        if value is not None:
            parts.append(f"{name}={'***' if name == 'password' else value}")
    parts.append(f"schema {config.schema}" if config.schema else "schema from search_path")
    return ", ".join(parts)


def _no_database_yet(config: Options) -> bool:
    if config.driver == "postgresql":
        return False  # a server: nothing is created by connecting
    db_name = config.db_name
    if db_name == ":memory:" or db_name.startswith("file:"):
        return False
    return not Path(db_name).expanduser().exists()


def _live_tables(orm: Any) -> set[str]:
    return orm.platform.live_tables(orm.connection)


# -- schema commands ------------------------------------------------------------------------


def _wrap_sql(orm: Any, sql: str) -> str:
    """The SQL as a script that runs as the ORM runs it (the platform's prologue, such as
    SQLite's foreign keys off so a table rebuild cannot cascade, then one transaction)."""
    return str(orm.platform.ddl_script(sql, orm.config.schema))


def _need_action(args: argparse.Namespace, prog: str) -> None:
    if not args.dump and not args.run:
        raise CLIError(
            f"{args.command} needs --dump (print the SQL) and/or --run (execute it)",
            code=EXIT_USAGE,
            hints=[f"e.g. `{prog} {args.command} --dump` to see what it would do."],
        )


def _schema_command(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    prog: str,
    work: Callable[[Any, argparse.Namespace, TextIO, TextIO, str], int],
) -> int:
    _need_action(args, prog)
    config, _path = _load(args)
    if not args.run and _no_database_yet(config):
        # only printing SQL: do not create the database file as a side effect (a missing
        # database and an empty one have the same schema)
        config = merge_config(config, db_name=":memory:")
    try:
        orm = _open_orm(config)
    except ConnectionException as exc:
        if config.driver != "postgresql":
            raise
        hints = _pg_hints(str(exc))
        if hints:
            hints.append(f"`{prog} debug` checks them.")
        raise CLIError(str(exc), hints=hints) from exc
    try:
        if len(orm.metadata) == 0:
            err.write(
                f"warning: no entities discovered; check `entities` in the config "
                f"(`{prog} debug` shows what each entry found)\n"
            )
        return work(orm, args, out, err, prog)
    finally:
        orm.close()


def _create(orm: Any, args: argparse.Namespace, out: TextIO, err: TextIO, prog: str) -> int:
    sql = orm.schema.get_create_schema_sql()
    if args.dump:
        out.write(_wrap_sql(orm, sql) or "-- no entities, nothing to create\n")
    if args.run:
        tables = [m.table for m in orm.metadata]
        existing = sorted(set(tables) & _live_tables(orm))
        if existing:
            raise CLIError(
                f"cannot create the schema: {_plural(len(existing), 'table')} "
                f"({', '.join(existing)}) already exist in {_where(orm)}",
                hints=[f"`{prog} schema:update --run` applies only the difference; "
                       f"`{prog} schema:fresh --run` drops and recreates (data is lost)."],
            )
        orm.schema.create_schema()
        statements = sql.count(";\n")
        out.write(
            f"Schema created in {_where(orm)}: "
            f"{_plural(len(tables), 'table')}"
            f"{' (' + ', '.join(tables) + ')' if tables else ''}, "
            f"{_plural(statements, 'statement')}.\n"
        )
    return EXIT_OK


def _update(orm: Any, args: argparse.Namespace, out: TextIO, err: TextIO, prog: str) -> int:
    sql = orm.schema.get_update_schema_sql()
    if args.dump:
        out.write(_wrap_sql(orm, sql) or "-- schema is up to date, nothing to do\n")
    if args.run:
        statements = orm.schema.update_schema()
        if statements:
            out.write(
                f"Schema updated in {_where(orm)}: "
                f"{_plural(len(statements), 'statement')} executed.\n"
            )
        else:
            out.write("Schema is up to date, nothing to do.\n")
    return EXIT_OK


def _drop(orm: Any, args: argparse.Namespace, out: TextIO, err: TextIO, prog: str) -> int:
    if args.dump:
        out.write(_wrap_sql(orm, orm.schema.get_drop_schema_sql()) or "-- no entities\n")
    if args.run:
        existing = [m.table for m in reversed(list(orm.metadata)) if m.table in _live_tables(orm)]
        orm.schema.drop_schema()
        if existing:
            out.write(
                f"Schema dropped in {_where(orm)}: "
                f"{_plural(len(existing), 'table')} ({', '.join(existing)}).\n"
            )
        else:
            out.write("Nothing to drop: none of the entities' tables exist.\n")
    return EXIT_OK


def _confirm(question: str, out: TextIO) -> bool:
    out.write(f"{question} [y/N] ")
    out.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        return False
    return answer.strip().lower() in ("y", "yes")


def _interactive(out: TextIO) -> bool:
    try:
        return sys.stdin.isatty() and out.isatty()
    except (AttributeError, ValueError):
        return False


def _fresh(orm: Any, args: argparse.Namespace, out: TextIO, err: TextIO, prog: str) -> int:
    schema = orm.schema
    if args.dump:
        sql = schema.get_drop_schema_sql() + schema.get_create_schema_sql()
        out.write(_wrap_sql(orm, sql) or "-- no entities\n")
    if args.run:
        tables = [m.table for m in orm.metadata]
        existing = sorted(set(tables) & _live_tables(orm))
        if existing and not args.yes and _interactive(out):
            question = (
                f"This drops {_plural(len(existing), 'table')} ({', '.join(existing)}) in "
                f"{_where(orm)} and every row in them. Continue?"
            )
            if not _confirm(question, out):
                err.write("Aborted, nothing changed.\n")
                return EXIT_FAILED
        schema.refresh_database()
        out.write(
            f"Database refreshed in {_where(orm)}: dropped "
            f"{_plural(len(existing), 'table')}, created {_plural(len(tables), 'table')}"
            f"{' (' + ', '.join(tables) + ')' if tables else ''}.\n"
        )
    return EXIT_OK


def _cmd_schema_create(args, out, err, prog):  # type: ignore[no-untyped-def]
    return _schema_command(args, out, err, prog, _create)


def _cmd_schema_update(args, out, err, prog):  # type: ignore[no-untyped-def]
    return _schema_command(args, out, err, prog, _update)


def _cmd_schema_drop(args, out, err, prog):  # type: ignore[no-untyped-def]
    return _schema_command(args, out, err, prog, _drop)


def _cmd_schema_fresh(args, out, err, prog):  # type: ignore[no-untyped-def]
    if not args.run and not args.dump:
        raise CLIError(
            "schema:fresh drops every table of the entities and all their rows: pass --run "
            "to do it",
            code=EXIT_USAGE,
            hints=[f"`{prog} schema:fresh --dump` prints the SQL without running it."],
        )
    return _schema_command(args, out, err, prog, _fresh)


# -- debug ----------------------------------------------------------------------------------


def _backend_line() -> str:
    backend = diff_backend()
    if backend == "cython":
        from . import _diff

        return f"cython (compiled orm._diff, {Path(_diff.__file__).name})"
    forced = os.environ.get("ORM_PURE_PYTHON", "").strip().lower() in {"1", "true", "yes", "on"}
    try:
        compiled = importlib.util.find_spec("orm._diff") is not None
    except (ImportError, ValueError):  # pragma: no cover
        compiled = False
    if forced:
        return "python (pure-Python twin orm._diff_py; ORM_PURE_PYTHON is set)"
    if compiled:
        return "python (pure-Python twin; the compiled orm._diff failed to import)"
    return ("python (pure-Python twin; orm._diff is not compiled: reinstall with a C compiler "
            "and Cython, `pip install -e .`)")


def _psycopg_version() -> str:
    """psycopg's version, read from its installed metadata (importing it is not needed)."""
    from importlib import metadata

    try:
        return metadata.version("psycopg")
    except metadata.PackageNotFoundError:
        return "not installed (needed only for PostgreSQL: pip install 'orm[postgresql]')"


def _cython_version() -> str:
    try:
        import Cython  # type: ignore[import-not-found]
    except ImportError:
        return "not installed (needed only to build orm._diff)"
    return str(getattr(Cython, "__version__", "unknown version"))


def _memory_uri(db_name: str) -> bool:
    query = urllib.parse.parse_qs(db_name.partition("?")[2])
    return query.get("mode") == ["memory"] or db_name.partition("?")[0] in ("file:", "file::memory:")


def _uri_file(db_name: str) -> str:
    """The file a `file:` URI names (`file:app.db?mode=ro`, `file:///abs/app.db`)."""
    path = db_name[len("file:"):].partition("?")[0].partition("#")[0]
    if path.startswith("//"):  # file://host/path: only the local host is valid for SQLite
        path = path[2:]
        path = path[path.find("/"):] if "/" in path else ""
    return urllib.parse.unquote(path)


def _check_database(db_name: str) -> tuple[bool, str, set[str] | None]:
    """Check that the database opens, creating nothing: (ok, detail, live tables or None
    when there is no database file yet). A missing file in a writable folder is fine:
    SQLite creates it on first use, so it is checked by the folder, not by opening it (which
    would create it)."""
    if db_name == ":memory:" or (db_name.startswith("file:") and _memory_uri(db_name)):
        try:
            sqlite3.connect(":memory:").close()
        except sqlite3.Error as exc:  # pragma: no cover - a broken sqlite3 module
            return False, f"Cannot open an in-memory database: {exc}", None
        return True, "in-memory database, nothing stored on disk", set()
    file = _uri_file(db_name) if db_name.startswith("file:") else db_name
    path = Path(file).expanduser().resolve()
    if path.is_dir():
        return False, f"Cannot open database {_db_label(db_name)}: it is a folder", None
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            return False, (f"Cannot open database {_db_label(db_name)}: folder {folder} "
                           f"does not exist"), None
        mode = urllib.parse.parse_qs(db_name.partition("?")[2]).get("mode", [""])[-1]
        if db_name.startswith("file:") and mode in ("ro", "rw"):
            return False, (f"Cannot open database {_db_label(db_name)}: the file {path} does "
                           f"not exist, and mode={mode} opens only an existing file"), None
        if not os.access(folder, os.W_OK | os.X_OK):
            return False, (f"Cannot open database {_db_label(db_name)}: folder {folder} "
                           f"is not writable, so the database file cannot be created"), None
        return True, (f"the file {path} does not exist yet; SQLite creates it on first "
                      f"use"), None
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            rows = con.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return False, f"Cannot open database {_db_label(db_name)}: {exc}", None
    tables = {r[0] for r in rows}
    return True, _plural(len(tables), "table"), tables


def _check_postgresql(config: Options) -> tuple[bool, str, set[str] | None, str | None]:
    """Connect to the PostgreSQL server of a config and read what `debug` shows: (ok,
    detail, the tables of the config's schema, the server's version). Nothing is created."""
    from .core import ORM

    try:
        orm = ORM(merge_config(config, entities=[], debug=False, logger=None, pool_size=1))
    except ORMError as exc:  # ConnectionException, or a ValidationError of the settings
        return False, str(exc), None, None
    try:
        version = str(orm.connection.query("show server_version")[0][0])
        schema = orm.connection.query("select current_schema()")[0][0]
        tables = orm.platform.live_tables(orm.connection, config.schema)
    except ORMError as exc:
        return False, str(exc), None, None
    finally:
        orm.close()
    where = orm.connection.describe()
    if config.schema and schema is None:
        return True, (f"{where}; schema {config.schema} does not exist yet, "
                      f"schema:create creates it"), set(), version
    return True, f"{where}; schema {schema}: {_plural(len(tables), 'table')}", tables, version


def _kind_counts(reports: list[Any]) -> str:
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.kind] = counts.get(r.kind, 0) + 1
    names = {"class": ("class", "classes"), "schema": ("EntitySchema", "EntitySchemas"),
             "module": ("module", "modules"), "path": ("path", "paths")}
    parts = [_plural(n, *names[k]) for k, n in counts.items()]
    return ", ".join(parts)


def _cmd_debug(args: argparse.Namespace, out: TextIO, err: TextIO, prog: str) -> int:
    from .metadata.discovery import discover, inspect_entries

    s = Style(out)
    found, missing = s.ok("(found)"), s.bad("(not found)")
    w = out.write
    hints: list[str] = []
    code = EXIT_OK

    w(s.bold("Current orm CLI configuration") + "\n")
    w(" - versions:\n")
    w(f"   - orm {__version__} ({Path(__file__).resolve().parent})\n")
    w(f"   - Python {sys.version.split()[0]} ({sys.executable})\n")
    w(f"   - SQLite {sqlite3.sqlite_version} (the library of the sqlite3 module)\n")
    w(f"   - Cython {_cython_version()}\n")
    w(f"   - psycopg {_psycopg_version()}\n")
    w(f" - change detector: {_backend_line()}\n")

    # config search
    explicit = getattr(args, "config", None)
    pyproject = find_pyproject()
    candidates: list[ConfigCandidate] = []
    search_error: str | None = None
    if pyproject is not None:
        try:
            n = len(pyproject_config_paths(pyproject))
            what = f"[tool.orm] config_paths: {_plural(n, 'path')}" if n else "no [tool.orm]"
        except ConfigError as exc:
            what = s.bad(str(exc))
        w(f" - pyproject.toml: {pyproject} ({what})\n")
    else:
        w(" - pyproject.toml: not found\n")
    try:
        candidates = config_candidates(explicit)
    except ConfigError as exc:
        search_error = str(exc)
    w(" - searched config paths:\n")
    for cand in candidates:
        source = "" if cand.source == "default" else s.dim(f" [{cand.source}]")
        w(f"   - {cand.path} {found if cand.found else missing}{source}\n")

    config: Options | None = None
    config_path: Path | None = None
    if search_error is not None:
        w(f" - {s.bad('configuration search failed')}: {search_error}\n")
        hints.append("Fix pyproject.toml (see above).")
    else:
        for cand in candidates:
            if cand.found:
                config_path = cand.path.resolve()
                break
            if cand.explicit:
                w(f" - {s.bad('configuration not found')}: {cand.path} (given by "
                  f"{cand.source}) does not exist\n")
                hints.append(f"Point {cand.source} at an existing config file.")
                break
        else:
            w(f" - {s.bad('no configuration found')}\n")
            template = "".join(f"       {line}".rstrip() + "\n"
                               for line in CONFIG_TEMPLATE.splitlines())
            hints.append(
                "Create ./orm_config.py (or pass --config PATH), for example:\n" + template
                + "   then put your @entity() classes in entities/*.py and run "
                  f"`{prog} debug` again."
            )
    if config_path is not None:
        try:
            config = load_config_file(config_path)
        except ConfigError as exc:
            if getattr(args, "traceback", False):
                traceback.print_exception(exc, file=err)
            w(f" - {s.bad('configuration failed to load')}: {exc}\n")
            hints.append(f"Fix the error in {config_path} "
                         f"(`{prog} --traceback debug` shows the full traceback).")
        else:
            w(f" - configuration loaded from {config_path} {s.ok('(ok)')}\n")
    if config is None:
        code = EXIT_USAGE
        _write_hints(w, s, hints)
        return code

    # database
    if config.driver == "postgresql":
        w(f" - database: PostgreSQL, {_pg_settings(config)}\n")
        db_ok, db_message, live, server = _check_postgresql(config)
        if server is not None:
            w(f" - server: PostgreSQL {server}\n")
    else:
        w(f" - database: {_db_label(config.db_name)}\n")
        db_ok, db_message, live = _check_database(config.db_name)
    if db_ok:
        w(f" - {s.ok('database connection successful')} ({db_message})\n")
    else:
        w(f" - {s.bad('database connection failed')}: {db_message}\n")
        if config.driver == "postgresql":
            hints += _pg_hints(db_message)
        else:
            hints.append(
                "Fix `db_name` in the config: the folder must exist and be writable, and an "
                "existing file must be an SQLite database.")
        code = EXIT_FAILED

    # entities
    entries = list(config.entities)
    reports = inspect_entries(entries, config.base_dir)
    if entries:
        w(f" - entities: {_plural(len(entries), 'entry', 'entries')} "
          f"({_kind_counts(reports)}), globs relative to {config.base_dir}\n")
    else:
        w(f" - entities: {s.warn('the `entities` list is empty')}\n")
    classes: list[type] = []
    for r in reports:
        names = ", ".join(c.__name__ for c in r.entities)
        if r.error is not None:
            w(f"   - {r.target} {s.bad('(error)')}: {r.error}\n")
            code = EXIT_FAILED
        elif r.kind == "path" and not r.files:
            w(f"   - {r.target} {missing}\n")
            hints.append(f"No Python file matches {r.entry!r} (relative to {config.base_dir}); "
                         f"fix the glob in `entities`.")
        elif r.kind == "path":
            w(f"   - {r.target} {found}: {_plural(len(r.files), 'file')}, "
              f"{names or s.warn('no entities in them')}\n")
        elif r.kind == "module":
            w(f"   - {r.target} (module, {_plural(len(r.modules), 'module')} imported): "
              f"{names or s.warn('no entities in it')}\n")
        else:
            w(f"   - {names} ({r.kind})\n")
        for cls in r.entities:
            if cls not in classes:
                classes.append(cls)

    metas = None
    try:
        metas = discover(classes, config.naming(), config.base_dir)
    except MetadataError as exc:
        w(f" - {s.bad('entity metadata is invalid')}: {exc}\n")
        hints.append("Fix the entity definition named above.")
        code = EXIT_FAILED
    if any(r.error for r in reports):
        hints.append("Fix the entity module or file named above.")
    if metas is not None:
        if len(metas) == 0 and any(r.error for r in reports):
            w(f" - {s.bad('no entities discovered')} (see the errors above)\n")
        elif len(metas) == 0:
            w(f" - {s.warn('no entities discovered')}\n")
            hints.append(
                "Add your entities to `entities` in "
                f"{config_path}: classes, dotted modules (\"app.entities\") or globs "
                f"(\"entities/*.py\")."
            )
        else:
            w(f" - discovered {_plural(len(metas), 'entity', 'entities')}:\n")
            for meta in metas:
                state = ""
                if live is not None:
                    state = " " + (s.ok("(table exists)") if meta.table in live
                                   else s.warn("(table missing)"))
                w(f"   - {meta.class_name} -> table {meta.table}{state}\n")
            if db_ok and code == EXIT_OK:
                _schema_status(config, classes, live, w, s, hints, prog)
    _write_hints(w, s, hints)
    return code


def _schema_status(config: Options, classes: list[type], live: set[str] | None,
                   w: Callable[[str], Any], s: Style, hints: list[str], prog: str) -> None:
    if live is None:
        w(" - schema: the database does not exist yet\n")
        hints.append(f"Create the database and its tables: `{prog} schema:create --run`.")
        return
    if config.driver != "postgresql" and config.db_name == ":memory:":
        w(" - schema: in-memory database, create it in code with orm.schema.create_schema()\n")
        return
    try:
        orm = _open_orm(merge_config(config, entities=classes, debug=False, logger=None))
        try:
            pending = orm.schema.get_update_schema_sql().count(";\n")
        finally:
            orm.close()
    except ORMError as exc:
        w(f" - schema: {s.bad('could not be compared')}: {exc}\n")
        return
    if pending == 0:
        w(f" - schema: {s.ok('up to date')}\n")
    elif not live:
        w(f" - schema: {s.warn('no tables yet')}\n")
        hints.append(f"Create the tables: `{prog} schema:create --run`.")
    else:
        todo = f"out of date, {_plural(pending, 'statement')} to apply"
        w(f" - schema: {s.warn(todo)}\n")
        hints.append(f"See the changes with `{prog} schema:update --dump`, apply them with "
                     f"`{prog} schema:update --run`.")


def _write_hints(w: Callable[[str], Any], s: Style, hints: list[str]) -> None:
    if not hints:
        return
    w("\n" + s.bold("Next steps:") + "\n")
    for hint in hints:
        w(f" - {hint}\n")


# -- main -----------------------------------------------------------------------------------


def _report(exc: BaseException, message: str, code: int, hints: Sequence[str], prog: str,
            err: TextIO, show_traceback: bool) -> int:
    if show_traceback:
        traceback.print_exception(exc, file=err)
    lines = message.rstrip().splitlines() or [type(exc).__name__]
    err.write(f"{prog}: error: {lines[0]}\n")
    for line in lines[1:]:
        err.write(f"{line}\n")
    for hint in hints:
        err.write(f"hint: {hint}\n")
    return code


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or "orm"
    out, err = sys.stdout, sys.stderr
    show_traceback = "--traceback" in argv
    # as `python -m` does: the project's own modules (config neighbours, `entities` given as
    # dotted names) are importable from the current directory
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)

    # the query log of a config with `debug=True` goes to stderr: stdout carries the SQL of
    # --dump, which must stay a clean script
    log_handler = logging.StreamHandler(err)
    log_handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("orm").addHandler(log_handler)
    try:
        return _main(argv, prog, out, err, show_traceback)
    finally:
        logging.getLogger("orm").removeHandler(log_handler)


def _main(argv: list[str], prog: str, out: TextIO, err: TextIO, show_traceback: bool) -> int:
    parser = _build_parser(prog)
    command = _first_command(argv)
    if command is not None and command not in COMMANDS:
        exc = _unknown_command(command, prog)
        return _report(exc, str(exc), exc.code, exc.hints, prog, err, False)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(err)
        err.write(f"\n{prog}: error: no command given; choose one of: {', '.join(COMMANDS)}\n")
        return EXIT_USAGE
    try:
        return int(args.handler(args, out, err, prog))
    except CLIError as exc:
        return _report(exc, str(exc), exc.code, exc.hints, prog, err, show_traceback)
    except ConfigError as exc:
        return _report(exc, str(exc), EXIT_USAGE, [], prog, err, show_traceback)
    except ConnectionException as exc:
        return _report(exc, str(exc), EXIT_FAILED,
                       ["Check `db_name` in the config (and that its folder exists)."],
                       prog, err, show_traceback)
    except MetadataError as exc:
        return _report(exc, str(exc), EXIT_FAILED,
                       [f"`{prog} debug` shows what each `entities` item discovers."],
                       prog, err, show_traceback)
    except DriverException as exc:
        message = str(exc)
        if exc.sql and exc.sql not in message:
            message += f"\nSQL: {exc.sql}"
        return _report(exc, message, EXIT_FAILED, [], prog, err, show_traceback)
    except ORMError as exc:
        return _report(exc, f"{type(exc).__name__}: {exc}", EXIT_FAILED, [], prog, err,
                       show_traceback)
    except KeyboardInterrupt:
        err.write("\nInterrupted.\n")
        return 130
    except BrokenPipeError:  # `orm schema:create --dump | head`
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover
            pass
        return EXIT_OK
