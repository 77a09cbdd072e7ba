"""`import orm` stays cheap: what a script does not need is imported on first use, and every
public name is still importable from `orm`. Behaviour tests (which modules load), never timings;
benchmarks/compare.py measures the start-up time itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parent.parent / "src")

#: modules a script that lists its entity classes never needs: the config-file search
#: (tomllib, pathlib), dataclasses' inspect (and ast, dis, tokenize), logging (until debug or
#: logger is configured), folder discovery, the command line; typing (orm._typing stands in
#: at run time) with re, and what only some column types, filters or paths use: json, uuid
#: (and platform), decimal, random (retries), copy (mutable defaults), base64 (to_json),
#: threading
NOT_AT_IMPORT = (
    "typing",
    "re",
    "json",
    "uuid",
    "platform",
    "decimal",
    "random",
    "copy",
    "base64",
    "threading",
    "orm.cli",
    "orm.metadata.folders",
    "tomllib",
    "pathlib",
    "inspect",
    "dataclasses",
    "ast",
    "tokenize",
    "logging",
    "traceback",
    "glob",
    "pkgutil",
    "importlib.util",
    "argparse",
    # PostgreSQL: only a PostgreSQL config loads its platform, and psycopg
    "orm.platforms.postgresql",
    "orm.platforms.postgresql_connection",
    "orm.platforms.postgresql_types",
    "psycopg",
    "psycopg_pool",
)

#: what `import orm` never needs: enum (the enums of the package are created on first use),
#: functools (for a user's own `__init__`), Collection's module and `collections` with it
NOT_AT_IMPORT_ONLY = ("enum", "functools", "collections", "orm.entity.collection")

#: what a tiny script (no relations, locks, listeners, ordering, transactions or request
#: contexts) does not need: each is imported by the first use of what needs it
NOT_IN_A_TINY_SCRIPT = (
    "enum",
    "contextlib",
    "contextvars",
    "orm.context",
    "orm.flush_mode",
    "orm.locking",
    "orm.entity.loader",
    "orm.entity.collection",
    # wrap(), WrappedEntity and BaseEntity: imported by the first use of one of them
    "orm.entity.wrapped",
    # the event machinery: imported by a hook decorator, a subscriber or `orm.events`
    "orm.events",
    "orm.events.hooks",
    "orm.events.manager",
    "orm.events.args",
    "orm.events.subscriber",
    "orm.metadata.cascade",
    "orm.query.order",
    "orm.unit_of_work.undo",
    "orm.unit_of_work.commit_order",
    "orm.unit_of_work.pivots",
    "orm.unit_of_work.cascade_remove",
    "orm.unit_of_work.lifecycle",
    # update_schema's diff, the pause before a retry; os (with stat and posixpath): the
    # environment, the working directory and a file database's absolute path are read
    # without it
    "orm.schema.update",
    "orm._retry",
    # the 13 exceptions for what the database refused, created by the first use of one
    "orm._driver_errors",
    # the search for a config file (ORM.init() without options, the command line)
    "orm.config_files",
    "os",
    "posixpath",
)

#: what `import orm` leaves to the first use of `orm.ORM` (and the other lazily imported public
#: names): a module that only declares entities needs none of it
FIRST_USE = (
    "sqlite3",
    "orm.core",
    "orm.config",
    "orm.connection",
    "orm.entity_manager",
    "orm.unit_of_work",
    "orm.platforms",
    "orm.metadata.discovery",
    "orm.query",
    "orm.schema",
    "orm.events",
)


def _run(code: str, **env: str) -> dict:
    """Run `code` in a fresh interpreter with only the standard library and `orm` on the path
    (-S: no site hooks that import modules of their own); it prints one JSON line."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORM_")}
    environ["PYTHONPATH"] = SRC
    environ.update(env)
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], env=environ, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: json is imported after the count: it imports re, enum and functools
LOADED_AFTER = """
import sys
before = set(sys.modules)
{stmt}
loaded = sorted(set(sys.modules) - before)
import json
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("pure", ["0", "1"], ids=["compiled", "pure"])
def test_import_orm_does_not_load_what_a_script_does_not_need(pure: str) -> None:
    loaded = _run(LOADED_AFTER.format(stmt="import orm"), ORM_PURE_PYTHON=pure)
    assert "orm" in loaded and "orm.metadata.declare" in loaded
    unexpected = [
        name for name in NOT_AT_IMPORT + NOT_AT_IMPORT_ONLY + FIRST_USE if name in loaded
    ]
    assert unexpected == [], f"`import orm` imports {unexpected}"


def test_a_tiny_script_does_not_load_the_config_search_or_logging(tmp_path: Path) -> None:
    """Declaring an entity, ORM.init on a file, create_schema, persist, flush, find_one and
    close: none of it needs the config-file search, folder discovery or logging."""
    db = tmp_path / "app.db"
    stmt = f"""
from orm import ORM, PrimaryKey, entity

@entity()
class Note:
    id: int = PrimaryKey()
    text: str

orm = ORM.init(db_name={str(db)!r}, entities=[Note])
orm.schema.create_schema()
em = orm.em.fork()
em.persist(Note(text="hello")).flush()
em.clear()
assert em.find_one(Note, {{"text": "hello"}}).text == "hello"
orm.close()
"""
    loaded = _run(LOADED_AFTER.format(stmt=stmt))
    unexpected = [name for name in NOT_AT_IMPORT + NOT_IN_A_TINY_SCRIPT if name in loaded]
    assert unexpected == [], f"the tiny script imports {unexpected}"


RELATIONS_AT_INIT = """
import sys
from orm import ORM, Collection, ManyToMany, ManyToOne, PrimaryKey, entity

@entity()
class Tag:
    id: int = PrimaryKey()

@entity()
class Author:
    id: int = PrimaryKey()

@entity()
class Article:
    id: int = PrimaryKey()
    author: Author = ManyToOne()
    {tags}

orm = ORM.init(db_name=":memory:", entities=[Tag, Author, Article])
import json
print(json.dumps(sorted(m for m in sys.modules if m.startswith("orm.unit_of_work."))))
"""


def test_relations_load_the_insert_order_at_init_not_at_the_first_flush() -> None:
    """Entities with relations: ORM.init loads the insert ordering (and, with a many-to-many,
    the pivot plans), which the first flush would otherwise load (compile, without cached
    bytecode) while it writes."""
    loaded = _run(RELATIONS_AT_INIT.format(tags="tags: Collection[Tag] = ManyToMany()"))
    assert "orm.unit_of_work.commit_order" in loaded and "orm.unit_of_work.pivots" in loaded
    loaded = _run(RELATIONS_AT_INIT.format(tags=""))
    assert "orm.unit_of_work.commit_order" in loaded
    assert "orm.unit_of_work.pivots" not in loaded


def test_what_a_tiny_script_leaves_out_works_on_first_use(tmp_path: Path) -> None:
    """In a fresh interpreter, where none of NOT_IN_A_TINY_SCRIPT is imported yet: relations
    with their cascades, a removal, hooks and a subscriber, an ordered query, a lock, a
    transaction, a request context and the flush modes each import what they need."""
    db = tmp_path / "first_use.db"
    out = _run(f"""
import json, sys
from orm import (ORM, Cascade, Collection, EventSubscriber, FlushMode, LockMode, ManyToOne,
                 OneToMany, PrimaryKey, QueryOrder, entity, on_load)
from orm.metadata.relations import Cascade as old_cascade
from orm.query.filters import QueryOrder as old_order

seen = []

@entity()
class Team:
    id: int = PrimaryKey()
    name: str
    members: Collection["Member"] = OneToMany(lambda: Member, mapped_by="team",
                                              cascade=[Cascade.ALL])

@entity()
class Member:
    id: int = PrimaryKey()
    name: str
    team: Team = ManyToOne()

    @on_load
    def loaded(self):
        seen.append(("load", self.name))

class Counter(EventSubscriber):
    def after_flush(self, args):
        seen.append(("flush", None))

orm = ORM.init(db_name={str(db)!r}, entities=[Team, Member], subscribers=[Counter()])
orm.schema.create_schema()
em = orm.em.fork()
team = Team(name="t")
team.members.add(Member(name="b", team=team), Member(name="a", team=team))
em.persist(team).flush()
with orm.request_context() as ctx:
    names = [m.name for m in ctx.find(Member, {{}}, order_by={{"name": QueryOrder.ASC}})]
with em.transaction() as tx:
    locked = tx.find_one(Member, {{"name": "a"}}, lock_mode=LockMode.PESSIMISTIC_WRITE)
    tx.remove(tx.find_one(Team, team.id))
modes = [str(orm.em.fork(flush_mode=m).flush_mode) for m in ("commit", FlushMode.ALWAYS)]
updates = orm.schema.update_schema()
where = orm.connection.describe()
left = orm.em.fork().count(Member)
orm.close()
print(json.dumps({{"names": names, "locked": locked.name, "left": left, "modes": modes,
                  "updates": updates, "where": where,
                  "seen": sorted(set(map(tuple, seen))), "same": [old_cascade is Cascade,
                  old_order is QueryOrder]}}))
""")
    assert out == {
        "names": ["a", "b"],
        "locked": "a",
        "left": 0,
        "modes": ["FlushMode.COMMIT", "FlushMode.ALWAYS"],
        "updates": [],
        "where": str(db),
        "seen": [["flush", None], ["load", "a"], ["load", "b"]],
        "same": [True, True],
    }


def test_the_driver_errors_are_created_on_first_use(tmp_path: Path) -> None:
    """In a fresh interpreter: a refused statement raises the exception of `orm.errors` it
    always did (`orm.UniqueConstraintViolationException`, the same class however imported,
    shown and pickled as `orm.errors`'s), created only by that first use."""
    db = tmp_path / "refused.db"
    out = _run(f"""
import json, pickle, sys
import orm
from orm import ORM, PrimaryKey, Property, entity

@entity()
class Tag:
    id: int = PrimaryKey()
    name: str = Property(unique=True)

db = ORM.init(db_name={str(db)!r}, entities=[Tag])
db.schema.create_schema()
before = "orm._driver_errors" in sys.modules
em = db.em.fork()
em.persist(Tag(name="a")).flush()
try:
    db.em.fork().persist(Tag(name="a")).flush()
except orm.errors.DriverException as exc:
    caught = exc
db.close()
from orm.errors import ConstraintViolationException, UniqueConstraintViolationException
print(json.dumps({{
    "before": before, "type": repr(type(caught)),
    "same": type(caught) is UniqueConstraintViolationException is orm.UniqueConstraintViolationException,
    "base": isinstance(caught, ConstraintViolationException),
    "pickled": type(pickle.loads(pickle.dumps(caught))) is type(caught),
    "listed": "DeadlockException" in dir(orm.errors) and orm.DeadlockException.retryable,
}}))
""")
    assert out == {
        "before": False,
        "type": "<class 'orm.errors.UniqueConstraintViolationException'>",
        "same": True,
        "base": True,
        "pickled": True,
        "listed": True,
    }


def test_every_public_name_is_importable_from_orm() -> None:
    names = _run(
        "import json, orm\n"
        "from orm import *  # noqa: F403\n"
        "missing = [n for n in orm.__all__ if n not in globals()]\n"
        "print(json.dumps({'all': orm.__all__, 'missing': missing,"
        " 'entity_is_decorator': callable(orm.entity)}))"
    )
    assert names["missing"] == []
    assert names["entity_is_decorator"]
    import orm

    for name in names["all"]:
        exec(f"from orm import {name}", {})  # noqa: S102 - each name on its own
    assert set(names["all"]) == set(orm.__all__)


def test_folder_names_stay_importable_from_discovery(tmp_path: Path) -> None:
    """`orm.metadata.discovery` re-exports the folder discovery, loaded on first use."""
    from orm.metadata.discovery import EntryReport, expand_entries, inspect_entries, is_glob

    assert is_glob("src/**/*_entity.py") and not is_glob("app.models")
    (tmp_path / "startup_models_pkg").mkdir()
    (tmp_path / "startup_models_pkg" / "__init__.py").write_text(
        "from orm import PrimaryKey, entity\n\n"
        "@entity()\nclass StartupThing:\n    id: int = PrimaryKey()\n"
    )
    try:
        classes = expand_entries(["startup_models_pkg"], tmp_path)
        assert [c.__name__ for c in classes] == ["StartupThing"]
        (report,) = inspect_entries(["startup_models_pkg"], tmp_path)
        assert isinstance(report, EntryReport) and report.found
    finally:
        sys.modules.pop("startup_models_pkg", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


def test_config_search_and_query_log_still_work(tmp_path: Path) -> None:
    """The lazily imported pieces work when used: the config file is found and loaded, and the
    query log (logging imported on demand) reaches the configured logger."""
    (tmp_path / "orm_config.py").write_text(
        "from orm import define_config\nconfig = define_config(db_name=':memory:')\n"
    )
    out = _run(
        "import json, os\n"
        f"os.chdir({str(tmp_path)!r})\n"
        "from orm import ORM, PrimaryKey, entity\n"
        "@entity()\n"
        "class Logged:\n"
        "    id: int = PrimaryKey()\n"
        "lines = []\n"
        "orm = ORM.init()\n"
        "found = orm.config.base_dir\n"
        "orm.close()\n"
        "orm = ORM.init(entities=[Logged], debug=['query'], logger=lines.append)\n"
        "orm.schema.create_schema()\n"
        "orm.em.fork().count(Logged)\n"
        "orm.close()\n"
        "print(json.dumps({'base_dir': found, 'lines': lines}))"
    )
    assert out["base_dir"] == os.path.realpath(tmp_path)
    assert any(line.startswith("[query] create table") for line in out["lines"]), out
    assert any("[query] select count(" in line for line in out["lines"]), out


def test_lazily_imported_value_types_work_in_a_fresh_process(tmp_path: Path) -> None:
    """decimal, uuid and json are imported by the first column of their type, and typing is
    never imported by the ORM: a fresh interpreter (nothing imported by other tests) declares
    and round-trips such columns, looks an entity up by a UUID key from the identity map,
    and reads `X | None`, `Optional[X]` and `Collection["Post"]` annotations."""
    db = tmp_path / "values.db"
    out = _run(f"""
import json as _json_out, sys
from decimal import Decimal
from uuid import UUID, uuid4
from orm import ORM, Collection, ManyToOne, OneToMany, PrimaryKey, entity
typing_after_import = "typing" in sys.modules

@entity()
class Author:
    id: UUID = PrimaryKey()
    price: Decimal
    data: dict
    note: str | None = None
    posts: Collection["Post"] = OneToMany(lambda: Post, mapped_by="author")

import typing

@entity()
class Post:
    id: int = PrimaryKey()
    author: Author = ManyToOne()
    title: typing.Optional[str] = None
    made: typing.ClassVar[int] = 0

orm = ORM.init(db_name={str(db)!r}, entities=[Author, Post])
orm.schema.create_schema()
em = orm.em.fork()
key = uuid4()
a = Author(id=key, price=Decimal("1.25"), data={{"k": [1, 2]}})
em.persist(a).flush()
same = em.find_one(Author, key) is a
em.persist(Post(author=a)).flush()
em.clear()
b = em.find_one(Author, {{"id": key}})
print(_json_out.dumps({{
    "typing_after_import": typing_after_import, "same": same,
    "price": str(b.price), "is_decimal": isinstance(b.price, Decimal),
    "is_uuid": isinstance(b.id, UUID), "data": b.data, "note": b.note,
    "posts": em.count(Post, {{"author": key}}), "made": Post.made,
}}))
orm.close()
""")
    assert out == {
        "typing_after_import": False,
        "same": True,
        "price": "1.25",
        "is_decimal": True,
        "is_uuid": True,
        "data": {"k": [1, 2]},
        "note": None,
        "posts": 1,
        "made": 0,
    }


def test_lazy_public_names_are_the_modules_objects() -> None:
    """`orm.ORM` and the other names imported on first use are the very objects of their
    modules, in `dir(orm)`, and an unknown name is still an AttributeError."""
    out = _run(
        "import json, orm\n"
        "names = sorted(orm._LAZY)\n"
        "import orm.core, orm.entity_manager, orm.events, orm.schema\n"
        "same = orm.ORM is orm.core.ORM and orm.FlushMode is orm.entity_manager.FlushMode\n"
        "same = same and orm.on_load is orm.events.on_load\n"
        "same = same and orm.SchemaGenerator is orm.schema.SchemaGenerator\n"
        "listed = all(n in dir(orm) for n in names)\n"
        "try:\n"
        "    orm.NoSuchName\n"
        "    missing = None\n"
        "except AttributeError as exc:\n"
        "    missing = str(exc)\n"
        "print(json.dumps({'same': same, 'listed': listed, 'missing': missing,"
        " 'entity': callable(orm.entity), 'types': type(orm.types).__name__}))"
    )
    assert out == {
        "same": True,
        "listed": True,
        "missing": "module 'orm' has no attribute 'NoSuchName'",
        "entity": True,
        "types": "_TypeMap",
    }


#: counts the collector's passes during the package's imports, and says whether it is on
COLLECTIONS_DURING_IMPORT = """
import gc, json
{setup}
gc.collect()  # what this script allocated so far is not the import's
passes = []
gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info["generation"]))
import orm
from orm import ORM, EntityManager, Collection
during = len(passes)
print(json.dumps({{"passes": during, "enabled": gc.isenabled()}}))
"""


def test_importing_the_package_pauses_the_collector_and_restores_it(tmp_path: Path) -> None:
    """Nothing an import allocates is garbage: without the pause `import orm` and the lazy
    imports behind `from orm import ORM, ...` cost about a dozen collections; with it, only
    the pass owed once each pause ends (`import orm`, then the lazy `orm.core`). Bytecode is
    cached first, as for a script run twice (compiling `orm._typing`, which holds the pause,
    happens before it)."""
    cached = {"PYTHONPYCACHEPREFIX": str(tmp_path), "PYTHONDONTWRITEBYTECODE": ""}
    script = COLLECTIONS_DURING_IMPORT.format(setup="")
    _run(script, **cached)
    result = _run(script, **cached)
    assert result["enabled"] and result["passes"] <= 2, result
    # a program that switched the collector off keeps it off
    off = _run(COLLECTIONS_DURING_IMPORT.format(setup="gc.disable()"), **cached)
    assert (off["passes"], off["enabled"]) == (0, False), off
