"""What an entity instance costs in memory, and what users may still do with one: set their
own attributes, take a weak reference, pickle a new entity, and be told why an unloaded
property cannot be read."""

from __future__ import annotations

import gc
import os
import pickle
import re
import subprocess
import sys
import tracemalloc
import weakref
from datetime import datetime
from pathlib import Path

import pytest

from orm import PrimaryKey, ValidationError, entity
from tests.core.models import User
from tests.databases import rows, sql

N = 2_000


def _person_class(table: str) -> type:
    """A fresh 5-column entity class: instances of the shared models have been made by other
    tests already, and what the first instances of a class do is the point here."""

    @entity(table_name=table)
    class Person:
        id: int = PrimaryKey()
        name: str
        email: str
        age: int
        created_at: datetime

    return Person


def _held_by(load) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        held = load()
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(held) == N
    return size


@pytest.mark.parametrize("first", ["references", "a partial load"])
def test_entities_loaded_after_references_or_a_partial_load_hold_no_more_memory(
    connect, database, first
):
    """The first instances of a class used to decide which attribute names its instances keep
    compactly: after 100 references or partially loaded entities, every complete entity
    carried a dict of its own (192 bytes more per entity on CPython 3.11)."""
    fresh, used = _person_class("fresh"), _person_class("used")
    orm = connect([fresh, used])
    try:
        # created_at as each database stores it
        created = "2024-01-02 03:04:05" if database == "sqlite" else datetime(2024, 1, 2, 3, 4, 5)
        with orm.connection.transaction():
            for table in ("fresh", "used"):
                orm.connection.executemany(
                    sql(orm, f"insert into `{table}` (name, email, age, created_at) "
                             "values (?, ?, ?, ?)"),
                    [(f"P {i}", f"p{i}@x.io", i % 90, created) for i in range(N)],
                )
        warm = orm.em.fork()
        if first == "references":
            before = [warm.get_reference(used, i) for i in range(1, 101)]
        else:
            before = warm.find(used, {}, fields=["name"], limit=100)
        assert len(before) == 100
        baseline = _held_by(lambda: orm.em.fork().find(fresh, {}))
        after = _held_by(lambda: orm.em.fork().find(used, {}))
    finally:
        orm.close()
    extra = (after - baseline) / N
    assert extra < 16, f"{extra:.0f} bytes more per entity loaded after {first}"


def _loaded_user(em):
    em.persist(User(full_name="A", email="a@x", password="p")).flush()
    return em.fork().find_one(User, {"email": "a@x"})


def test_users_set_their_own_attributes_on_entities_and_a_flush_ignores_them(em, orm, log):
    new = User(full_name="N", email="n@x", password="p")
    new.note = "on a new one"
    loaded = _loaded_user(em)
    loaded.note = "on a loaded one"
    loaded._cache = {"k": 1}
    assert (new.note, loaded.note, loaded._cache) == ("on a new one", "on a loaded one", {"k": 1})
    log.clear()
    loaded_em = orm.em.fork()
    again = loaded_em.find_one(User, {"email": "a@x"})
    again.note = "not a column"
    loaded_em.flush()
    assert log.writes() == [], "an attribute that is not a property writes nothing"


def test_entities_take_weak_references(em):
    new = User(full_name="N", email="n@x", password="p")
    loaded = _loaded_user(em)
    refs = [weakref.ref(new), weakref.ref(loaded)]
    assert refs[0]() is new and refs[1]() is loaded
    del new
    gc.collect()
    assert refs[0]() is None, "a weak reference does not keep an entity alive"


def test_a_new_entity_pickles_with_its_values():
    user = User(full_name="N", email="n@x", password="p", age=7)
    copy = pickle.loads(pickle.dumps(user))
    assert type(copy) is User and copy is not user
    assert (copy.full_name, copy.email, copy.age, copy.id) == ("N", "n@x", 7, None)


def test_reading_an_unloaded_property_says_why_and_what_to_do(em):
    _loaded_user(em)
    ref = em.fork().get_reference(User, 1)
    with pytest.raises(
        ValidationError,
        match=r"User\.email cannot be read: this User is an "
        r"uninitialized reference .*wrap\(entity\)\.init\(\)",
    ):
        _ = ref.email
    partial = em.fork().find_one(User, {"id": 1}, fields=["email"])
    with pytest.raises(ValidationError, match=r"User\.age was not loaded: .*em\.refresh"):
        _ = partial.age
    assert ref.id == 1 and partial.email == "a@x"


@pytest.mark.skipif(
    os.environ.get("ORM_PURE_PYTHON") == "1", reason="the script runs both backends itself"
)
def test_the_memory_benchmark_reports_both_tables_on_both_backends():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "memory.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--n", "500"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {
        line.split("|")[1].strip(): line
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and "columns" in line
    }
    assert set(rows) == {"5 columns", "7 columns"}, proc.stdout
    for line in rows.values():
        assert len(re.findall(r"\d+ B \(\+\d+ B\) \d+\.\d\dx", line)) == 2, line


def test_a_copy_of_a_managed_entity_is_detached_and_never_writes_its_row(orm):
    import copy

    from orm import wrap

    orm.em.fork().persist(User(full_name="a", email="a@x", password="p")).flush()
    em = orm.em.fork()
    loaded = em.find_one_or_fail(User, 1)
    for clone in (copy.copy(loaded), copy.deepcopy(loaded), pickle.loads(pickle.dumps(loaded))):
        assert clone is not loaded and clone.full_name == "a" and clone.id == 1
        assert not wrap(clone).is_managed()
        clone.full_name = "written through a copy"
        em.flush()
    assert rows(orm, "select full_name from `user`") == [("a",)]
    assert em.find_one(User, 1) is loaded and loaded.full_name == "a"
    fresh = orm.em.fork()
    fresh.persist(copy.copy(User(full_name="b", email="b@x", password="p"))).flush()
    assert rows(orm, "select count(*) from `user`") == [(2,)]
