"""The first-entity walkthrough runs end to end and prints what the guide prints, on an SQLite
file (its default) and on PostgreSQL (a database URL in place of the path)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.databases import PG_SCHEMA, PG_URL, pg_url

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "first_entity.py"


@pytest.fixture
def target(database, tmp_path):
    """The example's argument: an SQLite file, or a PostgreSQL URL whose `search_path` is a
    schema of this test's (the example uses the connection's schema), dropped afterwards."""
    if database == "sqlite":
        yield str(tmp_path / "sqlite.db")
        return
    import psycopg

    schema = f"{PG_SCHEMA}_example_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'create schema "{schema}"')
    try:
        yield f"{pg_url()}%20-c%20search_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'drop schema "{schema}" cascade')


def test_first_entity_walkthrough(target, database, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), target], capture_output=True, text=True, timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    if database == "sqlite":
        q, missing = "`", "no such table: user"
        returning, delete_by_key = "", "where `id` = 1"
    else:
        q, missing = '"', 'relation "user" does not exist'
        returning, delete_by_key = ' returning "id"', 'where "id" = any(array[1])'
    expected_in_order = [
        "ValidationError: Using the global EntityManager (orm.em)",
        f"TableNotFoundException: select {q}u0{q}.{q}id{q}",
        missing,
        f"[query] create table {q}user{q}",
        f"[query] insert into {q}user{q} ({q}full_name{q}, {q}email{q}, {q}password{q}, "
        f"{q}bio{q}) values ('Foo Bar', 'foo@bar.com', '123456', ''){returning}",
        "user id is: 1",
        "users are the same? True",
        f"[query] update {q}user{q} set {q}bio{q} = '...' where {q}id{q} = 1",
        "users are the same? False",
        "bio after refresh: '...'",
        "userRef is initialized: False",
        "ValidationError: User.email cannot be read",
        "userRef is initialized: True",
        "{'id': 1, 'full_name': 'Foo Bar', 'email': 'foo@bar.com', 'bio': '...'}",
        f"[query] delete from {q}user{q} {delete_by_key}",
        "users left: 0",
    ]
    position = 0
    for text in expected_in_order:
        found = out.find(text, position)
        assert found >= 0, f"missing (in order): {text!r}\n---\n{out}"
        position = found + len(text)
    identity_step = out.split("users are the same? True")[0].rsplit("== ", 1)[1]
    assert "[query] select" not in identity_step, "identity map lookup ran a query"
    if database == "sqlite":
        assert Path(target).exists()
    else:
        assert "connected to database PostgreSQL database" in out.split("== the global")[0]
        assert list(tmp_path.iterdir()) == [], "a URL is not taken for a file name"


def test_first_entity_defaults_to_sqlite_db_in_the_current_folder(tmp_path):
    """Without an argument the walkthrough uses `sqlite.db` in the current folder."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quiet"], capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "users left: 0" in proc.stdout and "[query]" not in proc.stdout
    assert (tmp_path / "sqlite.db").exists()


BLOG = EXAMPLE.parent / "blog.py"


def test_blog_example(target, database, tmp_path):
    """The blog runs end to end on both databases: the graph saved by cascade, populate,
    filters across relations, a tag changed, an orphan removed, a user removed with what
    they wrote."""
    proc = subprocess.run(
        [sys.executable, str(BLOG), target], capture_output=True, text=True, timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    expected_in_order = [
        "rows: {'User': 2, 'Article': 3, 'Tag': 3, 'Comment': 3}",
        "\"Bob's notes\" by Bob, tags ['orm'], comments []",
        "'Hello, ORM' by Ann, tags ['orm', 'python'], comments ['Ann: Thanks', 'Bob: Nice!']",
        "'SQLite in one file' by Ann, tags ['python', 'sqlite'], comments ['Bob: Which version?']",
        "ValidationError: User.articles is not initialized",
        "after load(): [\"Bob's notes\"]",
        "tagged python: ['Hello, ORM', 'SQLite in one file']",
        "commented on by Bob: ['Hello, ORM', 'SQLite in one file']",
        "wrote about orm: ['Ann', 'Bob']",
        "tags now: ['orm', 'sqlite']",
        "comments left: 2",
        "rows: {'User': 1, 'Article': 1, 'Tag': 3, 'Comment': 0}",
        "articles left: [(\"Bob's notes\", ['orm'])]",
    ]
    position = 0
    for text in expected_in_order:
        found = out.find(text, position)
        assert found >= 0, f"missing (in order): {text!r}\n---\n{out}"
        position = found + len(text)
    # populate: one query per relation and level, whatever the number of rows
    loading = out.split("== loading with populate")[1].split("== ")[0]
    # articles, their authors, tags, comments (the comments' authors are loaded already)
    assert loading.count("[query] select") == 4
    # the tag change writes one pivot delete and one pivot insert, nothing else
    change = out.split("== a tag changed")[1].split("== ")[0]
    writes = [line for line in change.splitlines()
              if line.startswith("[query] ") and line.split()[1] in ("insert", "delete", "update")]
    assert len(writes) == 2 and all("article_tags" in w for w in writes), writes
