"""The databases the suite runs on: SQLite always, PostgreSQL when ORM_TEST_PG_URL is set.

Tests that take the `database` fixture (directly, or through `orm`, `em` or `connect`) run
once per database. On PostgreSQL every test session works in a schema of its own
(`orm_test_<pid>_<random>`, dropped at the end), and each test's ORM drops and creates the
tables of its entities there: about 25 ms, against 30-280 ms for a schema per test, and unlike
a rolled-back outer transaction it lets tests commit, roll back and use several connections as
users do. Statements a test writes itself go through `sql()`, which turns the SQLite spelling
used in the tests (backtick quotes, `?` placeholders) into the platform's.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

PG_URL = os.environ.get("ORM_TEST_PG_URL") or None
IN_CI = bool(os.environ.get("CI"))

DATABASES: tuple[str, ...] = ("sqlite", "postgresql") if PG_URL else ("sqlite",)

#: the schema this test session (this process) works in on PostgreSQL
PG_SCHEMA = f"orm_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def pg_url() -> str:
    """The server URL with `synchronous_commit=off` for the session (test data need not
    survive a server crash; commits stop waiting for the disk)."""
    assert PG_URL is not None
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-c%20synchronous_commit%3Doff"


def pg_options() -> dict[str, Any]:
    return {"client_url": pg_url(), "schema": PG_SCHEMA}


def check_server() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(PG_URL, connect_timeout=5) as conn:
            conn.execute("select 1")
    except Exception as exc:  # noqa: BLE001 - any failure means the server is unusable
        return f"{type(exc).__name__}: {exc}"
    return None


def drop_session_schema() -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'drop schema if exists "{PG_SCHEMA}" cascade')


_BACKTICKED = re.compile(r"`([^`]*)`")


def sql(orm_or_platform: Any, text: str) -> str:
    """A statement written the SQLite way in a test (`` `user` ``, `?`) in the platform's
    spelling (`"user"`, `%s` on PostgreSQL)."""
    platform = getattr(orm_or_platform, "platform", orm_or_platform)
    text = _BACKTICKED.sub(lambda m: platform.quote(m.group(1)), text)
    if platform.param != "?":
        text = text.replace("%", "%%").replace("?", platform.param)
    return text


def rows(orm: Any, text: str, params: Any = ()) -> list[tuple]:
    """Run a SELECT written the SQLite way (see `sql`) on the ORM's connection."""
    return [tuple(r) for r in orm.connection.query(sql(orm, text), params)]


def execute(orm: Any, text: str, params: Any = ()) -> Any:
    """Run a write written the SQLite way (see `sql`) on the ORM's connection."""
    return orm.connection.execute(sql(orm, text), params)
