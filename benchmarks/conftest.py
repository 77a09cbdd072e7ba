"""pytest-benchmark fixtures: both change-detector backends in one run, a fresh file database
per round, the shared schema and data of compare.py.

The backend is normally chosen once at import (`ORM_PURE_PYTHON`); here the `backend` fixture
swaps the module-level `core` of every module that holds one, and the entity class is created
after the swap (its `__init__` and `__setattr__` come from the backend at class creation).
`test_backend_swap_reaches_every_module` fails if a module that binds `core` is missed.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orm  # noqa: E402
import orm._backend as _backend  # noqa: E402
from orm import _diff_py  # noqa: E402

from _common import SCHEMA_DDL  # noqa: E402

#: N for the pytest-benchmark suite (compare.py is the place for the 50,000 comparison)
N = int(os.environ.get("BENCH_N", "2000"))
BASE_TIME = datetime(2024, 1, 1)

#: the compiled core, or None when it is not in use: not built, or `ORM_PURE_PYTHON` forces the
#: twin for the whole run (then the "cython" rows are skipped rather than measuring the twin)
COMPILED: ModuleType | None = _backend.core if _backend.diff_backend() == "cython" else None


def modules_binding_core() -> list[ModuleType]:
    return [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("orm") and isinstance(getattr(m, "core", None), ModuleType)
    ]


@contextmanager
def using_backend(name: str) -> Iterator[ModuleType]:
    if name == "cython" and COMPILED is None:
        if os.environ.get("ORM_PURE_PYTHON", "").strip().lower() in {"1", "true", "yes", "on"}:
            pytest.skip("ORM_PURE_PYTHON is set: the run uses the pure-Python twin only")
        pytest.skip("the compiled extension is not built")
    target = _diff_py if name == "python" else COMPILED
    saved = [(m, m.core) for m in modules_binding_core()]
    for m, _ in saved:
        m.core = target
    try:
        yield target
    finally:
        for m, core in saved:
            m.core = core


def make_user_class() -> type:
    @orm.entity(table_name="user")
    class User:
        id: int = orm.PrimaryKey()
        full_name: str
        email: str = orm.Property(unique=True)
        password: str
        bio: str = orm.Property(type=orm.t.text, default="")
        age: int
        created_at: datetime

    return User


def new_users(user_cls: type, n: int) -> list:
    return [
        user_cls(
            full_name=f"User {i}",
            email=f"user{i}@example.com",
            password="secret",
            age=i % 90,
            created_at=BASE_TIME + timedelta(seconds=i),
        )
        for i in range(n)
    ]


@pytest.fixture(params=["cython", "python"])
def backend(request):
    with using_backend(request.param) as core:
        yield core


class Workspace:
    """Makes fresh databases (empty or seeded with N rows) and ORMs on them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.count = 0
        self.user_cls = make_user_class()
        self.orms: list[orm.ORM] = []

    def database(self, seeded: bool) -> str:
        self.count += 1
        path = str(self.tmp_path / f"bench{self.count}.db")
        con = sqlite3.connect(path)
        for ddl in SCHEMA_DDL:
            con.execute(ddl)
        if seeded:
            con.executemany(
                "insert into user (full_name, email, password, bio, age, created_at) "
                "values (?, ?, ?, ?, ?, ?)",
                [
                    (f"User {i}", f"user{i}@example.com", "secret", "", i % 90,
                     (BASE_TIME + timedelta(seconds=i)).isoformat(" "))
                    for i in range(N)
                ],
            )
        con.commit()
        con.close()
        return path

    def em(self, seeded: bool):
        instance = orm.ORM.init(db_name=self.database(seeded), entities=[self.user_cls])
        self.orms.append(instance)
        return instance.em.fork()

    def close(self) -> None:
        for instance in self.orms:
            instance.close()


@pytest.fixture
def workspace(backend, tmp_path):
    ws = Workspace(tmp_path)
    yield ws
    ws.close()
