"""The relation workloads W7-W9 by hand: the floor of the ``raw`` column, on SQLite (sqlite3)
and on PostgreSQL (psycopg 3).

- W7: the select-in queries an ORM's populate would send, written out: the articles; their
  authors ``where id in (...)``; their tags joined through the pivot ``where article_id in
  (...)``; assembled into tuples (an author tuple and a tag tuple shared by every article that
  has it). SQLite chunks the ``in`` lists under its parameter limit (32,766); PostgreSQL sends
  each list as one array (``= any(%s)``), one statement per relation whatever N.
- W8: the keys are learnt as the rows go in (every ORM must learn them): authors and articles
  as multi-row ``insert ... values ... returning id`` (SQLite: 500 rows a statement, as W1's
  ``raw_values``; PostgreSQL: 1,000), then the pivot rows as multi-row ``insert ... values``
  (SQLite: as many pairs a statement as its variable limit takes, ``PAIR_ROWS``), one
  transaction. The tag pool is pre-seeded and its keys read before the timed block.
- W9: the changed pairs, worked out before the timed block (the ORMs' collection edits are
  untimed too), written in one transaction: SQLite one ``delete ... where (article_id, tag_id)
  in (select column1, column2 from (values ...))`` (a bare ``in (values ...)`` scans the
  table) per 500 pairs and the multi-row inserts of W8; PostgreSQL one ``delete`` and one
  ``insert`` over ``unnest`` of two arrays.
- W9N: nothing changed, nothing to write: not applicable (like W4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

import _relations as rel
from _common import MAX_VARIABLES, Context, Observations, batch_rows, chunks
from _relations import QueryCounter, counts_since


@contextmanager
def _connect(ctx: Context) -> Iterator[Any]:
    if ctx.database == "postgresql":
        from _pg import cell_target, connect

        conn = connect(*cell_target(), autocommit=True)
    else:
        import sqlite3

        conn = sqlite3.connect(ctx.db_path, isolation_level=None)  # explicit begin / commit
        # the schema's foreign keys enforced, as by every column here (this ORM's and Pony's
        # connections, SQLAlchemy's through its connect-event recipe): the same checks of the
        # same rows; sqlite3 leaves them off unless asked (see the _relations docstring)
        conn.execute("pragma foreign_keys = on")
    try:
        yield conn
    finally:
        conn.close()


def _fetch(conn: Any, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _in_list(ctx: Context, conn: Any, sql: str, keys: list[int]) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` (ending in ``in_keys``) for ``keys``: one array on PostgreSQL,
    chunks of ``?`` lists under the parameter limit on SQLite."""
    if ctx.database == "postgresql":
        yield from _fetch(conn, sql.replace("in_keys", "= any(%s)"), (keys,))
        return
    for chunk in chunks(keys, MAX_VARIABLES):
        yield from _fetch(conn, sql.replace("in_keys", f"in ({', '.join('?' * len(chunk))})"), chunk)


def w7_load(ctx: Context) -> Observations:
    """Articles, then their authors, then their tags through the pivot, by hand."""
    with _connect(ctx) as conn:
        before = QueryCounter.snapshot()
        with ctx.timed():
            articles = _fetch(conn, "select id, title, author_id from article")
            authors = {
                row[0]: row
                for row in _in_list(
                    ctx, conn, "select id, name from author where id in_keys",
                    list(dict.fromkeys(a[2] for a in articles)),
                )
            }
            tags: dict[int, tuple[Any, ...]] = {}
            tags_of: dict[int, list[tuple[Any, ...]]] = {a[0]: [] for a in articles}
            for tag_id, label, article_id in _in_list(
                ctx, conn,
                "select t.id, t.label, p.article_id from tag as t join article_tags as p "
                "on p.tag_id = t.id where p.article_id in_keys",
                [a[0] for a in articles],
            ):
                tag = tags.get(tag_id)
                if tag is None:
                    tag = tags[tag_id] = (tag_id, label)
                tags_of[article_id].append(tag)
            graph = [(a[0], a[1], authors[a[2]], tags_of[a[0]]) for a in articles]
            counts = counts_since(before)
    return {
        **rel.graph_observations((g[2][1], (t[1] for t in g[3])) for g in graph),
        "queries": counts["queries"],
    }


def _insert_returning(
    ctx: Context, conn: Any, head: str, rows: list[tuple[Any, ...]], width: int
) -> list[int]:
    """Multi-row ``insert ... values ... returning id``; the keys in row order."""
    mark = "%s" if ctx.database == "postgresql" else "?"
    one = "(" + ", ".join([mark] * width) + ")"
    per = 1000 if ctx.database == "postgresql" else batch_rows(width)
    keys: list[int] = []
    for chunk in chunks(rows, per):
        sql = f"{head} values {', '.join([one] * len(chunk))} returning id"
        keys.extend(r[0] for r in _fetch(conn, sql, list(chain.from_iterable(chunk))))
    return keys


#: pairs per pivot insert on SQLite: the most its variable limit takes. The fastest measured
#: (150,000 pairs, W8's pivot): statements of 500 pairs 271 ms, 2,000 175 ms, 16,383 161 ms.
#: Each statement journals the pages it changes, and the pivot's index on tag_id spreads
#: them: past 64 KiB that journal goes to a temporary file, once per statement
PAIR_ROWS = MAX_VARIABLES // 2


def _insert_pairs(ctx: Context, conn: Any, pairs: list[tuple[int, int]]) -> None:
    head = "insert into article_tags (article_id, tag_id)"
    if ctx.database == "postgresql":
        conn.execute(
            f"{head} select * from unnest(%s::bigint[], %s::bigint[])",
            ([p[0] for p in pairs], [p[1] for p in pairs]),
        )
        return
    for chunk in chunks(pairs, PAIR_ROWS):
        conn.execute(
            f"{head} values {', '.join(['(?, ?)'] * len(chunk))}", list(chain.from_iterable(chunk))
        )


def _transaction(ctx: Context, conn: Any) -> Callable[[], Any]:
    """Begin now; the returned function commits."""
    if ctx.database == "postgresql":
        tx = conn.transaction()
        tx.__enter__()
        return lambda: tx.__exit__(None, None, None)
    conn.execute("begin")
    return lambda: conn.execute("commit")


def w8_insert(ctx: Context) -> Observations:
    """Authors and articles inserted with their keys returned, then the pivot rows."""
    n = ctx.n
    with _connect(ctx) as conn:
        tag_keys = {label: key for key, label in _fetch(conn, "select id, label from tag")}
        before = QueryCounter.snapshot()
        with ctx.timed():
            commit = _transaction(ctx, conn)
            author_keys = _insert_returning(
                ctx, conn, "insert into author (name)",
                [(f"Author {a}",) for a in range(rel.author_count(n))], 1,
            )
            article_keys = _insert_returning(
                ctx, conn, "insert into article (title, author_id)",
                [(f"Article {k}", author_keys[k // rel.ARTICLES_PER_AUTHOR]) for k in range(n)],
                2,
            )
            _insert_pairs(
                ctx, conn,
                [
                    (article_keys[k], tag_keys[f"tag {t - 1}"])
                    for k in range(n)
                    for t in rel.tag_ids(k)
                ],
            )
            commit()
            counts = counts_since(before)
    return counts


def w9_change_tags(ctx: Context) -> Observations:
    """Delete the replaced pairs, insert the new ones, in one transaction."""
    with _connect(ctx) as conn:
        pairs: dict[int, list[int]] = {}
        for article_id, tag_id in _fetch(
            conn, "select article_id, tag_id from article_tags order by article_id, tag_id"
        ):
            pairs.setdefault(article_id, []).append(tag_id)
        removed, added = [], []
        for k in range(0, ctx.n, rel.STRIDE):
            old = rel.tag_ids(k)[0]
            assert old in pairs[k + 1]
            removed.append((k + 1, old))
            added.append((k + 1, rel.new_tag_id(k)))
        before = QueryCounter.snapshot()
        with ctx.timed():
            commit = _transaction(ctx, conn)
            if ctx.database == "postgresql":
                conn.execute(
                    "delete from article_tags where (article_id, tag_id) in "
                    "(select * from unnest(%s::bigint[], %s::bigint[]))",
                    ([p[0] for p in removed], [p[1] for p in removed]),
                )
            else:
                for chunk in chunks(removed, batch_rows(2)):
                    conn.execute(
                        "delete from article_tags where (article_id, tag_id) in "
                        "(select column1, column2 from (values "
                        + ", ".join(["(?, ?)"] * len(chunk)) + "))",
                        list(chain.from_iterable(chunk)),
                    )
            _insert_pairs(ctx, conn, added)
            commit()
            counts = counts_since(before)
    return {"changed": len(removed), **counts}


WORKLOADS = {"W7": w7_load, "W8": w8_insert, "W9": w9_change_tags}
