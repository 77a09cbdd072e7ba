"""The `orm` command line, run as a subprocess in temporary project folders."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import orm
from tests.databases import PG_SCHEMA, PG_URL, pg_options

COMMANDS = ["debug", "schema:create", "schema:update", "schema:drop", "schema:fresh"]

BOOK = """\
from orm import PrimaryKey, entity


@entity()
class Book:
    id: int = PrimaryKey()
    title: str
"""

AUTHOR = """\
from orm import PrimaryKey, Property, entity


@entity()
class Author:
    id: int = PrimaryKey()
    name: str
    email: str = Property(unique=True)
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_source(db_name: str = "app.db", entities: str = '["entities/*.py"]',
                  head: str = "") -> str:
    return (
        f"{head}from orm import define_config\n\n"
        f"config = define_config(db_name={db_name!r}, entities={entities})\n"
    )


def run(cwd: Path, *args: str, env: dict[str, str] | None = None,
        exe: list[str] | None = None, stdin: int | None = subprocess.DEVNULL,
        ) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("ORM_CONFIG", "ORM_PURE_PYTHON")}
    full_env["NO_COLOR"] = "1"
    # the child imports the same `orm` as this process (a relative PYTHONPATH=src would not
    # resolve from the project folder, and another installed copy would be tested instead)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(orm.__file__).resolve().parent.parent), *filter(None, [
            os.environ.get("PYTHONPATH")])]
    )
    full_env.update(env or {})
    return subprocess.run(
        [*(exe or [sys.executable, "-m", "orm"]), *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60, stdin=stdin,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout


def tables(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An empty project folder; its pyproject.toml (no [tool.orm]) stops the upward search
    for one, so that nothing outside the folder can be found."""
    write(tmp_path / "pyproject.toml", '[project]\nname = "demo"\n')
    return tmp_path


@pytest.fixture
def project(bare: Path) -> Path:
    """A project with `orm_config.py` and two entity files found by a glob."""
    write(bare / "orm_config.py", config_source())
    write(bare / "entities" / "book.py", BOOK)
    write(bare / "entities" / "author.py", AUTHOR)
    return bare


class Database:
    """The database a project's config names: the SQLite file `app.db` in the project, or
    (with ORM_TEST_PG_URL) a PostgreSQL schema of this test's own, dropped at the end: the
    CLI reports the tables of the whole schema, so it must hold only this test's."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.file = folder / "app.db"
        self.schema = f"{PG_SCHEMA}_cli_{uuid.uuid4().hex[:8]}"

    def q(self, name: str) -> str:
        return f"`{name}`" if self.kind == "sqlite" else f'"{name}"'

    def config_source(self, entities: str = '["entities/*.py"]', head: str = "") -> str:
        if self.kind == "sqlite":
            return config_source("app.db", entities, head)
        url = pg_options()["client_url"]
        return (
            f"{head}from orm import define_config\n\n"
            f"config = define_config(client_url={url!r}, schema={self.schema!r}, "
            f"entities={entities})\n"
        )

    def _pg(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(PG_URL, autocommit=True)

    def tables(self) -> set[str]:
        if self.kind == "sqlite":
            return tables(self.file)
        with self._pg() as conn:
            found = conn.execute(
                "select table_name from information_schema.tables where table_schema = %s",
                (self.schema,),
            ).fetchall()
        return {r[0] for r in found}

    def execute(self, sql: str) -> None:
        """Run a statement (written with backticks) outside the ORM, committed."""
        if self.kind == "sqlite":
            con = sqlite3.connect(self.file)
            con.execute(sql)
            con.commit()
            con.close()
            return
        with self._pg() as conn:
            conn.execute(f'set search_path = "{self.schema}"')
            conn.execute(sql.replace("`", '"'))

    def count(self, table: str) -> int:
        if self.kind == "sqlite":
            con = sqlite3.connect(self.file)
            try:
                return int(con.execute(f"select count(*) from {table}").fetchone()[0])
            finally:
                con.close()
        with self._pg() as conn:
            row = conn.execute(f'select count(*) from "{self.schema}"."{table}"').fetchone()
        return int(row[0])

    def connection_ok(self, tables: int) -> str:
        """`orm debug`'s connection line for a database holding that many tables."""
        if self.kind == "sqlite":
            return f"database connection successful ({tables} tables)"
        host = re.search(r"@([^/:]+):(\d+)/(\w+)", PG_URL or "")
        assert host is not None
        return (
            f"database connection successful (PostgreSQL database {host.group(3)!r} at "
            f"{host.group(1)}:{host.group(2)}; schema {self.schema}: {tables} tables)"
        )

    def drop(self) -> None:
        if self.kind == "postgresql":
            with self._pg() as conn:
                conn.execute(f'drop schema if exists "{self.schema}" cascade')


@pytest.fixture
def db(database: str, bare: Path):  # type: ignore[no-untyped-def]
    target = Database(database, bare)
    yield target
    target.drop()


@pytest.fixture
def dbproject(bare: Path, db: Database) -> Path:
    """`project` on the test's database (SQLite, and PostgreSQL when ORM_TEST_PG_URL is
    set)."""
    write(bare / "orm_config.py", db.config_source())
    write(bare / "entities" / "book.py", BOOK)
    write(bare / "entities" / "author.py", AUTHOR)
    return bare


PG_ONLY = pytest.mark.parametrize("database", [pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="PostgreSQL only, and ORM_TEST_PG_URL is not set"))], indirect=True)


# -- help, version, usage -----------------------------------------------------------------------


def test_help_lists_every_command_and_the_config_search(bare: Path) -> None:
    result = run(bare, "--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert "ORM_CONFIG" in result.stdout and "orm_config.py" in result.stdout
    assert "--config" in result.stdout and "--version" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(bare: Path, command: str) -> None:
    result = run(bare, command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"python -m orm {command}" in result.stdout.splitlines()[0]
    assert "--config" in result.stdout
    if command != "debug":
        assert "--dump" in result.stdout and "--run" in result.stdout
    assert not (bare / "app.db").exists()


def test_version(bare: Path) -> None:
    result = run(bare, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"orm {orm.__version__}"


def test_unknown_command_lists_the_valid_ones(bare: Path) -> None:
    result = run(bare, "schema:craete")
    assert result.returncode == 2
    assert "unknown command 'schema:craete'" in result.stderr
    for command in COMMANDS:
        assert command in result.stderr
    assert "Did you mean `python -m orm schema:create`?" in result.stderr
    assert_no_traceback(result)


def test_no_command_prints_usage(bare: Path) -> None:
    result = run(bare)
    assert result.returncode == 2
    assert "usage:" in result.stderr and "no command given" in result.stderr


def test_unknown_option_is_a_usage_error(project: Path) -> None:
    result = run(project, "schema:create", "--frobnicate")
    assert result.returncode == 2
    assert "unrecognized arguments: --frobnicate" in result.stderr


@pytest.mark.parametrize("command", ["schema:create", "schema:update", "schema:drop"])
def test_schema_commands_need_dump_or_run(project: Path, command: str) -> None:
    result = run(project, command)
    assert result.returncode == 2
    assert "needs --dump" in result.stderr and "--run" in result.stderr
    assert not (project / "app.db").exists()


def test_console_script(project: Path) -> None:
    script = Path(sys.executable).parent / ("orm.exe" if os.name == "nt" else "orm")
    if not script.exists():
        pytest.skip("the `orm` console script is not installed next to this Python")
    version = run(project, "--version", exe=[str(script)])
    assert version.returncode == 0 and version.stdout.strip() == f"orm {orm.__version__}"
    debug = run(project, "debug", exe=[str(script)])
    assert debug.returncode == 0, debug.stdout + debug.stderr
    assert "Book -> table book" in debug.stdout
    assert "Next steps" in debug.stdout and "orm schema:create --run" in debug.stdout


# -- debug ----------------------------------------------------------------------------------


def test_debug_in_an_empty_folder_says_what_to_do(bare: Path) -> None:
    result = run(bare, "debug")
    assert result.returncode == 2
    out = result.stdout
    assert f"{bare / 'orm_config.py'} (not found)" in out
    assert f"{bare / 'src' / 'orm_config.py'} (not found)" in out
    assert "no configuration found" in out
    assert "Create ./orm_config.py" in out and "define_config(" in out
    assert_no_traceback(result)


def test_debug_reports_versions_backend_config_database_and_entities(project: Path) -> None:
    write(project / "extra.py", """\
        from orm import PrimaryKey, entity


        @entity()
        class Tag:
            id: int = PrimaryKey()
            label: str
        """)
    write(project / "app" / "__init__.py", "")
    write(project / "app" / "modules" / "__init__.py", "")
    write(project / "app" / "modules" / "shop" / "__init__.py", "")
    write(project / "app" / "modules" / "shop" / "order.py", """\
        from orm import PrimaryKey, entity


        @entity()
        class Order:
            id: int = PrimaryKey()
            total: float
        """)
    write(project / "orm_config.py", config_source(
        entities='[Tag, "app.modules", "entities/*.py", "models/**/*.py"]',
        head="from extra import Tag\n",
    ))
    result = run(project, "debug")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"orm {orm.__version__}" in out
    assert f"Python {sys.version.split()[0]}" in out
    assert f"SQLite {sqlite3.sqlite_version}" in out
    try:
        import Cython
    except ImportError:
        assert "Cython not installed" in out
    else:
        assert f"Cython {Cython.__version__}" in out
    # run() clears ORM_PURE_PYTHON: the child loads the compiled core whenever it is built
    compiled = importlib.util.find_spec("orm._diff") is not None
    assert f"change detector: {'cython' if compiled else 'python'}" in out
    assert f"{project / 'orm_config.py'} (found)" in out
    assert f"{project / 'src' / 'orm_config.py'} (not found)" in out
    assert f"configuration loaded from {project / 'orm_config.py'}" in out
    assert f"database: app.db ({project / 'app.db'})" in out
    assert "does not exist yet" in out
    assert "Tag (class)" in out
    assert re.search(r"app\.modules \(module, 3 modules imported\): Order", out)
    assert re.search(r"entities/\*\.py \(found\): 2 files, Author, Book", out)
    assert f"{project / 'models' / '**' / '*.py'} (not found)" in out
    for name in ("Tag", "Order", "Author", "Book"):
        assert out.count(f"   - {name} -> table") == 1
    assert "schema:create --run" in out
    assert not (project / "app.db").exists(), "debug must not create the database"


def test_debug_shows_the_python_backend_when_forced(project: Path) -> None:
    result = run(project, "debug", env={"ORM_PURE_PYTHON": "1"})
    assert result.returncode == 0
    assert "change detector: python" in result.stdout
    assert "ORM_PURE_PYTHON" in result.stdout


def test_debug_reports_the_schema_state(dbproject: Path, db: Database) -> None:
    out = run(dbproject, "debug").stdout
    # an SQLite file that does not exist yet has no tables to compare with
    state = " (table missing)" if db.kind == "postgresql" else ""
    assert f"Book -> table book{state}\n" in out
    assert run(dbproject, "schema:create", "--run").returncode == 0
    out = run(dbproject, "debug").stdout
    assert connection_line(out) == db.connection_ok(2)
    assert "Book -> table book (table exists)" in out
    assert "schema: up to date" in out
    write(dbproject / "entities" / "book.py", BOOK + "    pages: int | None = None\n")
    out = run(dbproject, "debug").stdout
    assert "schema: out of date, 1 statement to apply" in out
    assert "schema:update --dump" in out


def connection_line(out: str) -> str:
    """The one line of `orm debug` that reports the database connection (SPEC section 8)."""
    lines = [line for line in out.splitlines() if "database connection" in line]
    assert len(lines) == 1, out
    return lines[0].removeprefix(" - ")


def test_debug_connection_line_for_an_existing_database(project: Path) -> None:
    assert run(project, "schema:create", "--run").returncode == 0
    result = run(project, "debug")
    assert result.returncode == 0, result.stdout
    assert connection_line(result.stdout) == "database connection successful (2 tables)"


def test_debug_connection_line_for_a_database_not_created_yet(project: Path) -> None:
    result = run(project, "debug")
    assert result.returncode == 0, result.stdout
    assert connection_line(result.stdout) == (
        f"database connection successful (the file {project / 'app.db'} does not exist yet; "
        f"SQLite creates it on first use)"
    )
    assert "schema: the database does not exist yet" in result.stdout
    assert "schema:create --run" in result.stdout
    assert not (project / "app.db").exists(), "debug must not create the database"


def test_debug_connection_line_for_an_in_memory_database(project: Path) -> None:
    write(project / "orm_config.py", config_source(db_name=":memory:"))
    result = run(project, "debug")
    assert result.returncode == 0, result.stdout
    assert connection_line(result.stdout) == (
        "database connection successful (in-memory database, nothing stored on disk)"
    )


def test_debug_connection_line_for_a_file_uri(project: Path) -> None:
    assert run(project, "schema:create", "--run").returncode == 0
    write(project / "orm_config.py", config_source(db_name="file:app.db?mode=rw"))
    assert connection_line(run(project, "debug").stdout) == (
        "database connection successful (2 tables)"
    )
    write(project / "orm_config.py", config_source(db_name="file:new.db"))
    assert "does not exist yet" in connection_line(run(project, "debug").stdout)
    assert not (project / "new.db").exists()


@pytest.mark.parametrize(
    ("db_name", "reason"),
    [
        ("data", "it is a folder"),
        ("notes.txt/app.db", "folder {project}/notes.txt does not exist"),
        ("notes.txt", "file is not a database"),
        ("file:nope.db?mode=ro", "mode=ro opens only an existing file"),
    ],
)
def test_debug_connection_line_for_a_database_that_cannot_open(
    project: Path, db_name: str, reason: str
) -> None:
    (project / "data").mkdir()
    (project / "notes.txt").write_text("not a database, " * 40)
    write(project / "orm_config.py", config_source(db_name=db_name))
    result = run(project, "debug")
    assert result.returncode == 1
    line = connection_line(result.stdout)
    label = db_name if db_name.startswith("file:") else f"{db_name} ({project / db_name})"
    assert line.startswith(f"database connection failed: Cannot open database {label}: ")
    assert line.endswith(reason.format(project=project))
    assert "Fix `db_name` in the config" in result.stdout
    assert (project / "notes.txt").read_text() == "not a database, " * 40
    assert_no_traceback(result)


def test_debug_with_a_glob_that_matches_nothing_does_not_crash(bare: Path) -> None:
    write(bare / "orm_config.py", config_source(entities='["src/**/*_entity.py"]'))
    result = run(bare, "debug")
    assert result.returncode == 0
    assert f"{bare / 'src' / '**' / '*_entity.py'} (not found)" in result.stdout
    assert "No Python file matches 'src/**/*_entity.py'" in result.stdout
    assert "no entities discovered" in result.stdout
    assert_no_traceback(result)
    dump = run(bare, "schema:create", "--dump")
    assert dump.returncode == 0
    assert "no entities discovered" in dump.stderr


# -- config search ------------------------------------------------------------------------------


def test_no_config_found(bare: Path) -> None:
    result = run(bare, "schema:create", "--dump")
    assert result.returncode == 2
    assert "No ORM configuration found" in result.stderr
    assert f"{bare / 'orm_config.py'} (not found)" in result.stderr
    assert f"{bare / 'src' / 'orm_config.py'} (not found)" in result.stderr
    assert_no_traceback(result)


def test_config_in_src(bare: Path) -> None:
    write(bare / "src" / "orm_config.py", config_source(db_name="from_src.db"))
    result = run(bare, "debug")
    assert f"configuration loaded from {bare / 'src' / 'orm_config.py'}" in result.stdout
    assert "from_src.db" in result.stdout


def test_orm_config_wins_over_src(project: Path) -> None:
    write(project / "src" / "orm_config.py", config_source(db_name="from_src.db"))
    result = run(project, "debug")
    assert f"configuration loaded from {project / 'orm_config.py'}" in result.stdout
    assert f"{project / 'src' / 'orm_config.py'} (found)" in result.stdout


def test_pyproject_config_paths_from_a_subfolder(project: Path) -> None:
    write(project / "pyproject.toml",
          '[project]\nname = "demo"\n\n[tool.orm]\nconfig_paths = ["conf/db.py"]\n')
    write(project / "conf" / "db.py", config_source(db_name="pyproject.db",
                                                    entities='["../entities/*.py"]'))
    (project / "sub").mkdir()
    result = run(project / "sub", "debug")
    assert result.returncode == 0, result.stdout
    assert "[tool.orm] config_paths: 1 path" in result.stdout
    assert f"{project / 'conf' / 'db.py'} (found)" in result.stdout
    assert f"configuration loaded from {project / 'conf' / 'db.py'}" in result.stdout
    assert "Book -> table book" in result.stdout


def test_orm_config_env_wins_over_pyproject_and_defaults(project: Path) -> None:
    write(project / "other.py", config_source(db_name="env.db"))
    result = run(project, "debug", env={"ORM_CONFIG": "other.py"})
    assert f"configuration loaded from {project / 'other.py'}" in result.stdout
    assert f"{project / 'other.py'} (found) [ORM_CONFIG]" in result.stdout


def test_config_option_wins_over_env_before_or_after_the_command(project: Path) -> None:
    write(project / "env.py", config_source(db_name="env.db"))
    write(project / "cli.py", config_source(db_name="cli.db"))
    env = {"ORM_CONFIG": "env.py"}
    for args in (["--config", "cli.py", "schema:create", "--run"],
                 ["schema:create", "--run", "--config", "cli.py"]):
        result = run(project, *args, env=env)
        assert result.returncode == 0, result.stderr
        assert "cli.db" in result.stdout
        assert tables(project / "cli.db") == {"book", "author"}
        (project / "cli.db").unlink()
    assert not (project / "env.db").exists()


def test_missing_explicit_config_is_an_error(project: Path) -> None:
    result = run(project, "--config", "nope.py", "schema:create", "--dump")
    assert result.returncode == 2
    assert f"{project / 'nope.py'} (given by --config) does not exist" in result.stderr
    result = run(project, "debug", env={"ORM_CONFIG": "gone.py"})
    assert result.returncode == 2
    assert "(given by ORM_CONFIG) does not exist" in result.stdout


def test_config_that_raises_on_import(bare: Path) -> None:
    write(bare / "orm_config.py", """\
        from orm import define_config

        settings = {}
        raise RuntimeError("DATABASE_URL is not set")
        """)
    result = run(bare, "schema:update", "--run")
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert str(bare / "orm_config.py") in first
    assert "RuntimeError: DATABASE_URL is not set" in first
    assert "line 4" in first
    assert_no_traceback(result)
    debug = run(bare, "debug")
    assert debug.returncode == 2
    assert "configuration failed to load" in debug.stdout
    assert "RuntimeError: DATABASE_URL is not set" in debug.stdout
    full = run(bare, "--traceback", "schema:update", "--run")
    assert "Traceback" in full.stderr


def test_config_with_an_unknown_option(bare: Path) -> None:
    write(bare / "orm_config.py",
          "from orm import define_config\n\nconfig = define_config(dbname='x.db')\n")
    result = run(bare, "debug")
    assert result.returncode == 2
    assert "Unknown configuration option(s) dbname" in result.stdout


def test_orm_init_without_arguments_uses_the_same_search(project: Path) -> None:
    (project / "sub").mkdir()
    write(project / "pyproject.toml",
          '[project]\nname = "demo"\n\n[tool.orm]\nconfig_paths = ["orm_config.py"]\n')
    code = (
        "from orm import ORM\n"
        "orm = ORM.init()\n"
        "print(sorted(m.class_name for m in orm.metadata), orm.config.db_name)\n"
        "orm.close()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=project / "sub",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['Author', 'Book'] app.db"


# -- entities -------------------------------------------------------------------------------


def test_entity_file_with_a_syntax_error(project: Path) -> None:
    write(project / "entities" / "broken.py", """\
        from orm import PrimaryKey, entity


        @entity()
        class Broken:
            id: int = PrimaryKey(
            name: str
        """)
    result = run(project, "schema:create", "--dump")
    assert result.returncode == 1
    assert f"Syntax error in entity file {project / 'entities' / 'broken.py'}, line 6" \
        in result.stderr
    assert_no_traceback(result)
    debug = run(project, "debug")
    assert debug.returncode == 1
    assert f"{project / 'entities' / 'broken.py'}, line 6" in debug.stdout


def test_entity_module_with_a_syntax_error(project: Path) -> None:
    write(project / "pkg" / "__init__.py", "")
    write(project / "pkg" / "bad.py", "def f(:\n    pass\n")
    write(project / "orm_config.py", config_source(entities='["pkg"]'))
    result = run(project, "schema:create", "--dump")
    assert result.returncode == 1
    assert f"{project / 'pkg' / 'bad.py'}, line 1" in result.stderr
    assert_no_traceback(result)


def test_entity_module_that_does_not_exist(project: Path) -> None:
    write(project / "orm_config.py", config_source(entities='["no_such.entities"]'))
    result = run(project, "schema:create", "--dump")
    assert result.returncode == 1
    assert "Entity module 'no_such.entities' not found" in result.stderr
    assert_no_traceback(result)


def test_invalid_entity_definition(project: Path) -> None:
    write(project / "entities" / "nokey.py", """\
        from orm import entity


        @entity()
        class NoKey:
            name: str
        """)
    result = run(project, "schema:create", "--run")
    assert result.returncode == 1
    assert "Entity NoKey has no primary key" in result.stderr
    assert_no_traceback(result)


def test_folder_discovery_registers_each_entity_once(dbproject: Path, db: Database) -> None:
    project = dbproject
    write(project / "src" / "app" / "__init__.py", "")
    write(project / "src" / "app" / "catalog" / "__init__.py", "")
    write(project / "src" / "app" / "catalog" / "shelf_entity.py", """\
        from orm import PrimaryKey, entity


        @entity()
        class Shelf:
            id: int = PrimaryKey()
            label: str
        """)
    write(project / "src" / "app" / "catalog" / "helpers.py", "VALUE = 1\n")
    write(project / "orm_config.py", db.config_source(
        entities='[Book, "entities", "entities/*.py", "src/**/*_entity.py", "src/app"]',
        head="from entities.book import Book\n",
    ))
    result = run(project, "schema:create", "--run")
    assert result.returncode == 0, result.stderr
    assert db.tables() == {"book", "author", "shelf"}
    debug = run(project, "debug").stdout
    assert "discovered 3 entities" in debug
    assert re.search(r"src/\*\*/\*_entity\.py \(found\): 1 file, Shelf", debug)


# -- database -------------------------------------------------------------------------------


def test_database_in_a_missing_folder(project: Path) -> None:
    write(project / "orm_config.py", config_source(db_name="data/missing/app.db"))
    result = run(project, "schema:create", "--run")
    assert result.returncode == 1
    assert "Cannot open database 'data/missing/app.db'" in result.stderr
    assert f"{project / 'data' / 'missing'}' does not exist" in result.stderr
    assert_no_traceback(result)
    debug = run(project, "debug")
    assert debug.returncode == 1
    assert "database connection failed" in debug.stdout
    assert f"folder {project / 'data' / 'missing'} does not exist" in debug.stdout


def test_database_file_that_is_not_a_database(project: Path) -> None:
    (project / "app.db").write_text("this is not a database, " * 20)
    result = run(project, "schema:update", "--run")
    assert result.returncode == 1
    assert f"Cannot open database 'app.db' ({project / 'app.db'})" in result.stderr
    assert "file is not a database" in result.stderr
    assert "point `db_name` at an SQLite database file" in result.stderr
    assert_no_traceback(result)
    debug = run(project, "debug")
    assert debug.returncode == 1
    assert "file is not a database" in debug.stdout


# -- schema commands --------------------------------------------------------------------------


def test_schema_create(dbproject: Path, db: Database) -> None:
    project = dbproject
    dump = run(project, "schema:create", "--dump")
    assert dump.returncode == 0, dump.stderr
    q = db.q
    assert f"create table {q('book')}" in dump.stdout
    assert f"create table {q('author')}" in dump.stdout
    assert f"create unique index {q('author_email_unique')}" in dump.stdout
    if db.kind == "sqlite":
        assert dump.stdout.startswith("pragma foreign_keys = off;\nbegin;\n")
        assert not db.file.exists(), "--dump alone must not create the database"
        # the dump is a script that builds the schema
        con = sqlite3.connect(":memory:")
        con.executescript(dump.stdout)
        names = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        assert names - {"sqlite_sequence"} == {"book", "author"}
    else:
        assert dump.stdout.startswith(
            f'begin;\nset local timezone to \'UTC\';\nset local search_path to "{db.schema}";\n'
            f'create schema if not exists "{db.schema}";\n'
        )
        assert 'create table "book" ("id" bigint generated by default as identity not null ' \
            'primary key, "title" text not null);' in dump.stdout
        assert dump.stdout.endswith("commit;\n") and "pragma" not in dump.stdout
        assert db.tables() == set(), "--dump alone must not create the schema"
        # the dump is a script that builds the schema (as psql would run it)
        with db._pg() as conn:
            conn.execute(dump.stdout)
        assert db.tables() == {"book", "author"}
        db.drop()

    created = run(project, "schema:create", "--run")
    assert created.returncode == 0, created.stderr
    assert "Schema created" in created.stdout and "2 tables" in created.stdout
    assert db.tables() == {"book", "author"}

    again = run(project, "schema:create", "--run")
    assert again.returncode == 1
    assert "already exist" in again.stderr and "schema:update" in again.stderr
    assert_no_traceback(again)


def test_schema_update(dbproject: Path, db: Database) -> None:
    project, q = dbproject, db.q
    write(project / "entities" / "author.py", "")
    assert run(project, "schema:create", "--run").returncode == 0
    assert db.tables() == {"book"}
    write(project / "entities" / "author.py", AUTHOR)
    write(project / "entities" / "book.py", BOOK + "    pages: int | None = None\n")

    dump = run(project, "schema:update", "--dump")
    assert dump.returncode == 0
    int_type = "integer" if db.kind == "sqlite" else "bigint"
    assert f"alter table {q('book')} add column {q('pages')} {int_type} null" in dump.stdout
    assert f"create table {q('author')}" in dump.stdout
    assert dump.stdout.startswith("pragma foreign_keys = off;\nbegin;\n" if db.kind == "sqlite"
                                  else f'begin;\nset local timezone to \'UTC\';\nset local search_path to "{db.schema}";\n')
    assert db.tables() == {"book"}

    both = run(project, "schema:update", "--dump", "--run")
    assert both.returncode == 0
    assert f"alter table {q('book')}" in both.stdout and "Schema updated" in both.stdout
    assert db.tables() == {"book", "author"}

    same = run(project, "schema:update", "--dump", "--run")
    assert "-- schema is up to date" in same.stdout
    assert "Schema is up to date, nothing to do." in same.stdout


def test_schema_update_adds_a_foreign_key(dbproject: Path, db: Database) -> None:
    """A relation added to an entity: the dump shows the FK column with its constraint
    (its target named by a string annotation, defined in another file), the run applies it
    (SQLite: `add column ... references`; PostgreSQL: the same, constraint included)."""
    project, q = dbproject, db.q
    assert run(project, "schema:create", "--run").returncode == 0
    write(project / "entities" / "book.py", (
        "from __future__ import annotations\n\n"
        "from orm import ManyToOne, PrimaryKey, entity\n\n\n"
        "@entity()\nclass Book:\n    id: int = PrimaryKey()\n    title: str\n"
        "    author: Author | None = ManyToOne(nullable=True, on_delete='set null')\n"
    ))
    dump = run(project, "schema:update", "--dump")
    assert dump.returncode == 0, dump.stderr
    int_type = "integer" if db.kind == "sqlite" else "bigint"
    assert (
        f"alter table {q('book')} add column {q('author_id')} {int_type} null references "
        f"{q('author')} ({q('id')}) on update cascade on delete set null"
    ) in dump.stdout
    assert f"create index {q('book_author_id_index')}" in dump.stdout
    ran = run(project, "schema:update", "--run")
    assert ran.returncode == 0, ran.stderr
    same = run(project, "schema:update", "--dump")
    assert "-- schema is up to date" in same.stdout


def test_schema_drop(dbproject: Path, db: Database) -> None:
    project = dbproject
    assert run(project, "schema:create", "--run").returncode == 0
    db.execute("create table keep_me (x int)")
    dump = run(project, "schema:drop", "--dump")
    assert f"drop table if exists {db.q('book')}" in dump.stdout
    assert db.tables() == {"book", "author", "keep_me"}
    dropped = run(project, "schema:drop", "--run")
    assert dropped.returncode == 0
    assert "Schema dropped" in dropped.stdout and "2 tables" in dropped.stdout
    assert db.tables() == {"keep_me"}
    nothing = run(project, "schema:drop", "--run")
    assert nothing.returncode == 0
    assert "Nothing to drop" in nothing.stdout


def test_schema_fresh(dbproject: Path, db: Database) -> None:
    project = dbproject
    assert run(project, "schema:create", "--run").returncode == 0
    db.execute("insert into book (title) values ('Dune')")

    refused = run(project, "schema:fresh")
    assert refused.returncode == 2
    assert "pass --run" in refused.stderr
    dump = run(project, "schema:fresh", "--dump")
    assert dump.returncode == 0
    assert f"drop table if exists {db.q('book')}" in dump.stdout
    assert f"create table {db.q('book')}" in dump.stdout
    assert db.count("book") == 1

    # stdin is not a terminal: no question asked
    fresh = run(project, "schema:fresh", "--run")
    assert fresh.returncode == 0, fresh.stderr
    assert "Database refreshed" in fresh.stdout and "?" not in fresh.stdout
    assert db.tables() == {"book", "author"}
    assert db.count("book") == 0


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_schema_fresh_asks_in_a_terminal(dbproject: Path, db: Database) -> None:
    import pty
    import select

    project = dbproject
    assert run(project, "schema:create", "--run").returncode == 0
    db.execute("insert into book (title) values ('Dune')")
    primary, secondary = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("ORM_CONFIG", None)
    env["PYTHONPATH"] = str(Path(orm.__file__).resolve().parent.parent)  # as run() does
    proc = subprocess.Popen(
        [sys.executable, "-m", "orm", "schema:fresh", "--run"], cwd=project, env=env,
        stdin=secondary, stdout=secondary, stderr=subprocess.PIPE,
    )
    os.close(secondary)
    output = b""
    while b"[y/N]" not in output:
        ready, _, _ = select.select([primary], [], [], 30)
        try:
            chunk = os.read(primary, 1024) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            proc.kill()
            pytest.fail(f"no question asked: {output!r} {proc.communicate()[1]!r}")
        output += chunk
    os.write(primary, b"n\n")
    _, stderr = proc.communicate(timeout=60)
    os.close(primary)
    assert proc.returncode == 1
    assert b"drops 2 tables" in output
    assert b"Aborted" in stderr
    assert db.count("book") == 1


# -- PostgreSQL -------------------------------------------------------------------------------


def pg_config(url: str, schema: str, entities: str = '["entities/*.py"]') -> str:
    return (
        "from orm import define_config\n\n"
        f"config = define_config(client_url={url!r}, schema={schema!r}, entities={entities})\n"
    )


def with_password(url: str, password: str) -> str:
    """The URL with a password for its user (the test server trusts local users, so any
    password connects)."""
    return re.sub(r"^(\w+://)([^@/:]+)@", rf"\1\2:{password}@", url)


@PG_ONLY
def test_debug_on_postgresql_shows_the_server_and_the_connection(dbproject: Path,
                                                                 db: Database) -> None:
    import psycopg

    url = with_password(pg_options()["client_url"], "s3cret-pw")
    write(dbproject / "orm_config.py", pg_config(url, db.schema))
    result = run(dbproject, "debug")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"   - psycopg {psycopg.__version__}\n" in out
    redacted = url.replace(":s3cret-pw@", ":***@")
    assert f" - database: PostgreSQL, {redacted}, schema {db.schema}\n" in out
    with psycopg.connect(PG_URL) as conn:
        version = conn.execute("show server_version").fetchone()[0]
    assert f" - server: PostgreSQL {version}\n" in out
    assert connection_line(out) == db.connection_ok(0).replace(
        "0 tables)", f"schema {db.schema} does not exist yet, schema:create creates it)"
    ).replace(f"schema {db.schema}: ", "")
    assert "schema: no tables yet" in out and "schema:create --run" in out
    assert "s3cret-pw" not in out + result.stderr
    assert db.tables() == set(), "debug creates nothing"
    assert run(dbproject, "schema:create", "--run").returncode == 0
    out = run(dbproject, "debug").stdout
    assert connection_line(out) == db.connection_ok(2)
    assert "schema: up to date" in out


@PG_ONLY
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda url: re.sub(r":\d+/", ":1/", url), "Connection refused"),
        (lambda url: re.sub(r"://[^@/:]+", "://orm_nobody", url),
         'role "orm_nobody" does not exist'),
        (lambda url: re.sub(r"/(\w+)\?", "/orm_no_such_db?", url),
         'database "orm_no_such_db" does not exist'),
    ],
    ids=["unreachable", "unknown-user", "missing-database"],
)
def test_postgresql_that_cannot_be_used(dbproject: Path, db: Database, change, reason) -> None:
    url = with_password(change(pg_options()["client_url"]), "s3cret-pw")
    write(dbproject / "orm_config.py", pg_config(url, db.schema))
    debug = run(dbproject, "debug")
    assert debug.returncode == 1
    line = connection_line(debug.stdout)
    assert line.startswith("database connection failed: Cannot connect to PostgreSQL database ")
    assert reason in line
    assert "Check the connection settings in the config (client_url" in debug.stdout
    assert " - server:" not in debug.stdout
    for command in ("schema:update", "schema:create"):
        result = run(dbproject, command, "--dump")
        assert result.returncode == 1
        first = result.stderr.splitlines()[0]
        assert first.startswith("python -m orm: error: Cannot connect to PostgreSQL database ")
        assert reason in first
        assert "hint: Check the connection settings" in result.stderr
        assert "hint: `python -m orm debug` checks them." in result.stderr
        assert result.stdout == ""
        assert_no_traceback(result)
        assert "s3cret-pw" not in result.stdout + result.stderr
    assert_no_traceback(debug)
    assert "s3cret-pw" not in debug.stdout + debug.stderr


@PG_ONLY
def test_postgresql_config_without_psycopg_says_what_to_install(dbproject: Path) -> None:
    """A `psycopg` that cannot be imported (a package shadowing it that raises ImportError)
    fails the connection check and the schema commands with the command to install it."""
    write(dbproject / "shadow" / "psycopg" / "__init__.py",
          "raise ImportError('simulated: no psycopg here')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(dbproject / "shadow"),
                                          str(Path(orm.__file__).resolve().parent.parent)])}
    debug = run(dbproject, "debug", env=env)
    assert debug.returncode == 1
    line = connection_line(debug.stdout)
    assert line.startswith("database connection failed: PostgreSQL support needs psycopg 3")
    assert "pip install 'orm[postgresql]'" in line
    update = run(dbproject, "schema:update", "--dump", env=env)
    assert update.returncode == 1
    assert "pip install 'orm[postgresql]'" in update.stderr.splitlines()[0]
    assert_no_traceback(update)
    assert_no_traceback(debug)
