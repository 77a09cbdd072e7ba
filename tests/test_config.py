"""Config files, the config search, folder-based entity discovery (in process), and the
database options (client_url, host, port, user, password, db_name, schema, pool_size,
isolation_level) with bad values and servers that cannot be used."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import orm
from orm import ORM, ConnectionException, MetadataError, ValidationError, define_config
from orm.config import (
    ConfigError,
    config_candidates,
    config_search_paths,
    load_config,
    load_config_file,
    merge_config,
)
from orm.metadata.discovery import expand_entries, inspect_entries, is_glob
from tests.databases import PG_URL


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def entity_source(name: str) -> str:
    return (
        "from orm import PrimaryKey, entity\n\n\n"
        f"@entity()\nclass {name}:\n    id: int = PrimaryKey()\n    title: str\n"
    )


def config_source(db_name: str) -> str:
    return f"from orm import define_config\n\nconfig = define_config(db_name={db_name!r})\n"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No ORM_CONFIG from outside; sys.path and sys.modules restored afterwards (discovery
    adds project folders and modules)."""
    monkeypatch.delenv("ORM_CONFIG", raising=False)
    write(tmp_path / "pyproject.toml", '[project]\nname = "demo"\n')
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    root = str(tmp_path)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        paths = list(getattr(module, "__path__", None) or [])
        if file.startswith(root) or any(str(p).startswith(root) for p in paths):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def pkg() -> str:
    """A package name no other test uses (modules stay importable by name in-process)."""
    return f"pkg_{uuid.uuid4().hex[:10]}"


# -- the search ---------------------------------------------------------------------------------


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "pyproject.toml",
          '[project]\nname = "demo"\n\n[tool.orm]\nconfig_paths = ["conf/a.py", "conf/b.py"]\n')
    files = {
        "explicit": write(tmp_path / "explicit.py", config_source("explicit.db")),
        "env": write(tmp_path / "env.py", config_source("env.db")),
        "pyproject_b": write(tmp_path / "conf" / "b.py", config_source("pyproject.db")),
        "default": write(tmp_path / "orm_config.py", config_source("default.db")),
        "src": write(tmp_path / "src" / "orm_config.py", config_source("src.db")),
    }
    monkeypatch.setenv("ORM_CONFIG", "env.py")
    assert config_search_paths("explicit.py", cwd=tmp_path) == [
        files["explicit"], files["env"], tmp_path / "conf" / "a.py", files["pyproject_b"],
        files["default"], files["src"],
    ]
    sources = [c.source for c in config_candidates("explicit.py", cwd=tmp_path)]
    assert sources == ["--config", "ORM_CONFIG", "pyproject.toml", "pyproject.toml",
                       "default", "default"]

    def chosen(explicit: str | None = None) -> str:
        options, path = load_config(explicit, cwd=tmp_path)
        assert options.base_dir == str(path.parent)
        return options.db_name

    assert chosen("explicit.py") == "explicit.db"
    assert chosen() == "env.db"
    monkeypatch.delenv("ORM_CONFIG")
    assert chosen() == "pyproject.db"  # conf/a.py does not exist, conf/b.py does
    files["pyproject_b"].unlink()
    assert chosen() == "default.db"
    files["default"].unlink()
    assert chosen() == "src.db"
    files["src"].unlink()
    with pytest.raises(ConfigError) as info:
        chosen()
    assert [found for _, found in info.value.searched] == [False, False, False, False]
    assert str(tmp_path / "src" / "orm_config.py") in str(info.value)
    assert "define_config(" in str(info.value)


def test_nearest_pyproject_is_used_from_a_subfolder(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml",
          '[tool.orm]\nconfig_paths = "settings/orm.py"\n')
    write(tmp_path / "settings" / "orm.py", config_source("x.db"))
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    options, path = load_config(cwd=sub)
    assert path == tmp_path / "settings" / "orm.py"
    assert options.db_name == "x.db"


def test_invalid_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.orm\n")
    with pytest.raises(ConfigError, match="pyproject.toml is not valid TOML"):
        load_config(cwd=tmp_path)
    write(tmp_path / "pyproject.toml", "[tool.orm]\nconfig_paths = 3\n")
    with pytest.raises(ConfigError, match="must be a list of paths"):
        load_config(cwd=tmp_path)


def test_explicit_paths_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "orm_config.py", config_source("default.db"))
    with pytest.raises(ConfigError, match=r"missing\.py \(given by --config\) does not exist"):
        load_config("missing.py", cwd=tmp_path)
    monkeypatch.setenv("ORM_CONFIG", str(tmp_path / "gone.py"))
    with pytest.raises(ConfigError, match=r"gone\.py \(given by ORM_CONFIG\) does not exist"):
        load_config(cwd=tmp_path)


def test_orm_init_without_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    pkg: str) -> None:
    write(tmp_path / pkg / f"{pkg}_book.py", entity_source("Book"))
    write(tmp_path / "orm_config.py",
          f"from orm import define_config\n\n"
          f"config = define_config(db_name=':memory:', entities=['{pkg}/*.py'])\n")
    monkeypatch.chdir(tmp_path)
    with ORM.init() as orm:
        assert [m.class_name for m in orm.metadata] == ["Book"]
        assert orm.config.base_dir == str(tmp_path)


# -- loading ------------------------------------------------------------------------------------


def test_config_that_raises_names_the_file_the_line_and_the_error(tmp_path: Path) -> None:
    path = write(tmp_path / "orm_config.py", """\
        import os

        config = os.environ["SURELY_NOT_SET_ANYWHERE"]
        """)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "KeyError: 'SURELY_NOT_SET_ANYWHERE'" in message
    assert f"{path}, line 3" in message
    assert isinstance(info.value.__cause__, KeyError)


def test_config_with_a_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path / "orm_config.py", "from orm import define_config\nconfig = (\n")
    with pytest.raises(ConfigError, match=r"SyntaxError: .*orm_config\.py, line 2"):
        load_config_file(path)


def test_config_without_config(tmp_path: Path) -> None:
    path = write(tmp_path / "orm_config.py", "DB = 'x.db'\n")
    with pytest.raises(ConfigError, match="does not define `config`"):
        load_config_file(path)
    write(path, "config = 42\n")
    with pytest.raises(ConfigError, match="is a int, not a define_config"):
        load_config_file(path)


def test_config_forms(tmp_path: Path) -> None:
    path = write(tmp_path / "orm_config.py",
                 "from orm import define_config\nsettings = define_config(db_name='a.db')\n")
    assert load_config_file(path).db_name == "a.db"  # the one define_config() result
    write(path, "config = {'db_name': 'b.db'}\n")
    assert load_config_file(path).db_name == "b.db"
    write(path, "from orm import define_config\n\ndef config():\n"
                "    return define_config(db_name='c.db', base_dir='sub')\n")
    options = load_config_file(path)
    assert options.db_name == "c.db"
    assert options.base_dir == str(tmp_path / "sub")


def test_define_config_normalises_entities_and_paths(tmp_path: Path) -> None:
    options = define_config(db_name=tmp_path / "x.db", entities="entities/*.py")
    assert options.db_name == str(tmp_path / "x.db")
    assert options.entities == ["entities/*.py"]
    with pytest.raises(ValidationError, match="Unknown configuration option"):
        define_config(dbname="x")


# -- folder-based discovery ---------------------------------------------------------------------


def test_is_glob() -> None:
    assert is_glob("src/**/*_entity.py") and is_glob("entities/user.py")
    assert is_glob("user.py") and is_glob("./entities")
    assert not is_glob("app.modules") and not is_glob("app")


def test_dotted_module_is_imported_recursively(tmp_path: Path, pkg: str) -> None:
    write(tmp_path / pkg / "__init__.py", "")
    write(tmp_path / pkg / "a.py", entity_source("A"))
    write(tmp_path / pkg / "sub" / "__init__.py", "")
    write(tmp_path / pkg / "sub" / "b.py", entity_source("B") + "from ..a import A\n")
    write(tmp_path / pkg / "sub" / "deeper" / "__init__.py", entity_source("C"))
    classes = expand_entries([pkg], tmp_path)  # tmp_path is put on sys.path if needed
    assert [c.__name__ for c in classes] == ["A", "B", "C"]
    assert classes[1] is importlib.import_module(f"{pkg}.sub.b").B


def test_globs_are_relative_to_base_dir_and_mix_with_classes(tmp_path: Path, pkg: str) -> None:
    write(tmp_path / "src" / pkg / "__init__.py", "")
    write(tmp_path / "src" / pkg / "users" / "__init__.py", "")
    write(tmp_path / "src" / pkg / "users" / "user_entity.py", entity_source("User"))
    write(tmp_path / "src" / pkg / "users" / "helpers.py", "X = 1\n")
    write(tmp_path / "src" / pkg / "posts" / "__init__.py", "")
    write(tmp_path / "src" / pkg / "posts" / "post_entity.py",
          entity_source("Post") + f"from {pkg}.users.user_entity import User\n")
    classes = expand_entries(["src/**/*_entity.py"], tmp_path)
    assert [c.__name__ for c in classes] == ["Post", "User"]
    # a file inside a package is imported under its package name: one class, not two
    user = importlib.import_module(f"{pkg}.users.user_entity").User
    assert classes[1] is user
    again = expand_entries([user, "src/**/*_entity.py", f"{pkg}.users", f"src/{pkg}"],
                           tmp_path)
    assert again == [user, classes[0]]


def test_files_outside_packages(tmp_path: Path, pkg: str) -> None:
    write(tmp_path / "models" / "types.py", entity_source("Shadow"))  # `types` is stdlib
    write(tmp_path / "models" / f"{pkg}.py", entity_source("Plain"))
    first = expand_entries(["models"], tmp_path)  # a folder stands for its .py files
    assert sorted(c.__name__ for c in first) == ["Plain", "Shadow"]
    assert first == expand_entries(["models/*.py"], tmp_path)  # imported once
    import types

    assert not hasattr(types, "Shadow")


def test_glob_that_matches_nothing(tmp_path: Path) -> None:
    assert expand_entries(["nothing/**/*.py"], tmp_path) == []
    (report,) = inspect_entries(["nothing/**/*.py"], tmp_path)
    assert report.kind == "path" and not report.found and report.error is None
    assert report.target == str(tmp_path / "nothing" / "**" / "*.py")


def test_entity_file_with_a_syntax_error(tmp_path: Path, pkg: str) -> None:
    bad = write(tmp_path / pkg / "bad.py", "x = 1\nclass Broken(:\n    pass\n")
    with pytest.raises(MetadataError, match=rf"{bad}, line 2"):
        expand_entries([f"{pkg}/*.py"], tmp_path)
    write(tmp_path / pkg / "__init__.py", "")
    with pytest.raises(MetadataError, match=rf"{bad}, line 2"):
        expand_entries([pkg], tmp_path)
    write(tmp_path / pkg / "bad.py", "import not_a_module_anywhere\n")
    with pytest.raises(MetadataError, match="No module named 'not_a_module_anywhere'"):
        expand_entries([f"{pkg}/bad.py"], tmp_path)
    reports = inspect_entries([f"{pkg}/bad.py", "missing_module_xyz"], tmp_path)
    assert [r.found for r in reports] == [False, False]
    assert "not found" in reports[1].error


def test_entries_that_are_not_entities(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="neither an entity class"):
        expand_entries([42], tmp_path)


def test_a_config_file_runs_again_only_when_it_changed(tmp_path: Path) -> None:
    path = write(tmp_path / "orm_config.py",
                 "from orm import PrimaryKey, define_config, entity\n\n\n"
                 "@entity()\nclass Local:\n    id: int = PrimaryKey()\n\n\n"
                 "config = define_config(entities=[Local])\n")
    first, second = load_config_file(path), load_config_file(path)
    assert first is not second  # a copy each time...
    assert first.entities[0] is second.entities[0]  # ...of one module: the same class
    write(path, config_source("changed.db"))
    assert load_config_file(path).db_name == "changed.db"


# -- the database options: client_url, host, port, user, password, db_name, schema, ... --------


@pytest.mark.parametrize(
    ("url", "written"),
    [
        ("postgresql://app@db.example:5433/shop", "postgresql://app@db.example:5433/shop"),
        ("postgres://app@db.example/shop", "postgresql://app@db.example/shop"),
        ("POSTGRESQL://app@db.example/shop", "postgresql://app@db.example/shop"),
        ("postgresql+psycopg://app@db.example/shop", "postgresql://app@db.example/shop"),
    ],
)
def test_a_postgresql_url_picks_the_postgresql_driver(url: str, written: str) -> None:
    """The driver comes from the URL; the URL is passed on in the spelling libpq reads (it
    takes only a lower-case `postgresql://` or `postgres://`)."""
    options = define_config(client_url=url)
    assert (options.driver, options.client_url) == ("postgresql", written)
    assert options.db_name is None, "the database is the URL's"
    assert (options.schema, options.pool_size, options.isolation_level) == (
        None, 5, "read committed",
    )  # fmt: skip


def test_postgresql_options_one_by_one() -> None:
    options = define_config(driver="pg", host="db.example", port="5433", user="app",
                            password="s3cret", db_name="shop", schema="sales", pool_size=3,
                            isolation_level="REPEATABLE_READ")
    assert options.driver == "postgresql" and options.client_url is None
    assert (options.host, options.port, options.user, options.db_name, options.schema) == (
        "db.example", "5433", "app", "shop", "sales",
    )  # fmt: skip
    assert (options.pool_size, options.isolation_level) == (3, "repeatable read")


@pytest.mark.parametrize(
    ("url", "db_name"),
    [
        ("sqlite:///app.db", "app.db"),
        ("sqlite:///data/app.db", "data/app.db"),
        ("SQLite:///app.db", "app.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_a_sqlite_url_names_the_file(url: str, db_name: str) -> None:
    options = define_config(client_url=url)
    assert (options.driver, options.db_name, options.client_url) == ("sqlite", db_name, None)


def test_a_sqlite_url_opens_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sqlite:///relative.db` is relative to the current folder, `sqlite:////abs.db`
    absolute (SQLAlchemy's convention)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for url, file in [("sqlite:///data/rel.db", tmp_path / "data" / "rel.db"),
                      (f"sqlite:///{tmp_path / 'abs.db'}", tmp_path / "abs.db")]:
        with ORM.init(client_url=url) as orm:
            orm.connection.execute("create table t (x int)")
        assert file.is_file(), url


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": "abc"}, "port must be a port number (1 to 65535), not 'abc'"),
        ({"port": True}, "port must be a port number (1 to 65535), not True"),
        ({"port": 0}, "port must be a port number (1 to 65535), not 0"),
        ({"port": 70000}, "port must be a port number (1 to 65535), not 70000"),
        ({"pool_size": 0}, "pool_size must be a positive whole number of connections, not 0"),
        ({"pool_size": True}, "pool_size must be a positive whole number of connections, not True"),
        ({"pool_size": "5"}, "pool_size must be a positive whole number of connections, not '5'"),
        ({"isolation_level": "snapshot"}, "isolation_level 'snapshot' is not one of "
                                          "'read committed', 'repeatable read', 'serializable'"),
        ({"schema": ""}, "schema must be a schema name, not ''"),
        ({"schema": 5}, "schema must be a schema name, not 5"),
        ({"client_url": "sqlite:///app.db", "driver": "postgresql"},
         "client_url 'sqlite:///app.db' is not a PostgreSQL URL (postgresql://user@host:5432/db) "
         "but driver is 'postgresql'"),
    ],
)
def test_bad_postgresql_options_are_validation_errors_naming_the_option(
    options: dict, message: str
) -> None:
    options.setdefault("client_url", "postgresql://app:s3cret@db.example/shop")
    with pytest.raises(ValidationError) as info:
        define_config(**options)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client_url": "mysql://app:s3cret@db.example/shop"},
         "client_url 'mysql://app:***@db.example/shop' names an unknown database (mysql://); "
         "known: postgresql://, sqlite:///"),
        ({"client_url": "db.example:5432"},
         "client_url must be a URL such as postgresql://user@host:5432/db or "
         "sqlite:///path/to/file.db, not 'db.example:5432'"),
        ({"client_url": "postgresql://app:s3cret@db.example/shop", "driver": "sqlite"},
         "client_url 'postgresql://app:***@db.example/shop' is not an SQLite URL "
         "(sqlite:///path/to/file.db) but driver is 'sqlite'"),
        ({"driver": "oracle"}, "Unknown driver 'oracle'; known: sqlite, postgresql"),
    ],
)
def test_bad_urls_and_drivers_are_validation_errors(options: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        define_config(**options)
    assert str(info.value) == message


def test_the_password_never_appears_in_the_repr() -> None:
    options = define_config(
        client_url="postgresql://app:s3cret@db.example/shop?sslmode=require&password=s3cret",
        password="s3cret",
    )
    text = repr(options)
    assert "s3cret" not in text
    assert ("client_url='postgresql://app:***@db.example/shop?sslmode=require&password=***'"
            in text)
    assert "password='***'" in text
    assert "s3cret" not in repr(merge_config(options, pool_size=2))
    assert options.password == "s3cret", "kept for the connection"
    plain = define_config(client_url="postgresql://app@db.example/shop")
    assert "client_url='postgresql://app@db.example/shop'" in repr(plain)
    assert "password=None" in repr(plain)


def test_a_url_libpq_cannot_read_is_a_validation_error_without_the_password() -> None:
    pytest.importorskip("psycopg")
    from orm.platforms import PostgresConnection

    with pytest.raises(ValidationError) as info:
        PostgresConnection(client_url="postgresql://app:s3cret@db.example/shop?bogus")
    assert str(info.value).startswith(
        "client_url is not a PostgreSQL URL (postgresql://user:password@host:port/database; "
    )
    assert 'separator "=" in URI query parameter: "bogus"' in str(info.value)
    with pytest.raises(ValidationError) as info:
        PostgresConnection(client_url="pgsql://app:s3cret@db.example/shop")
    assert "pgsql://app:***@db.example/shop" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_a_postgresql_config_without_psycopg_says_what_to_install() -> None:
    """The config is valid without psycopg (nothing imports it); connecting says what to
    install, without the password."""
    code = textwrap.dedent("""\
        import sys
        sys.modules["psycopg"] = None  # `import psycopg` fails, as when it is not installed
        from orm import ORM, ConnectionException, define_config
        config = define_config(client_url="postgresql://app:s3cret@127.0.0.1:1/shop")
        try:
            ORM.init(config)
        except ConnectionException as exc:
            print(type(exc.__cause__).__name__, "|", exc)
        """)
    env = {**os.environ, "PYTHONPATH": str(Path(orm.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cause, message = proc.stdout.strip().split(" | ", 1)
    assert cause in ("ImportError", "ModuleNotFoundError")
    assert message.startswith("PostgreSQL support needs psycopg 3 and psycopg-pool")
    assert message.endswith("install them with pip install 'orm[postgresql]'")
    assert "s3cret" not in proc.stdout + proc.stderr


# -- a real server that cannot be used -------------------------------------------------------

PG_ONLY = pytest.mark.skipif(not PG_URL, reason="needs a PostgreSQL server (ORM_TEST_PG_URL)")


def _server() -> dict[str, str]:
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(PG_URL)
    return {"host": params.get("host", "localhost"), "port": params.get("port", "5432"),
            "user": params.get("user", ""), "dbname": params.get("dbname", "")}


@PG_ONLY
@pytest.mark.parametrize(
    ("change", "reason", "hint"),
    [
        ({"port": "1"}, "Connection refused", "is the server running and accepting TCP/IP"),
        ({"user": "orm_no_such_user"}, 'role "orm_no_such_user" does not exist',
         "check the user and password in client_url (or user / password)"),
        ({"dbname": "orm_no_such_db"}, 'database "orm_no_such_db" does not exist',
         "create it (createdb -h "),
    ],
    ids=["unreachable", "unknown-user", "missing-database"],
)
@pytest.mark.parametrize("form", ["client_url", "options"])
def test_a_server_that_cannot_be_used_is_a_connection_exception(
    change: dict, reason: str, hint: str, form: str
) -> None:
    """Through the config, as users start: a ConnectionException naming the database,
    host and port, the server's reason and what to do, on one line, with neither psycopg's
    traceback text nor the password."""
    import psycopg

    server = {**_server(), **change}
    if form == "client_url":
        config = define_config(client_url=(
            f"postgresql://{server['user']}:s3cret@{server['host']}:{server['port']}/"
            f"{server['dbname']}"
        ), timeout=2)
    else:
        config = define_config(driver="postgresql", host=server["host"], port=server["port"],
                               user=server["user"], password="s3cret",
                               db_name=server["dbname"], timeout=2)
    with pytest.raises(ConnectionException) as info:
        ORM.init(config)
    message = str(info.value)
    assert message.startswith(
        f"Cannot connect to PostgreSQL database {server['dbname']!r} at "
        f"{server['host']}:{server['port']}: "
    )
    assert reason in message and hint in message
    assert "\n" not in message and "Traceback" not in message
    assert "connection failed:" not in message and "psycopg" not in message
    assert "s3cret" not in message and "s3cret" not in repr(config)
    assert isinstance(info.value.__cause__, psycopg.OperationalError)


@pytest.mark.parametrize("timeout", [-1, "5", None, True, float("nan"), float("inf")])
def test_a_timeout_that_is_not_a_number_of_seconds_is_refused(timeout):
    with pytest.raises(ValidationError, match="timeout must be a number of seconds"):
        define_config(db_name=":memory:", timeout=timeout)


def test_a_postgresql_timeout_must_be_more_than_zero_and_sqlite_takes_zero():
    assert define_config(db_name=":memory:", timeout=0).timeout == 0
    with pytest.raises(ValidationError, match="more than 0"):
        define_config(client_url="postgresql://app@127.0.0.1/app", timeout=0)


@pytest.mark.parametrize("option", [{"schema": "app"}, {"pool_size": 3}, {"host": "db"},
                                    {"isolation_level": "serializable"}])
def test_postgresql_options_on_an_sqlite_config_are_refused(option):
    with pytest.raises(ValidationError, match="PostgreSQL only.*client_url"):
        define_config(db_name="app.db", **option)


@pytest.mark.parametrize(
    "url",
    ["postgresql://app:p%ss@127.0.0.1:5432/test", "postgresql://app:S3CRETPW@[::1:5432/test"],
)
def test_a_url_libpq_cannot_read_never_shows_its_password(url):
    pytest.importorskip("psycopg")
    secret = url.split(":")[2].split("@")[0]
    with pytest.raises(ValidationError) as info:
        ORM.init(define_config(client_url=url, entities=[]))
    assert "is not a PostgreSQL URL" in str(info.value) and "percent-encoded" in str(info.value)
    assert secret not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None
